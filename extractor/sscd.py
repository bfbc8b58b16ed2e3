"""SSCD's descriptor shape (Pizzi et al., CVPR 2022): backbone -> GeM pooling -> linear projection -> L2 norm.

`SSCDNet` wraps the feature-map trunk of any registry encoder (timm models through
``forward_features``, torchvision ResNets, and torchvision models with a ``features`` trunk).
The ``sscd`` registry entry loads a network trained by ``finetune.py --recipe sscd`` from its
checkpoint (``torch.load(weights_only=True)``), with the preprocessing it was trained for:

    python extract_features.py --method sscd --weights Checkpoints/<run>/epoch_005.pth --dataset demo_original
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from extractor.neural import NeuralExtractor, PreprocessCfg

DEFAULT_BACKBONE = "resnet18"


class GeM(nn.Module):
    """Generalised-mean pooling over H and W: ``mean(x^p)^(1/p)``; p=1 is average pooling, p->inf max.

    `learnable=True` makes p a parameter (SSCD fixes p=3); inputs are clamped to `eps` first.
    """

    def __init__(self, p: float = 3.0, learnable: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM p must be > 0, got {p}")
        value = torch.tensor(float(p))
        if learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"GeM expects (B, C, H, W) feature maps, got shape {tuple(x.shape)}")
        p = self.p.clamp(min=1e-3)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}, learnable={isinstance(self.p, nn.Parameter)}"


class _ForwardFeatures(nn.Module):
    """A timm model seen through ``forward_features`` (its unpooled feature map)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def feature_trunk(model: nn.Module) -> nn.Module:
    """The part of a classification model that outputs its last (B, C, H, W) feature map.

    timm models (``forward_features``), torchvision ResNet-like models (``layer4``) and
    torchvision models with a ``features`` trunk (EfficientNet, MobileNet, ConvNeXt, VGG...);
    a registry wrapper (`extractor.pooling.PooledModel` around a backbone adapter) is unwrapped
    first, so the trunk's parameter names do not depend on the pooling wrapper. Anything else
    raises ValueError.
    """
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and hasattr(backbone, "forward_map"):
        model = getattr(backbone, "model", backbone)
    if hasattr(model, "forward_features"):
        return _ForwardFeatures(model)
    if hasattr(model, "layer4") and hasattr(model, "conv1"):
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(*(getattr(model, n) for n in names if hasattr(model, n)))
    if isinstance(getattr(model, "features", None), nn.Module):
        return model.features
    raise ValueError(
        f"{type(model).__name__}: cannot find its feature-map trunk (forward_features, layer4 or features)"
    )


def _channels(trunk: nn.Module) -> int:
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        out = trunk(torch.zeros(1, 3, 64, 64))
    trunk.train(was_training)
    if out.ndim != 4:
        raise ValueError(f"the trunk returns shape {tuple(out.shape)}, not a (B, C, H, W) feature map")
    return int(out.shape[1])


class SSCDNet(nn.Module):
    """trunk -> GeM -> Linear(channels, dim) -> L2 normalisation: (B, 3, H, W) -> (B, dim) unit vectors."""

    def __init__(
        self, trunk: nn.Module, dim: int = 512, p: float = 3.0, learn_p: bool = False, backbone: str = ""
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"projection dimension must be >= 1, got {dim}")
        self.trunk = trunk
        self.channels = _channels(trunk)
        self.pool = GeM(p, learnable=learn_p)
        self.project = nn.Linear(self.channels, dim)
        nn.init.xavier_uniform_(self.project.weight)  # as SSCD
        nn.init.zeros_(self.project.bias)
        self.dim, self.p_init, self.learn_p, self.backbone = int(dim), float(p), bool(learn_p), backbone

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Projected descriptors before normalisation."""
        return self.project(self.pool(self.trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(x).float(), dim=1)

    def architecture(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this network."""
        return {
            "kind": "sscd",
            "backbone": self.backbone,
            "channels": self.channels,
            "dim": self.dim,
            "gem_p": self.p_init,
            "learn_p": self.learn_p,
        }


def build_sscd(
    backbone: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = None,
    dim: int = 512,
    p: float = 3.0,
    learn_p: bool = False,
) -> tuple[SSCDNet, PreprocessCfg]:
    """An SSCD network on registry encoder `backbone` (`weights` as that entry takes them) and its preprocessing."""
    from extractor.registry import create_extractor

    ext = create_extractor(backbone, weights=weights, device="cpu", precision="fp32")
    model = getattr(ext, "model", None)
    if not isinstance(model, nn.Module):
        raise ValueError(f"extractor {backbone!r} has no torch model (hashes cannot be a backbone)")
    net = SSCDNet(feature_trunk(model), dim=dim, p=p, learn_p=learn_p, backbone=backbone)
    return net.train(), ext.preprocess


def eval_preprocess(size: int, mean=None, std=None) -> PreprocessCfg:
    """The whole image resized to `size` x `size` (bicubic), as SSCD evaluates; the backbone's normalisation."""
    return PreprocessCfg(
        resize_size=int(size), resize_mode="square", crop_size=None, interpolation="bicubic",
        mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
    )  # fmt: skip


def load_sscd_checkpoint(path: str | os.PathLike) -> tuple[SSCDNet, PreprocessCfg, dict[str, Any]]:
    """(network with the checkpoint's weights, eval preprocessing, architecture) of a ``--recipe sscd`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sscd: checkpoint {path} does not exist; train one with `finetune.py --recipe sscd`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    arch = ckpt.get("architecture", {}) if isinstance(ckpt, dict) else {}
    if arch.get("kind") != "sscd" or "model" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint of `finetune.py --recipe sscd` (architecture {arch or None})")
    net, _ = build_sscd(arch["backbone"], None, arch["dim"], arch["gem_p"], arch["learn_p"])
    net.load_state_dict(ckpt["model"])
    pre = ckpt.get("eval_preprocess") or {}
    cfg = PreprocessCfg(**{**pre, "mean": tuple(pre["mean"]) if pre.get("mean") else None,
                           "std": tuple(pre["std"]) if pre.get("std") else None})  # fmt: skip
    return net.eval(), cfg, arch


def create_sscd(
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    precision: str = "auto",
    *,
    backbone: str = DEFAULT_BACKBONE,
    dim: int = 512,
    size: int | None = None,
) -> NeuralExtractor:
    """The ``sscd`` entry: a trained checkpoint (`weights` = its path), or an untrained network (None, tests).

    The store name is ``sscd_<run folder>_<checkpoint stem>`` so two checkpoints never share a store;
    `size` overrides the evaluation resolution saved in the checkpoint. Features are L2-normalised.
    """
    if weights is None or str(weights) == "DEFAULT":
        if weights is not None:
            raise FileNotFoundError("sscd has no default weights: pass --weights Checkpoints/<run>/epoch_<e>.pth")
        net, pre = build_sscd(backbone, None, dim)
        pre = eval_preprocess(size or 224, pre.mean, pre.std)
        size = size or 224
        name, params = f"sscd_{backbone}_{dim}d_{size}px_random", {"backbone": backbone, "dim": dim, "size": size, "weights": None}
    else:
        path = Path(weights).expanduser()
        net, pre, arch = load_sscd_checkpoint(path)
        if size is not None:
            pre = eval_preprocess(size, pre.mean, pre.std)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{path.parent.name}_{path.stem}") + (f"_s{size}" if size else "")
        name, params = f"sscd_{safe}", {**arch, "weights": str(path.resolve()), **({"size": size} if size else {})}
    return NeuralExtractor(
        name, net.eval(), pre, normalize=True, device=device, precision=precision, dim=net.dim, params=params
    )

