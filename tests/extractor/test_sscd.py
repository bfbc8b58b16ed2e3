"""SSCD's descriptor: GeM pooling, projection, L2 norm; any registry backbone's trunk; checkpoints as extractors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from extractor.sscd import GeM, SSCDNet, create_sscd, feature_trunk


def _tiny_trunk(width: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2), nn.ReLU())


def test_gem_p1_is_average_pooling_and_large_p_tends_to_max():
    x = torch.rand(2, 5, 7, 3) + 0.01
    assert GeM(1.0)(x).shape == (2, 5)
    torch.testing.assert_close(GeM(1.0)(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(GeM(200.0)(x), x.amax(dim=(2, 3)), rtol=0.05, atol=0)
    torch.testing.assert_close(GeM(3.0)(x), x.pow(3).mean(dim=(2, 3)).pow(1 / 3))


def test_gem_learnable_p_gets_a_gradient_and_fixed_p_does_not():
    learn, fixed = GeM(3.0, learnable=True), GeM(3.0)
    assert [n for n, _ in learn.named_parameters()] == ["p"] and not list(fixed.parameters())
    learn(torch.rand(1, 2, 4, 4)).sum().backward()
    assert learn.p.grad is not None and torch.isfinite(learn.p.grad)
    with pytest.raises(ValueError, match="p must be > 0"):
        GeM(0.0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        GeM()(torch.rand(2, 3))


def test_projection_shapes_and_unit_norm():
    net = SSCDNet(_tiny_trunk(), dim=16, p=3.0)
    assert (net.channels, net.dim) == (6, 16)
    assert net.project.weight.shape == (16, 6)
    z = net(torch.rand(3, 3, 20, 24))
    assert z.shape == (3, 16)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    assert net.architecture() == {"kind": "sscd", "backbone": "", "channels": 6, "dim": 16, "gem_p": 3.0,
                                  "learn_p": False}  # fmt: skip


@pytest.mark.slow
def test_feature_trunk_of_torchvision_and_timm_models():
    from torchvision.models import resnet18

    trunk = feature_trunk(resnet18(weights=None).eval())
    assert trunk(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    import timm

    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=0).eval()
    assert feature_trunk(model)(torch.rand(1, 3, 64, 64)).ndim == 4
    with pytest.raises(ValueError, match="trunk"):
        feature_trunk(nn.Linear(3, 3))


def test_sscd_entry_loads_a_checkpoint_with_its_preprocessing(tmp_path):
    from extractor.registry import create_extractor
    from extractor.sscd import build_sscd, eval_preprocess

    net, pre = build_sscd("resnet18", None, dim=32)
    ckpt = {
        "architecture": {"encoder": "resnet18", **net.architecture()},
        "model": net.state_dict(),
        "eval_preprocess": eval_preprocess(48, pre.mean, pre.std).to_dict(),
    }
    path = tmp_path / "run" / "epoch_002.pth"
    path.parent.mkdir()
    torch.save(ckpt, path)
    ext = create_extractor("sscd", weights=str(path), precision="fp32")
    assert ext.name == "sscd_run_epoch_002" and ext.dim == 32
    assert (ext.preprocess.resize_size, ext.preprocess.resize_mode) == (48, "square")
    from PIL import Image

    feats = ext.features([Image.new("RGB", (60, 40), (200, 30, 30)), Image.new("RGB", (30, 50), (0, 90, 200))])
    assert feats.shape == (2, 32)
    torch.testing.assert_close(torch.from_numpy(feats).norm(dim=1), torch.ones(2))
    with torch.no_grad():  # the same weights as the network that was saved
        x = ext.prepare(ext.collate([ext.transform(Image.new("RGB", (60, 40), (200, 30, 30)))]))
        torch.testing.assert_close(torch.from_numpy(feats[:1]), net.eval()(x), rtol=1e-4, atol=1e-5)
    # a store's params rebuild the same extractor (what the search app does with a store)
    again = create_extractor("sscd", **{k: ext.params[k] for k in ("weights", "backbone", "dim")}, precision="fp32")
    assert again.name == ext.name and again.params == ext.params
    bad = tmp_path / "bad.pth"
    torch.save({"model": {}}, bad)
    with pytest.raises(ValueError, match="recipe sscd"):
        create_sscd(bad)
    with pytest.raises(FileNotFoundError, match="recipe sscd"):
        create_sscd(tmp_path / "missing.pth")
