"""SimCLR v1/v2 extractor entries: converted official checkpoints, pooled backbone features.

Canonical names are filename-safe: `simclr_v1_r50_{1,2,4}x` and `simclr_v2_r{50,101,152}_{1,2}x_sk{0,1}`
plus `simclr_v2_r152_3x_sk1`; `ALIASES` maps the seed's spaced names ("SimCLR v1 ResNet50 4x",
"SimCLR v2 ResNet50 2x" = the sk1 model) to them. Weights come from the files `download.py` writes
(``~/.cache/imsim/SimCLRv1/torch_checkpoints/...``, `helpers.paths.CACHE_DIR`; a clone's older
``SimCLRv1/torch_checkpoints/`` is read too), loaded with weights_only=True; a missing one is
downloaded and converted on first use (needs network and the ``convert`` extra, TensorFlow).
Preprocessing as the seed: shorter side 256 (Lanczos), centre crop 224, [0, 1] inputs, no normalisation.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from extractor.framework_options import OPTIONS, make_extractor
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pooling import Backbone
from helpers.paths import CACHE_DIR, REPO_ROOT
from SimCLRv1 import download as v1_files
from SimCLRv1.resnet_wider import resnet50_wider
from SimCLRv2 import download as v2_files
from SimCLRv2.resnet import MODELS as V2_MODELS
from SimCLRv2.resnet import ResNet, get_resnet, parse_model_name

PREPROCESS = PreprocessCfg(resize_size=256, resize_mode="shorter", crop_size=224, interpolation="lanczos",
                           mean=None, std=None)
V1_MODELS = ("1x", "2x", "4x")
V1_CATEGORIES = tuple(v1_files.STEPS)
V2_CATEGORIES = tuple(v2_files.STEPS)


def feature_dim(name: str) -> int:
    """Feature size of a canonical entry name, without building the model (2048 * width)."""
    return 2048 * int(re.search(r"_(\d)x", name).group(1))


def _load_state(path: Path, section: str, name: str) -> dict[str, torch.Tensor]:
    """One section ('state_dict' for v1, 'encoder' for v2) of a converted checkpoint, weights_only."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not isinstance(state.get(section), dict):
        keys = list(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{name}: {path} is not a converted SimCLR checkpoint (expected a dict with "
                         f"{section!r}, got {keys}); create it with download.py")
    return state[section]


def _root(root: str | Path | None, version: str, locate: Any) -> Path:
    """The folder holding download.py's output: `root`, else the cache, else a clone's SimCLRv*/ holding it."""
    if root is not None:
        return Path(root) / version
    cache = CACHE_DIR / version
    legacy = REPO_ROOT / version
    return legacy if not locate(cache).is_file() and locate(legacy).is_file() else cache


def _resolve(weights: str | os.PathLike | None, default: Path, command: str, name: str,
             download: Any = None, server: str | None = None) -> Path | None:
    """The checkpoint file to load: the download.py output for 'DEFAULT' (made on first use), a path, or None."""
    if weights is None:
        return None
    path = default if str(weights) == "DEFAULT" else Path(weights).expanduser()
    if path.is_file():
        return path

    def missing(why: str) -> FileNotFoundError:
        hint = f"Create it (needs network and TensorFlow) with:\n    {command}\n" if str(weights) == "DEFAULT" else ""
        return FileNotFoundError(f"{name}: SimCLR checkpoint {path} not found{f' ({why})' if why else ''}. {hint}"
                                 "Or pass weights=PATH to a converted file, or weights=None for random init.")

    if str(weights) != "DEFAULT" or download is None:
        raise missing("")
    from extractor.weights import fetch

    fetch(download, missing, server=server)
    return path


class SimclrBackbone(Backbone):
    """SimCLR ResNet: head = pooled backbone output; map = the last stage's output (map poolings, local)."""

    def __init__(self, model: ResNet) -> None:
        super().__init__()
        self.model = model

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_map(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        m = self.model
        return None, m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))


def _finish(name: str, model: ResNet, path: Path | None, default: Path, tag: str, normalize: bool, device: str,
            precision: str, params: dict, options: dict | None = None) -> NeuralExtractor:
    """Drop the fc (features = pooled backbone output) and wrap the model with its preprocessing.

    The store name gets `tag` for a non-default download.py output, '_random' without weights, and
    the file stem for any other file.
    """
    dim = model.num_features
    model.fc = nn.Identity()
    if path is None:
        suffix = "_random"
    elif path == default:
        suffix = tag
    else:
        suffix = "_" + re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem)
    params = {**params, "weights": str(path) if path else None}
    if set(options or {}) - set(OPTIONS):
        raise TypeError(f"{name}: unexpected keyword argument {sorted(set(options) - set(OPTIONS))}")
    options = {k: v for k, v in (options or {}).items() if v not in (None, False, 0, "head")}
    if options:
        return make_extractor(f"{name}{suffix}", SimclrBackbone(model), PREPROCESS, normalize=normalize,
                              device=device, precision=precision, params={"framework": "simclr", **params}, **options)
    return NeuralExtractor(f"{name}{suffix}{'_l2' if normalize else ''}", model, PREPROCESS, normalize=normalize,
                           device=device, precision=precision, dim=dim, params=params)


def create_simclr_v1(model: str, weights: str | os.PathLike | None = "DEFAULT", normalize: bool = False,
                     device: str = "cpu", precision: str = "auto", *, category: str = "pretrain",
                     checkpoint: str | os.PathLike | None = None, root: str | Path | None = None,
                     **options) -> NeuralExtractor:
    """SimCLR v1 ResNet-50 `model` ('1x', '2x', '4x'): weights 'DEFAULT' (download.py output for
    `category`), a converted .pth path (or `checkpoint=`), or None (random init, for tests).
    `options` (pooling, transforms, ...) as for every framework model."""
    if model not in V1_MODELS:
        raise ValueError(f"unknown SimCLR v1 model {model!r}; valid: {V1_MODELS}")
    name = f"simclr_v1_r50_{model}"
    folder = _root(root, "SimCLRv1", lambda r: v1_files.torch_checkpoint_path(model, category, r))
    default = v1_files.torch_checkpoint_path(model, category, folder)
    path = _resolve(checkpoint if checkpoint is not None else weights, default,
                    v1_files.download_command(model, category), name,
                    lambda: v1_files.download_and_convert(model, category, root=folder), v1_files.BASE_URL)
    net = resnet50_wider(int(model[0]))
    if path is not None:
        net.load_state_dict(_load_state(path, "state_dict", name))
    tag = "" if category == "pretrain" else f"_{category}"
    return _finish(name, net, path, default, tag, normalize, device, precision, {"model": model, "category": category},
                   options)


def create_simclr_v2(model: str, weights: str | os.PathLike | None = "DEFAULT", normalize: bool = False,
                     device: str = "cpu", precision: str = "auto", *, category: str = "pretrained", ema: bool = True,
                     checkpoint: str | os.PathLike | None = None, root: str | Path | None = None,
                     **options) -> NeuralExtractor:
    """SimCLR v2 `model` (e.g. 'r50_2x_sk1'): weights 'DEFAULT' (download.py output for `category`/`ema`),
    a converted .pth path (or `checkpoint=`), or None (random init). The projection head is not applied.
    `options` (pooling, transforms, ...) as for every framework model."""
    parse_model_name(model)
    name = f"simclr_v2_{model}"
    folder = _root(root, "SimCLRv2", lambda r: v2_files.torch_checkpoint_path(model, category, ema, r))
    default = v2_files.torch_checkpoint_path(model, category, ema, folder)
    path = _resolve(checkpoint if checkpoint is not None else weights, default,
                    v2_files.download_command(model, category, ema), name,
                    lambda: v2_files.download_and_convert(model, category, ema, root=folder), v2_files.BASE_URL)
    net, _ = get_resnet(model)
    if path is not None:
        net.load_state_dict(_load_state(path, "encoder", name))
    tag = ("" if category == "pretrained" else f"_{category}") + ("" if ema else "_noema")
    return _finish(name, net, path, default, tag, normalize, device, precision,
                   {"model": model, "category": category, "ema": ema}, options)


ENTRIES = {f"simclr_v1_r50_{m}": functools.partial(create_simclr_v1, m) for m in V1_MODELS}
ENTRIES.update({f"simclr_v2_{m}": functools.partial(create_simclr_v2, m) for m in V2_MODELS})

#: the seed's names -> canonical names ("SimCLR v2 ResNet50 2x" was the selective-kernel model)
ALIASES = {f"SimCLR v1 ResNet50 {m}": f"simclr_v1_r50_{m}" for m in V1_MODELS}
ALIASES.update({f"SimCLR v2 ResNet{m[1:].split('_')[0]} {m.split('_')[1]}": f"simclr_v2_{m}"
                for m in V2_MODELS if m.endswith("_sk1")})
