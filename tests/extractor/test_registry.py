"""The registry: wildcard listing, unknown names, user-registered encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractor import (
    ENTRIES,
    NeuralExtractor,
    PreprocessCfg,
    create_extractor,
    list_extractors,
    register_extractor,
    unregister_extractor,
)
from extractor.torchvision_models import SEED_MODELS
from tests.conftest import synthetic_image


def test_list_with_wildcards_is_sorted():
    assert list_extractors("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert list_extractors("?hash") == ["ahash", "dhash", "phash", "whash"]
    everything = list_extractors()
    assert everything == sorted(everything) and set(SEED_MODELS) <= set(everything)
    assert "crop_resistant" in everything and list_extractors("nothing*") == []
    assert set(ENTRIES) <= set(everything)


def test_unknown_name_lists_close_matches_first():
    with pytest.raises(ValueError) as err:
        create_extractor("resnet05")
    message = str(err.value)
    assert "'resnet05'" in message and message.index("resnet50") < message.index("dhash")


def test_unexpected_keyword_is_a_clear_type_error():
    with pytest.raises(TypeError, match="does not accept"):
        create_extractor("dhash", weights="DEFAULT")


def test_none_kwargs_mean_unset():
    assert create_extractor("dhash", hash_size=None).name == "dhash"


class _Pool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_register_extractor_default_and_custom_transforms():
    try:
        ext = register_extractor("my_encoder", _Pool(), preprocess=PreprocessCfg(resize_size=32, crop_size=32))
        assert isinstance(ext, NeuralExtractor) and ext.dim == 3 and "my_encoder" in list_extractors("my_*")
        again = create_extractor("my_encoder", precision="fp32")
        images = [synthetic_image(i) for i in range(3)]
        np.testing.assert_allclose(again.features(images), ext.features(images), rtol=1e-6)

        def to_float(image):  # a custom transform returning floats is used as is
            return torch.ones(3, 8, 8)

        custom = register_extractor("my_ones", _Pool(), transform=to_float, normalize=True)
        out = custom.features(images)
        np.testing.assert_allclose(out, np.full((3, 3), 1 / np.sqrt(3)), rtol=1e-6)
        assert custom.name == "my_ones"
    finally:
        for name in ("my_encoder", "my_ones"):
            unregister_extractor(name)
    assert list_extractors("my_*") == []


def test_register_extractor_rejects_bad_input():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        register_extractor("x", lambda x: x)
    with pytest.raises(ValueError, match="without '/'"):
        register_extractor("a/b", _Pool())
    with pytest.raises(ValueError, match="not a user-registered"):
        unregister_extractor("dhash")


def test_seed_names_are_accepted_as_aliases():
    from extractor import create_extractor
    from extractor.registry import ALIASES

    assert ALIASES["SimCLR v2 ResNet50 2x"] == "simclr_v2_r50_2x_sk1"
    ext = create_extractor("SimCLR v1 ResNet50 1x", weights=None)
    assert ext.name.startswith("simclr_v1_r50_1x") and ext.dim == 2048
