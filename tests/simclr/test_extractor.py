"""SimCLR extractor entries: names, preprocessing, loading converted files (weights_only), errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from extractor import simclr
from SimCLRv1 import download as v1
from SimCLRv1.resnet_wider import resnet50x1
from SimCLRv2 import download as v2
from SimCLRv2.resnet import get_resnet
from SimCLRv2.tf_checkpoint import save_checkpoint
from tests.conftest import synthetic_image


def test_names_are_filename_safe_and_aliases_resolve():
    assert len(simclr.ENTRIES) == 3 + 13
    for name in simclr.ENTRIES:
        assert re.fullmatch(r"simclr_v[12]_r\d+_\dx(_sk[01])?", name), name
    assert simclr.ALIASES["SimCLR v2 ResNet50 2x"] == "simclr_v2_r50_2x_sk1"
    assert simclr.ALIASES["SimCLR v1 ResNet50 4x"] == "simclr_v1_r50_4x"
    assert set(simclr.ALIASES.values()) <= set(simclr.ENTRIES)
    assert simclr.feature_dim("simclr_v2_r152_3x_sk1") == 6144 and simclr.feature_dim("simclr_v1_r50_4x") == 8192


def test_preprocessing_is_the_seeds():
    cfg = simclr.PREPROCESS
    assert (cfg.resize_size, cfg.resize_mode, cfg.crop_size, cfg.interpolation) == (256, "shorter", 224, "lanczos")
    assert cfg.mean is None and cfg.std is None  # [0, 1] inputs, no normalisation


@pytest.mark.parametrize("name, command", [
    ("simclr_v1_r50_2x", "cd SimCLRv1 && python3 download.py --model 2x --simclr_category pretrain"),
    ("simclr_v2_r50_2x_sk1", "cd SimCLRv2 && python3 download.py --model r50_2x_sk1 --simclr_category pretrained --ema"),
])
def test_missing_checkpoint_names_the_download_command(tmp_path, name, command):
    with pytest.raises(FileNotFoundError, match=re.escape(command)):
        simclr.ENTRIES[name](root=tmp_path)


def test_missing_explicit_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        simclr.ENTRIES["simclr_v2_r50_1x_sk0"](weights=tmp_path / "nope.pth")


def test_not_a_converted_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.ones(1)}}, path)
    with pytest.raises(ValueError, match="'encoder'"):
        simclr.ENTRIES["simclr_v2_r50_1x_sk0"](weights=path)


SMALL = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 64, 72), dtype=np.uint8))


def _features_by_hand(model, batch=SMALL):
    """Pooled features of a uint8 batch scaled to [0, 1] (what the entry's preprocessing produces)."""
    with torch.no_grad():
        return model.eval().forward_features(batch.float() / 255).numpy()


@pytest.mark.slow
def test_v1_entry_loads_the_converted_file_with_weights_only(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = resnet50x1()
    save_checkpoint({"state_dict": model.state_dict()}, v1.torch_checkpoint_path("1x", "pretrain", tmp_path / "SimCLRv1"))
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    ext = simclr.ENTRIES["simclr_v1_r50_1x"](root=tmp_path, precision="fp32")
    assert calls and all(k.get("weights_only") is True for k in calls)
    assert ext.name == "simclr_v1_r50_1x" and ext.dim == 2048
    assert ext.transform(synthetic_image(3, (300, 240))).shape == (3, 224, 224)  # the seed's preprocessing
    feats = ext(SMALL)  # a small batch keeps the test fast; pooling makes the size irrelevant
    assert feats.shape == (1, 2048) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, _features_by_hand(model), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_v2_entry_loads_the_encoder_and_ignores_the_head(tmp_path):
    torch.manual_seed(0)
    model, head = get_resnet("r50_1x_sk0")
    path = v2.torch_checkpoint_path("r50_1x_sk0", "finetuned_10pct", False, tmp_path / "SimCLRv2")
    save_checkpoint({"encoder": model.state_dict(), "head": head.state_dict()}, path)
    ext = simclr.ENTRIES["simclr_v2_r50_1x_sk0"](root=tmp_path, category="finetuned_10pct", ema=False,
                                                 precision="fp32")
    assert ext.name == "simclr_v2_r50_1x_sk0_finetuned_10pct_noema" and ext.dim == 2048
    np.testing.assert_allclose(ext(SMALL), _features_by_hand(model), atol=1e-4, rtol=1e-4)
    other = simclr.ENTRIES["simclr_v2_r50_1x_sk0"](weights=path, precision="fp32", normalize=True)
    assert other.name == "simclr_v2_r50_1x_sk0_r50_1x_sk0_l2" and other.params["weights"] == str(path)


def test_random_init_for_tests():
    ext = simclr.ENTRIES["simclr_v2_r50_1x_sk0"](weights=None, precision="fp32")
    assert ext.name == "simclr_v2_r50_1x_sk0_random" and ext.dim == 2048
    assert ext.params["model"] == "r50_1x_sk0" and ext.params["weights"] is None
