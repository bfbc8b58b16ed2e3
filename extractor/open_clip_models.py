"""open_clip models (`open_clip:<model>/<pretrained tag>`): the image tower as an extractor, the text tower for text queries.

Names as open_clip lists them (`open_clip.list_pretrained()`): ``open_clip:ViT-B-32/laion2b_s34b_b79k``
(``open_clip:ViT-B-32:openai`` is accepted too), or a schema name open_clip resolves itself:
``open_clip:hf-hub:timm/ViT-B-16-SigLIP`` (from the local Hugging Face cache only) or
``open_clip:local-dir:/path/to/model`` (a folder with ``open_clip_config.json`` and weights).
A tag's weights are looked up in the Hugging Face cache and in open_clip's URL cache
(``~/.cache/clip``) and downloaded there on first use by open_clip's own downloader (offline it says
what to fetch: `extractor.weights`); `weights=PATH` loads a local checkpoint; `weights=None`
is random init. Image features: ``encode_image`` (pooling 'head'); text features:
`encode_text(texts)`, L2-normalised, stored like image features (`extractor.texts`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from extractor.framework_options import make_extractor, safe_name
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pooling import Backbone

FRAMEWORK = "open_clip"
SCHEMAS = ("hf-hub:", "local-dir:")
URL_CACHE = Path("~/.cache/clip")


def _open_clip():
    import open_clip

    return open_clip


def split_name(name: str) -> tuple[str, str | None]:
    """'ViT-B-32/openai', 'ViT-B-32:openai' or ILIAS's 'RN50.openai' -> (model, tag); schema names have no tag."""
    if name.startswith(SCHEMAS):
        return name, None
    for sep in ("/", ":"):
        if sep in name:
            model, tag = name.split(sep, 1)
            return model, tag or None
    if "." in name and name not in _open_clip().list_models():
        model, tag = name.rsplit(".", 1)
        if model in _open_clip().list_models():
            return model, tag
    return name, None


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hugging Face hub calls read the local cache only."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _cached(cfg: dict[str, Any]) -> Path | None:
    """The file of an open_clip pretrained cfg already in the Hugging Face or URL cache."""
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # 'org/model/' (default file names) or 'org/model/file'
        for name in ([filename] if filename else []) + ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    url = cfg.get("url", "")
    if url and (URL_CACHE.expanduser() / os.path.basename(url)).is_file():
        return URL_CACHE.expanduser() / os.path.basename(url)
    return None


def local_weights(model: str, tag: str) -> Path:
    """The file of open_clip's pretrained (model, tag): cached, or downloaded now; FileNotFoundError when not."""
    oc = _open_clip()
    cfg = oc.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = oc.list_pretrained_tags_by_model(model)
        raise ValueError(f"open_clip: no pretrained tag {tag!r} for {model!r}; its tags: {tags or 'none'} "
                         "(or give weights=PATH)")
    found = _cached(cfg)
    if found is not None:
        return found
    from extractor.weights import fetch, hf_endpoint, verify_hf_file

    def download() -> Path:
        path = Path(oc.download_pretrained(cfg, cache_dir=None))
        return verify_hf_file(path) if cfg.get("hf_hub") else path

    return fetch(download, lambda why: _missing(model, tag, cfg, why),
                 server=hf_endpoint() if cfg.get("hf_hub") else cfg.get("url"))


def _missing(model: str, tag: str, cfg: dict[str, Any], why: str) -> FileNotFoundError:
    places = []
    if cfg.get("hf_hub"):
        places.append(f"the Hugging Face cache (repository {os.path.split(cfg['hf_hub'])[0]})")
    if cfg.get("url"):
        places.append(str(URL_CACHE.expanduser() / os.path.basename(cfg["url"])))
    return FileNotFoundError(
        f"open_clip:{model}/{tag}: pretrained weights not found in {' or '.join(places) or 'any cache'} and not "
        f"downloaded: {why}. With network the first use downloads them (without --offline / HF_HUB_OFFLINE=1); "
        f"or on a machine with network run `python -c \"import open_clip; "
        f"open_clip.create_model('{model}', pretrained='{tag}')\"` and copy the cache over, or pass weights=PATH "
        "to the checkpoint file, or weights=None for random init."
    )


def preprocess_from_open_clip(cfg: dict[str, Any]) -> PreprocessCfg:
    """open_clip's eval transform (resize + centre crop at the tower's size, its mean/std) as a PreprocessCfg."""
    size = cfg.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mode = cfg.get("resize_mode", "shortest")
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in ("nearest", "bilinear", "bicubic", "lanczos"):
        interpolation = "bicubic"
    mean, std = tuple(float(m) for m in cfg["mean"]), tuple(float(s) for s in cfg["std"])
    if mode == "squash":
        return PreprocessCfg(size, "square", None, interpolation, mean, std)
    if mode == "longest":
        return PreprocessCfg(size, "longer", None, interpolation, mean, std, pad_to=size)
    return PreprocessCfg(size, "shorter", size, interpolation, mean, std)


class ImageTower(Backbone):
    """``model.encode_image`` (the CLIP embedding; open_clip exposes no spatial map for every tower)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


class OpenClipExtractor(NeuralExtractor):
    """An open_clip image tower that also encodes texts into the same space (`encode_text`)."""

    clip_model: nn.Module
    tokenizer: Any

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(len(texts), dim) float32 L2-normalised text features, comparable with the image features."""
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of texts, not one string")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                feats = self.clip_model.encode_text(tokens)
            out.append(F.normalize(feats.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.dim), np.float32)


def create_open_clip(
    name: str,
    weights: str | os.PathLike | None = "DEFAULT",
    normalize: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    **options: Any,
) -> OpenClipExtractor:
    """open_clip `name` ('model/tag', 'model:tag', 'hf-hub:...', 'local-dir:...') as an image extractor with a text tower."""
    oc = _open_clip()
    model_name, tag = split_name(name)
    if not model_name.startswith(SCHEMAS) and model_name not in oc.list_models():
        import difflib

        close = difflib.get_close_matches(model_name, oc.list_models(), n=8, cutoff=0.5)
        raise ValueError(f"unknown open_clip model {model_name!r}; close names: {close or 'none'} "
                         "(open_clip.list_pretrained() lists model/tag pairs)")
    if (options.get("pooling") or "head") != "head":
        raise ValueError(f"open_clip:{name}: only pooling='head' (encode_image); for other poolings use the timm "
                         "name of the same tower (timm:vit_base_patch16_clip_224.openai ...)")
    if weights is None:
        pretrained, source, suffix = None, None, "_random"
        if model_name.startswith("hf-hub:"):
            raise ValueError("weights=None with an hf-hub: name: random init needs a plain open_clip model name")
    elif str(weights) != "DEFAULT":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"open_clip:{name}: weights file {path} does not exist")
        pretrained, source, suffix = str(path), str(path), "_" + safe_name(path.stem)
    elif model_name.startswith(SCHEMAS):
        pretrained, source, suffix = None, model_name, ""
    else:
        if tag is None:
            tags = oc.list_pretrained_tags_by_model(model_name)
            raise ValueError(f"open_clip:{name}: give a pretrained tag, e.g. open_clip:{model_name}/{tags[0] if tags else 'TAG'} "
                             f"(its tags: {tags or 'none'}), or weights=PATH / None")
        path = local_weights(model_name, tag)
        pretrained, source, suffix = str(path), f"{tag} ({path})", ""
    from extractor.weights import is_offline

    try:
        with _offline() if is_offline() else contextlib.nullcontext():  # hf-hub: names download on first use
            model = oc.create_model(model_name, pretrained=pretrained, load_weights=weights is not None)
            tokenizer = oc.get_tokenizer(model_name)
    except (OSError, RuntimeError) as e:
        if model_name.startswith("hf-hub:"):
            raise FileNotFoundError(
                f"open_clip:{name}: not in the local Hugging Face cache and not downloaded ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:200]}); on a machine with network "
                f"run `python -c \"import open_clip; open_clip.create_model('{model_name}')\"` and copy the cache over"
            ) from None
        raise
    model.eval()
    preprocess = preprocess_from_open_clip(getattr(model.visual, "preprocess_cfg", None) or {
        "size": model.visual.image_size, "mean": (0.48145466, 0.4578275, 0.40821073),
        "std": (0.26862954, 0.26130258, 0.27577711)})
    store = "open_clip-" + safe_name(model_name.replace("hf-hub:", "").replace("local-dir:", "")) + (
        f"-{safe_name(tag)}" if tag and weights is not None and str(weights) == "DEFAULT" else "") + suffix
    ext = make_extractor(store, ImageTower(model), preprocess, normalize=normalize, device=device,
                         precision=precision, params={"framework": FRAMEWORK, "model": model_name, "tag": tag,
                                                      "weights": source}, cls=OpenClipExtractor, **options)
    ext.clip_model = model
    ext.tokenizer = tokenizer
    return ext
