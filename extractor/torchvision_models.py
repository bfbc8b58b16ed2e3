"""Every torchvision classification model as an extractor: pooled penultimate features + its weights' preprocessing.

Weights: ``"DEFAULT"`` or a tag (``"IMAGENET1K_V1"``) read from torchvision's cache, downloaded
there on first use by torchvision's own loader (hash prefix of the file name checked; offline it
says what to fetch: `extractor.weights`), a local ``.pth`` file (loaded with ``weights_only=True``), or ``None`` (random
init, for tests). The preprocessing comes from the weights' ``.transforms()`` metadata (the
default weights' when there are none or a local file is given).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights

from extractor.framework_options import OPTIONS, make_extractor
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pooling import AvgpoolHookBackbone

#: The models the seed used; any other torchvision classification model works by name too.
SEED_MODELS = (
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "inception_v3",
    "efficientnet_b7",
)
_HEAD_ATTRS = ("fc", "classifier", "head", "heads")


def _last_layer(module: nn.Module) -> tuple[nn.Module, str, int] | None:
    """(parent, attribute, input width) of the last Linear / 1x1 Conv classifier layer under `module`."""
    if isinstance(module, nn.Sequential):
        for key in reversed(list(module._modules)):
            child = module._modules[key]
            if isinstance(child, nn.Linear):
                return module, key, child.in_features
            if isinstance(child, nn.Conv2d):
                return module, key, child.in_channels
    return None


def strip_classifier(model: nn.Module) -> int:
    """Replace the classifier's last layer by Identity in place; return the feature dimension."""
    if hasattr(model, "AuxLogits"):  # inception: the auxiliary head is for training only
        model.aux_logits = False
        model.AuxLogits = None
    for attr in _HEAD_ATTRS:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        found = _last_layer(head) if head is not None else None
        if found:
            parent, key, dim = found
            parent._modules[key] = nn.Identity()
            return dim
    raise ValueError(f"{type(model).__name__}: no classifier layer found in {_HEAD_ATTRS}; register it by hand")


def weights_file(weights: Any) -> Path:
    """Where torchvision's cache keeps a weights enum's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _resolve_weights(arch: str, weights: str | os.PathLike | None) -> tuple[Any, Path | None]:
    """(weights enum or None, local file or None) for the `weights` argument."""
    if weights is None:
        return None, None
    text = str(weights)
    if isinstance(weights, os.PathLike) or text.endswith((".pth", ".pt", ".bin")) or os.sep in text:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{arch}: weights file {path} does not exist")
        return None, path
    enum = get_model_weights(arch)
    try:
        return enum[text.replace(enum.__name__ + ".", "")], None
    except KeyError:
        valid = ["DEFAULT", *(w.name for w in enum)]
        raise ValueError(f"{arch}: unknown weights {text!r}; valid: {valid}, None, or a .pth path") from None


def _missing_weights_error(arch: str, weights: Any, why: str = "") -> FileNotFoundError:
    path = weights_file(weights)
    return FileNotFoundError(
        f"{arch}: weights {type(weights).__name__}.{weights.name} are not in torchvision's cache ({path})"
        + (f" and were not downloaded: {why}" if why else "") + ". With network the first use downloads them "
        f"(without --offline); or on a machine with network run `python -c \"import torchvision; "
        f"torchvision.models.get_model('{arch}', weights='{weights.name}')\"` or download {weights.url} to "
        f"{path.parent}/{path.name}; or pass a local file with --weights PATH (weights=PATH), or weights=None "
        "for random init."
    )


def _load_local(arch: str, path: Path, default: Any) -> nn.Module:
    """Build `arch` and load a local state dict (plain, or under 'state_dict'/'model')."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    kwargs: dict[str, Any] = {}
    if default is not None and "categories" in default.meta:
        kwargs["num_classes"] = len(default.meta["categories"])
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=any(k.startswith(("AuxLogits", "aux")) for k in state), init_weights=False)
        kwargs["transform_input"] = True  # what torchvision's own weights for these expect
    model = get_model(arch, weights=None, **kwargs)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{path} does not hold {arch} weights: {str(e).splitlines()[1:3]}") from None
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold {arch} weights: missing {missing[:5]}, unexpected {unexpected[:5]} "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    return model


def create_torchvision(
    arch: str,
    weights: str | os.PathLike | None = "DEFAULT",
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    **options: Any,
) -> NeuralExtractor:
    """Build torchvision model `arch` as a feature extractor (classifier removed, eval mode).

    `options` (pooling, transforms, resolution, multiscale...) as in `framework_options.make_extractor`;
    map poolings use the input of the model's `avgpool` (ResNets, EfficientNets, ConvNeXts, VGG...).
    """
    if arch not in ENTRIES:
        import difflib

        close = difflib.get_close_matches(arch, ENTRIES, n=8, cutoff=0.6)
        raise ValueError(f"unknown torchvision model {arch!r}; close names: {close or 'none'}")
    enum, path = _resolve_weights(arch, weights)
    try:
        default = get_model_weights(arch).DEFAULT
    except (ValueError, AttributeError):
        default = None
    if enum is not None:
        if not weights_file(enum).is_file():
            from extractor.weights import fetch

            fetch(lambda: enum.get_state_dict(progress=True, check_hash=True),
                  lambda why: _missing_weights_error(arch, enum, why), server=enum.url)
        model = get_model(arch, weights=enum)  # in the cache now: loaded, not downloaded again
        suffix = "" if enum == default else f"_{enum.name}"
    elif path is not None:
        model = _load_local(arch, path, default)
        suffix = "_" + re.sub(r"[^A-Za-z0-9.-]+", "-", path.stem)
    else:
        kwargs = {"aux_logits": False, "init_weights": True} if arch in ("inception_v3", "googlenet") else {}
        model = get_model(arch, weights=None, **kwargs)
        suffix = "_random"
    source = enum or default
    preprocess = PreprocessCfg.from_torchvision(source.transforms()) if source is not None else PreprocessCfg()
    dim = strip_classifier(model)
    params = {"arch": arch, "weights": str(path) if path else (enum.name if enum else None)}
    if set(options) - set(OPTIONS):
        raise TypeError(f"create_torchvision() got an unexpected keyword argument {sorted(set(options) - set(OPTIONS))}")
    if any(v not in (None, False, 0, "head") for v in options.values()):
        return make_extractor(f"{arch}{suffix}", AvgpoolHookBackbone(model), preprocess, normalize=normalize,
                              device=device, precision=precision, params={"framework": "torchvision", **params},
                              **options)
    name = f"{arch}{suffix}{'_l2' if normalize else ''}"
    return NeuralExtractor(
        name, model, preprocess, normalize=normalize, device=device, precision=precision, dim=dim, params=params
    )


def _classification_models() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


ENTRIES = {arch: functools.partial(create_torchvision, arch) for arch in _classification_models()}
