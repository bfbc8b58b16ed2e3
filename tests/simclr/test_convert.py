"""TF -> PyTorch conversion: outputs equal the TF reference, strict by-name checks report mismatches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SimCLRv1.convert import convert_loaded_v1
from SimCLRv2.convert import convert_loaded_v2, resnet_table
from SimCLRv2.resnet import ContrastiveHead, ResNet
from SimCLRv2.tf_checkpoint import ConversionError, TFCheckpoint, save_checkpoint

from .conftest import BASE, LAYERS, NUM_CLASSES, SK_RATIO, write_tf_checkpoint

ATOL = 1e-4


def tiny_model(ckpt) -> tuple[ResNet, ContrastiveHead]:
    model = ResNet(LAYERS, ckpt.width, SK_RATIO if ckpt.sk else 0.0, NUM_CLASSES, base_channels=BASE)
    return model.eval(), ContrastiveHead(model.num_features, out_dim=16).eval()


def run(model, head, ckpt) -> dict[str, np.ndarray]:
    with torch.no_grad():
        h = model.forward_features(torch.from_numpy(ckpt.image))
        return {"features": h.numpy(), "logits": model.fc(h).numpy(), "projection": head(h).numpy()}


def test_v1_matches_tf_reference_including_fc_bias(tiny_checkpoints):
    ckpt = tiny_checkpoints["v1"]
    model, head = tiny_model(ckpt)
    state = convert_loaded_v1(TFCheckpoint(ckpt.prefix), model)["state_dict"]
    model.load_state_dict(state, strict=True)
    out = run(model, head, ckpt)
    assert np.abs(ckpt.outputs["features"]).max() > 0.1  # a meaningful comparison, not zeros
    np.testing.assert_allclose(out["features"], ckpt.outputs["features"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out["logits"], ckpt.outputs["logits"], atol=ATOL, rtol=0)
    bias = ckpt.variables["head_supervised/linear_layer/dense/bias"]
    np.testing.assert_array_equal(state["fc.bias"].numpy(), bias)  # the seed never loaded it


@pytest.mark.parametrize("key", ["v2_sk0", "v2_sk1"])
def test_v2_ema_matches_tf_reference(tiny_checkpoints, key):
    ckpt = tiny_checkpoints[key]
    model, head = tiny_model(ckpt)
    converted = convert_loaded_v2(TFCheckpoint(ckpt.prefix), model, head, ema=True)
    model.load_state_dict(converted["encoder"], strict=True)
    head.load_state_dict(converted["head"], strict=True)
    out = run(model, head, ckpt)
    for name in ("features", "logits", "projection"):
        np.testing.assert_allclose(out[name], ckpt.outputs[name], atol=ATOL, rtol=0, err_msg=name)


def test_v2_plain_weights_when_ema_is_off(tiny_checkpoints):
    ckpt = tiny_checkpoints["v2_sk1"]
    model, head = tiny_model(ckpt)
    converted = convert_loaded_v2(TFCheckpoint(ckpt.prefix), model, head, ema=False)
    model.load_state_dict(converted["encoder"])
    head.load_state_dict(converted["head"])
    out = run(model, head, ckpt)
    np.testing.assert_allclose(out["features"], ckpt.outputs["plain_features"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out["projection"], ckpt.outputs["plain_projection"], atol=ATOL, rtol=0)
    assert not np.allclose(out["features"], ckpt.outputs["features"], atol=1e-3)


def test_sk0_builds_the_plain_path_and_sk1_the_selective_kernels(tiny_checkpoints):
    sk0, _ = tiny_model(tiny_checkpoints["v2_sk0"])
    sk1, _ = tiny_model(tiny_checkpoints["v2_sk1"])
    assert not any("sk." in k for k in sk0.state_dict()) and "stem.conv2.weight" not in sk0.state_dict()
    assert any(".sk.fc1." in k for k in sk1.state_dict()) and "stem.conv3.weight" in sk1.state_dict()
    # converting an sk1 checkpoint into an sk0 model must fail loudly, not half-load
    with pytest.raises(ConversionError, match="left over"):
        convert_loaded_v2(TFCheckpoint(tiny_checkpoints["v2_sk1"].prefix), sk0, None)


def test_supervised_mode_skips_the_contrastive_head(tiny_checkpoints):
    ckpt = tiny_checkpoints["v2_sk0"]
    model, _ = tiny_model(ckpt)
    converted = convert_loaded_v2(TFCheckpoint(ckpt.prefix), model, None, ema=True)
    assert set(converted) == {"encoder"}


def test_saved_checkpoint_loads_with_weights_only(tiny_checkpoints, tmp_path):
    ckpt = tiny_checkpoints["v2_sk1"]
    model, head = tiny_model(ckpt)
    path = save_checkpoint(convert_loaded_v2(TFCheckpoint(ckpt.prefix), model, head), tmp_path / "x.pth")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert type(loaded) is dict and set(loaded) == {"encoder", "head"} and type(loaded["encoder"]) is dict
    fresh, fresh_head = tiny_model(ckpt)
    fresh.load_state_dict(loaded["encoder"])
    fresh_head.load_state_dict(loaded["head"])
    np.testing.assert_allclose(run(fresh, fresh_head, ckpt)["projection"], ckpt.outputs["projection"], atol=ATOL)


def _broken(tf, tmp_path, ckpt, edit):
    variables = dict(ckpt.variables)
    edit(variables)
    return TFCheckpoint(write_tf_checkpoint(tf, tmp_path / "broken" / "model.ckpt-1", variables))


@pytest.mark.parametrize("case, edit, message", [
    ("missing", lambda v: v.pop("base_model/conv2d_3/kernel"), "missing"),
    ("extra", lambda v: v.update({"base_model/conv2d_99/kernel": np.zeros((1, 1, 2, 2), np.float32)}), "conv2d_99"),
    ("shape", lambda v: v.update({"base_model/batch_normalization_2/gamma": np.ones(5, np.float32)}), "shape"),
    ("fc bias", lambda v: v.pop("head_supervised/linear_layer/dense/bias"), "fc.bias"),
])
def test_conversion_errors_name_the_variables(tf, tmp_path, tiny_checkpoints, case, edit, message):
    ckpt = tiny_checkpoints["v1"]
    model, _ = tiny_model(ckpt)
    with pytest.raises(ConversionError, match=message) as err:
        convert_loaded_v1(_broken(tf, tmp_path, ckpt, edit), model)
    assert "base_model/" in str(err.value) or "head_supervised" in str(err.value)


def test_ema_requested_on_a_checkpoint_without_ema(tiny_checkpoints):
    ckpt = tiny_checkpoints["v1"]
    model, head = tiny_model(ckpt)
    with pytest.raises(ConversionError, match="--no-ema"):
        convert_loaded_v2(TFCheckpoint(ckpt.prefix), model, head, ema=True)


def test_extra_ignore_patterns(tf, tmp_path, tiny_checkpoints):
    ckpt = tiny_checkpoints["v1"]
    model, _ = tiny_model(ckpt)
    reader = _broken(tf, tmp_path, ckpt, lambda v: v.update({"base_model/extra/x": np.zeros(1, np.float32)}))
    with pytest.raises(ConversionError):
        convert_loaded_v1(reader, model)
    assert "fc.weight" in convert_loaded_v1(reader, model, ignore=["base_model/extra/*"])["state_dict"]


def test_missing_tf_checkpoint_is_a_clear_error(tf, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.ckpt-7"):
        TFCheckpoint(tmp_path / "model.ckpt-7")


def test_full_size_tables_match_the_models_exactly():
    """Every tensor of every released architecture has exactly one TF name (checked on the meta device)."""
    from SimCLRv2.resnet import MODELS, get_resnet

    for name in MODELS:
        with torch.device("meta"):
            model, _ = get_resnet(name)
        table = resnet_table(model.layers, model.sk_ratio > 0)
        keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}
        assert set(table) == keys, name
        assert len({n for n, _ in table.values()}) == len(table), name


def test_v2_ema_copy_of_the_supervised_head_is_preferred(tf, tmp_path, tiny_checkpoints):
    ckpt = tiny_checkpoints["v2_sk0"]
    model, head = tiny_model(ckpt)
    sup = "head_supervised/linear_layer/dense/"

    def add_ema_fc(v):
        v[f"ema_model/{sup}kernel"] = v[sup + "kernel"] * 2
        v[f"ema_model/{sup}bias"] = v[sup + "bias"] + 1

    reader = _broken(tf, tmp_path, ckpt, add_ema_fc)
    encoder = convert_loaded_v2(reader, model, head, ema=True)["encoder"]
    np.testing.assert_array_equal(encoder["fc.bias"].numpy(), ckpt.variables[sup + "bias"] + 1)
    plain = convert_loaded_v2(reader, model, head, ema=False)["encoder"]
    np.testing.assert_array_equal(plain["fc.bias"].numpy(), ckpt.variables[sup + "bias"])
