"""torch.hub models from a local hub directory (`hub:dinov2_vits14`, `hub:dino_vitb16`, `hub:owner/repo:entry`).

The repository is read from torch.hub's directory (``$TORCH_HOME/hub/facebookresearch_dinov2_main``,
what ``torch.hub.load`` leaves behind; fetched there by torch.hub on first use) or from
``hub_dir=PATH``; the entry is built with ``pretrained=False`` and the weights are read with
``weights_only=True`` from torch.hub's checkpoint cache (``DEFAULT``, the file the hub entry
downloads: fetched on first use with torch.hub's downloader from `WEIGHTS_URLS`) or from
``weights=PATH``. Offline (`extractor.weights`) the errors say what to fetch. DINO / DINOv2 ViTs give ``head`` (the model's output),
``cls`` and patch tokens (map poolings, ``local``); inputs are padded to the patch size.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from extractor.framework_options import make_extractor, safe_name
from extractor.neural import IMAGENET_MEAN, IMAGENET_STD, NeuralExtractor, PreprocessCfg
from extractor.pooling import AvgpoolHookBackbone, Backbone, tokens_to_map

FRAMEWORK = "hub"
#: entry prefix -> the GitHub repository that defines it
KNOWN_REPOS = {"dinov2_": "facebookresearch/dinov2", "dino_": "facebookresearch/dino"}
#: DINO v1 entries -> the checkpoint file their hubconf downloads
DINO_FILES = {
    "dino_vits16": "dino_deitsmall16_pretrain.pth",
    "dino_vits8": "dino_deitsmall8_pretrain.pth",
    "dino_vitb16": "dino_vitbase16_pretrain.pth",
    "dino_vitb8": "dino_vitbase8_pretrain.pth",
    "dino_resnet50": "dino_resnet50_pretrain.pth",
}
#: Where each family's hubconf downloads its checkpoints from (the file name is appended; DINOv2 adds
#: the architecture folder). A test points these at a server on 127.0.0.1.
WEIGHTS_URLS = {"dinov2_": "https://dl.fbaipublicfiles.com/dinov2/{arch}/", "dino_": "https://dl.fbaipublicfiles.com/dino/"}
#: DINO / DINOv2 preprocessing: bicubic 256, centre crop 224, ImageNet mean/std
PREPROCESS = PreprocessCfg(256, "shorter", 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD)


def split_name(name: str) -> tuple[str | None, str]:
    """'dinov2_vits14' -> ('facebookresearch/dinov2', 'dinov2_vits14'); 'owner/repo:entry' -> ('owner/repo', 'entry')."""
    if ":" in name:
        repo, entry = name.rsplit(":", 1)
        return repo, entry
    for prefix, repo in KNOWN_REPOS.items():
        if name.startswith(prefix):
            return repo, name
    return None, name


def find_repo_dir(repo: str | None, entry: str, hub_dir: str | os.PathLike | None = None) -> Path:
    """The local checkout holding `repo`'s hubconf.py; FileNotFoundError saying how to get it."""
    if hub_dir is not None:
        path = Path(hub_dir).expanduser()
        if not (path / "hubconf.py").is_file():
            raise FileNotFoundError(f"hub:{entry}: {path} has no hubconf.py")
        return path
    if repo is None:
        raise ValueError(f"hub:{entry}: unknown repository; name it (hub:owner/repo:{entry}) or pass hub_dir=PATH")
    root = Path(torch.hub.get_dir())
    owner, name = repo.split("/", 1)
    pattern = str(root / f"{glob.escape(owner)}_{glob.escape(name)}_*" / "hubconf.py")
    found = sorted(glob.glob(pattern))
    if not found:
        from extractor.weights import fetch

        fetch(lambda: torch.hub.list(repo, trust_repo=True),  # downloads and unpacks the repository
              lambda why: _missing_repo(repo, entry, root, why), server="https://github.com")
        found = sorted(glob.glob(pattern))
    if found:
        return Path(found[0]).parent
    raise _missing_repo(repo, entry, root, "torch.hub left no hubconf.py")


def _missing_repo(repo: str, entry: str, root: Path, why: str) -> FileNotFoundError:
    owner, name = repo.split("/", 1)
    return FileNotFoundError(
        f"hub:{entry}: repository {repo} is not in torch.hub's directory ({root}/{owner}_{name}_<ref>) and was not "
        f"downloaded: {why}. With network the first use fetches it (without --offline); or on a machine with "
        f"network run `python -c \"import torch; "
        f"torch.hub.load('{repo}', '{entry}')\"` and copy {root} over, or `git clone https://github.com/{repo} "
        f"{root}/{owner}_{name}_main`, or pass hub_dir=PATH."
    )


def default_weights_url(entry: str) -> str | None:
    """The URL the entry's hubconf downloads its checkpoint from (None if unknown)."""
    path = default_weights_file(entry)
    for prefix, base in WEIGHTS_URLS.items():
        if path is not None and entry.startswith(prefix):
            return base.format(arch=entry.removesuffix("_reg").removesuffix("_lc")) + path.name
    return None


def default_weights_file(entry: str) -> Path | None:
    """Where torch.hub's cache keeps the checkpoint this entry's hubconf downloads (None if unknown)."""
    if entry.startswith("dinov2_"):
        arch = entry.removesuffix("_reg").removesuffix("_lc")
        filename = f"{arch}_reg4_pretrain.pth" if entry.endswith("_reg") else f"{arch}_pretrain.pth"
    elif entry in DINO_FILES:
        filename = DINO_FILES[entry]
    else:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _load_weights(model: nn.Module, path: Path, entry: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for key in ("teacher", "state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]  # DINO ResNet-50: fc is Identity
    unexpected = [k for k in unexpected if not k.startswith("head.")]  # training heads
    if missing or unexpected:
        raise ValueError(f"hub:{entry}: {path} does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]} ({len(missing)} missing, {len(unexpected)} unexpected)")


class HubBackbone(Backbone):
    """DINO / DINOv2 ViTs (class token + patch tokens on their grid) or CNNs with an `avgpool`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        patch = getattr(model, "patch_size", None) or getattr(getattr(model, "patch_embed", None), "patch_size", None)
        self.patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch) if patch else None
        self.multiple = self.patch
        self.cnn = AvgpoolHookBackbone(model) if self.patch is None else None

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_map(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if self.cnn is not None:
            return self.cnn.forward_map(x)
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        features = getattr(self.model, "forward_features", None)
        if features is not None:
            out = features(x)
            if isinstance(out, dict) and "x_norm_patchtokens" in out:  # DINOv2
                return out.get("x_norm_clstoken"), tokens_to_map(out["x_norm_patchtokens"], grid)
        if hasattr(self.model, "get_intermediate_layers"):  # DINO v1: normalised tokens of the last block
            tokens = self.model.get_intermediate_layers(x, 1)[0]
            return tokens[:, 0], tokens_to_map(tokens[:, 1:], grid)
        return super().forward_map(x)


def create_hub(
    name: str,
    weights: str | os.PathLike | None = "DEFAULT",
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    *,
    hub_dir: str | os.PathLike | None = None,
    **options: Any,
) -> NeuralExtractor:
    """A torch.hub entry from a local checkout, weights from torch.hub's cache, a file, or None (random)."""
    repo, entry = split_name(name)
    repo_dir = find_repo_dir(repo, entry, hub_dir)
    try:
        model = torch.hub.load(str(repo_dir), entry, source="local", pretrained=False)
    except RuntimeError as e:
        if "Cannot find callable" not in str(e):
            raise
        text = (repo_dir / "hubconf.py").read_text(encoding="utf-8")
        entries = re.findall(r"^def ([A-Za-z]\w*)\(", text, flags=re.M)
        close = difflib.get_close_matches(entry, entries, n=8, cutoff=0.5)
        raise ValueError(f"hub:{name}: {repo_dir}/hubconf.py has no entry {entry!r}; close: {close or entries}") from None
    suffix, source = "", None
    if weights is None:
        suffix = "_random"
    else:
        if str(weights) == "DEFAULT":
            path = default_weights_file(entry)
            if path is None:
                raise FileNotFoundError(f"hub:{name}: no known checkpoint file for {entry!r}; pass weights=PATH "
                                        "(a state dict, loaded with weights_only=True) or weights=None")
            if not path.is_file():
                from extractor.weights import fetch, url_download

                fetch(lambda: url_download(default_weights_url(entry), path), server=default_weights_url(entry),
                      missing=lambda why: FileNotFoundError(
                    f"hub:{name}: weights {path} not found and not downloaded: {why}. With network the first use "
                    f"downloads them (without --offline); or on a machine with network run `python -c \"import "
                    f"torch; torch.hub.load('{repo}', '{entry}')\"` and copy {path} over, or pass weights=PATH, "
                    "or weights=None for random init."))
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"hub:{name}: weights file {path} does not exist")
            suffix = "_" + safe_name(path.stem)
        _load_weights(model, path, entry)
        source = str(path)
    return make_extractor(f"hub-{safe_name(entry)}{suffix}", HubBackbone(model.eval()), PREPROCESS,
                          normalize=normalize, device=device, precision=precision,
                          params={"framework": FRAMEWORK, "model": name, "weights": source}, **options)
