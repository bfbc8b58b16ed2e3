"""Any timm model as an extractor (`timm:<name>`), with the preprocessing of its `pretrained_cfg`.

``weights="DEFAULT"`` takes the file timm would download from the local Hugging Face cache or
torch hub cache, and downloads it there on first use (`extractor.weights`: verified, atomic,
resumable; offline it says what to fetch); a path loads that file (timm's own loader:
``weights_only=True``, checkpoint filters such as ViT position-embedding resizing); a state dict
is loaded as is; ``None`` means random init (tests). timm is imported lazily.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from extractor.framework_options import make_extractor, safe_name
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pooling import Backbone, tokens_to_map

FRAMEWORK = "timm"


def _timm():
    import timm

    return timm


def check_model_name(name: str) -> None:
    """Raise ValueError listing close timm names when `name` (architecture[.tag]) is not a timm model."""
    timm = _timm()
    arch = name.split(".")[0]
    if timm.is_model(arch):
        return
    import difflib

    known = timm.list_models()
    close = difflib.get_close_matches(arch, known, n=8, cutoff=0.6)
    raise ValueError(f"unknown timm model {name!r}; close timm names: {close or 'none'} "
                     "(timm.list_models('*pattern*') lists them all)")


def preprocess_from_timm(data_cfg: dict[str, Any]) -> PreprocessCfg:
    """timm's eval transform (resize shorter side to input/crop_pct, centre crop) as a PreprocessCfg."""
    size = int(data_cfg["input_size"][-1])
    crop_pct = float(data_cfg.get("crop_pct") or 1.0)
    interpolation = data_cfg.get("interpolation", "bilinear")
    if interpolation not in ("nearest", "bilinear", "bicubic", "lanczos"):
        interpolation = "bicubic"
    return PreprocessCfg(
        resize_size=int(math.floor(size / crop_pct)),
        resize_mode="shorter",
        crop_size=size,
        interpolation=interpolation,
        mean=tuple(float(m) for m in data_cfg["mean"]),
        std=tuple(float(s) for s in data_cfg["std"]),
    )


def _cached_file(pretrained_cfg: dict[str, Any]) -> Path | None:
    """The weights file timm would download for this cfg, if already in a local cache."""
    hf_id = pretrained_cfg.get("hf_hub_id")
    if hf_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - timm depends on huggingface_hub
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, _, revision = hf_id.partition("@")
            names = [pretrained_cfg.get("hf_hub_filename")] if pretrained_cfg.get("hf_hub_filename") else []
            names += ["open_clip_model.safetensors", "model.safetensors", "open_clip_pytorch_model.bin",
                      "pytorch_model.bin"]
            for filename in names:
                found = try_to_load_from_cache(repo, filename, revision=revision or None)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
    url = pretrained_cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if path.is_file():
            return path
    return None


def download_weights(pretrained_cfg: dict[str, Any]) -> None:
    """Fetch the weights timm names for this cfg into its cache: the Hugging Face hub, else its URL (torch.hub)."""
    from extractor.weights import hf_download, url_download

    hf_id = pretrained_cfg.get("hf_hub_id")
    if hf_id:
        repo, _, revision = hf_id.partition("@")
        names = [pretrained_cfg.get("hf_hub_filename") or "model.safetensors", "model.safetensors",
                 "pytorch_model.bin"]
        hf_download(repo, names, revision or None)
        return
    url = pretrained_cfg.get("url")
    if not url:
        raise FileNotFoundError("timm has no pretrained file for this model")
    url_download(url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url))


def missing_weights_error(name: str, pretrained_cfg: dict[str, Any], why: str = "") -> FileNotFoundError:
    """The error for absent pretrained weights: where they would be, why they did not come, how to get them."""
    hf_id = pretrained_cfg.get("hf_hub_id")
    url = pretrained_cfg.get("url")
    where = []
    if hf_id:
        where.append(f"the Hugging Face cache ({os.environ.get('HF_HUB_CACHE') or '~/.cache/huggingface/hub'}, "
                     f"repository {hf_id})")
    if url:
        where.append(f"{Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(url)}")
    if not where:
        where.append("no known source (timm has no pretrained file for it)")
    return FileNotFoundError(
        f"timm:{name}: pretrained weights not found in {' or '.join(where)}"
        + (f" and not downloaded: {why}" if why else "") + ". With network the first use downloads them (without "
        f"--offline / HF_HUB_OFFLINE=1); or run `python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` "
        "on a machine with network and copy the cache over, or pass a local file with --weights PATH (weights=PATH), "
        "or weights=None for random init."
    )


def create_timm_model(name: str, weights: Any = "DEFAULT", **model_kwargs: Any) -> tuple[nn.Module, str | None]:
    """(timm model in eval mode, weights source) for `weights`: 'DEFAULT', a path, a state dict or None."""
    timm = _timm()
    check_model_name(name)
    if weights is None:
        return timm.create_model(name, pretrained=False, **model_kwargs).eval(), None
    if isinstance(weights, dict):
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": weights},
                                  **model_kwargs)
        return model.eval(), "state_dict"
    if str(weights) == "DEFAULT":
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
        cfg = cfg.to_dict() if cfg is not None else {}
        path = _cached_file(cfg)
        if path is None:
            from extractor.weights import fetch, hf_endpoint

            fetch(lambda: download_weights(cfg), lambda why: missing_weights_error(name, cfg, why),
                  server=hf_endpoint() if cfg.get("hf_hub_id") else cfg.get("url"))
            path = _cached_file(cfg)
            if path is None:
                raise missing_weights_error(name, cfg, "the downloaded file is not where timm looks for it")
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"timm:{name}: weights file {path} does not exist")
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **model_kwargs)
    return model.eval(), str(path)


def _store_name(name: str, weights: Any, source: str | None) -> str:
    """Filename-safe store name: 'timm-<name>' plus '_random' or the weights file's stem when not default."""
    base = "timm-" + safe_name(name)
    if weights is None:
        return base + "_random"
    if str(weights) == "DEFAULT" or isinstance(weights, dict):
        return base
    return base + "_" + safe_name(Path(str(source)).stem)


class TimmBackbone(Backbone):
    """A timm model: head = its pooled (pre-logits) output; map = `forward_features` (ViT tokens on their grid)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        self.patch = int(patch[0]) if isinstance(patch, (tuple, list)) else (int(patch) if patch else None)
        self.multiple = self.patch if getattr(model, "dynamic_img_size", False) else None

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_map(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        feats = self.model.forward_features(x)
        if feats.ndim == 4:
            if getattr(self.model, "output_fmt", "NCHW") == "NHWC":
                feats = feats.permute(0, 3, 1, 2)
            return None, feats
        prefix = int(getattr(self.model, "num_prefix_tokens", 0))
        has_cls = getattr(self.model, "cls_token", None) is not None
        cls = feats[:, 0] if has_cls else None
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch) if self.patch else None
        return cls, tokens_to_map(feats[:, prefix:], grid)


def create_timm(
    name: str,
    weights: Any = "DEFAULT",
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    **options: Any,
) -> NeuralExtractor:
    """timm model `name` (e.g. 'resnet50.a1_in1k') as an extractor; `options` as in `framework_options.make_extractor`.

    ViTs are built with ``dynamic_img_size=True`` (inputs padded to a multiple of the patch size), so
    aspect-keeping transforms work; CLIP-style towers keep their projection head, as ILIAS does.
    """
    model_kwargs: dict[str, Any] = {"num_classes": None if "clip" in name else 0}
    try:
        model, source = create_timm_model(name, weights, dynamic_img_size=True, **model_kwargs)
    except TypeError:  # not a ViT-style model
        model, source = create_timm_model(name, weights, **model_kwargs)
    return wrap_timm(model, _store_name(name, weights, source), normalize=normalize, device=device,
                     precision=precision, params={"model": name, "weights": source}, keep_head="clip" in name,
                     **options)


def wrap_timm(
    model: nn.Module,
    store_name: str,
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    params: dict[str, Any] | None = None,
    keep_head: bool = False,
    **options: Any,
) -> NeuralExtractor:
    """A built timm model as an extractor: classifier removed (`keep_head` keeps a CLIP projection)."""
    if not keep_head:
        model.reset_classifier(0)
    data_cfg = _timm().data.resolve_data_config({}, model=model)
    return make_extractor(store_name, TimmBackbone(model.eval()), preprocess_from_timm(data_cfg),
                          normalize=normalize, device=device, precision=precision,
                          params={"framework": FRAMEWORK, **(params or {})}, **options)
