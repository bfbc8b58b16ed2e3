"""The options every ``<framework>:<model>`` extractor shares, and `make_extractor`, which applies them.

The framework modules (`timm_models`, `torchvision_models`, `open_clip_models`, `hub_models`, `simclr`)
build a backbone and hand it to `make_extractor`; `extractor.frameworks` dispatches a name to them.
This module imports none of them, so the modules import downward only.
"""

from __future__ import annotations

import re
from typing import Any

from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pooling import POOLINGS, Backbone, PooledModel

TRANSFORMS = ("RESIZE_LARGE", "RESIZE_SMALL", "RESIZE_CENTER", "RESIZE_SQUARE", "RESIZE_PAD")
MULTISCALE = (0.707, 1.0, 1.414)
MULTIROTATE = (0, 90, 180, 270)
#: the options every framework factory accepts besides weights / normalize / device / precision
OPTIONS = ("pooling", "transforms", "resolution", "min_size", "multiscale", "multirotate")


def ilias_preprocess(transforms: str, resolution: int, base: PreprocessCfg, min_size: int = 0) -> PreprocessCfg:
    """ILIAS's inference transform at `resolution`, with the model's interpolation and mean/std.

    RESIZE_LARGE: longer side = resolution, aspect kept (padded to `min_size` if smaller);
    RESIZE_SMALL: shorter side = resolution; RESIZE_CENTER: shorter side then centre crop;
    RESIZE_SQUARE: resolution x resolution; RESIZE_PAD: longer side, then centre-padded to a square.
    """
    name = str(transforms).upper()
    if name not in TRANSFORMS:
        raise ValueError(f"transforms={transforms!r}; expected one of {TRANSFORMS}")
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    mode, crop, pad = {
        "RESIZE_LARGE": ("longer", None, min_size or None),
        "RESIZE_SMALL": ("shorter", None, None),
        "RESIZE_CENTER": ("shorter", resolution, None),
        "RESIZE_SQUARE": ("square", None, None),
        "RESIZE_PAD": ("longer", None, resolution),
    }[name]
    return PreprocessCfg(resize_size=resolution, resize_mode=mode, crop_size=crop, interpolation=base.interpolation,
                         mean=base.mean, std=base.std, pad_to=pad)


def safe_name(text: str) -> str:
    """A model name as a filename-safe store-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def make_extractor(
    name: str,
    backbone: Backbone,
    base: PreprocessCfg,
    *,
    pooling: str = "head",
    transforms: str | None = None,
    resolution: int | None = None,
    min_size: int = 0,
    multiscale: bool = False,
    multirotate: bool = False,
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    params: dict[str, Any] | None = None,
    cls: type[NeuralExtractor] = NeuralExtractor,
) -> NeuralExtractor:
    """Wrap a backbone with pooling, preprocessing and test-time views; the store name records each non-default.

    `cls` is the extractor class to build (a subclass adding e.g. a text tower)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")
    suffix = "" if pooling == "head" else f"_{pooling}"
    preprocess = base
    if transforms is not None or resolution is not None:
        transforms = transforms or "RESIZE_LARGE"
        resolution = resolution or base.input_size[0]
        preprocess = ilias_preprocess(transforms, resolution, base, min_size)
        suffix += f"_{transforms.upper().removeprefix('RESIZE_').lower()}{resolution}"
        if min_size:
            suffix += f"min{min_size}"
    scales = MULTISCALE if multiscale else (1.0,)
    rotations = MULTIROTATE if multirotate else (0,)
    suffix += ("_ms" if multiscale else "") + ("_mr" if multirotate else "")
    l2 = normalize or multiscale or multirotate
    return cls(
        f"{name}{suffix}{'_l2' if normalize else ''}", PooledModel(backbone, pooling), preprocess, normalize=l2,
        device=device, precision=precision, scales=scales, rotations=rotations, local=pooling == "local",
        params={**(params or {}), "pooling": pooling, "transforms": transforms, "resolution": resolution},
    )
