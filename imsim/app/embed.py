"""Rebuild the extractor that wrote a feature store, so a query is embedded exactly as the store was.

The store records the extractor's name (``method``) and its parameters (``params``); the registry
entry whose name starts ``method`` is called with the parameters its factory accepts, and the
result must give back the same name and parameters, or the store is refused with the reason.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from extractor import create_extractor, list_extractors
from extractor.base import Extractor
from extractor.registry import ALIASES, _all_entries
from helpers.images import BadImageError, _to_mode

#: Parameters that describe the run rather than the features: not compared.
RUN_PARAMS = ("precision",)


class ExtractorMismatch(ValueError):
    """The registry cannot rebuild the extractor a store was written with."""


def _candidates(method: str) -> list[str]:
    names = set(list_extractors()) | set(ALIASES)
    found = [n for n in names if method == n or method.startswith(n + "_")]
    return sorted(found, key=len, reverse=True)


def _comparable(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k not in RUN_PARAMS}, sort_keys=True, default=str)


def _agrees(stored: Any, current: Any) -> bool:
    """Every parameter the store recorded has the same value now (keys added since, with their
    defaults, are not in the store and do not count)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        return all(k in RUN_PARAMS or (k in current and _agrees(v, current[k])) for k, v in stored.items())
    if isinstance(stored, (list, tuple)) and isinstance(current, (list, tuple)):
        return len(stored) == len(current) and all(_agrees(a, b) for a, b in zip(stored, current, strict=True))
    return stored == current


def extractor_for_store(attrs: dict[str, Any], device: str = "cpu") -> Extractor:
    """The extractor that wrote a store with these attributes (as `extractor.store.store_info` gives them)."""
    method = str(attrs["method"])
    params = attrs.get("params") or {}
    if isinstance(params, str):
        params = json.loads(params)
    entries = _all_entries()
    tried = []
    for name in _candidates(method):
        factory = entries[ALIASES.get(name, name)]
        accepted = inspect.signature(factory).parameters
        kwargs = {k: v for k, v in params.items() if k in accepted}
        if "device" in accepted:
            kwargs["device"] = device
        # the recorded weights may be a description (a wheel's version), not an argument: then the default
        attempts = [kwargs, {k: v for k, v in kwargs.items() if k != "weights"}] if "weights" in kwargs else [kwargs]
        for attempt in attempts:
            try:
                ext = create_extractor(name, **attempt)
            except (ValueError, TypeError, FileNotFoundError) as err:
                tried.append(f"{name}: {err}")
                continue
            if ext.name == method and _agrees(params, json.loads(_comparable(ext.params))):
                return ext
            tried.append(f"{name} gives {ext.name!r} with {_comparable(ext.params)}")
    raise ExtractorMismatch(
        f"cannot rebuild the extractor of store method {method!r} with params {_comparable(params)}: "
        + ("; ".join(tried) if tried else "no registered extractor has that name")
        + ". Register it first (extractor.register_extractor) or use a store of a built-in extractor."
    )


def prepare_file(ext: Extractor, path: str | os.PathLike, max_pixels: int) -> Any:
    """One sample of an image file, decoded exactly as `extract_dataset` decodes it (the extractor's
    own `decode`: e.g. reduced-scale grey JPEG decoding for hashes), ready for `ext.collate`."""
    try:
        with Image.open(path) as img:  # header only: refuse a bomb before decoding
            size = img.size
    except Exception as err:  # PIL raises many kinds
        raise BadImageError(f"{Path(path).name}: cannot decode ({type(err).__name__})") from None
    if size[0] * size[1] > max_pixels:
        raise BadImageError(f"{size[0]}x{size[1]} exceeds the {max_pixels} pixel limit")
    return ext.transform(ext.decode(Path(path)))


def prepare_image(ext: Extractor, image: Image.Image, max_pixels: int) -> Any:
    """One sample of an image already in memory (an edited or cropped query)."""
    if image.width * image.height > max_pixels:
        raise BadImageError(f"{image.width}x{image.height} exceeds the {max_pixels} pixel limit")
    return ext.transform(_to_mode(image, "RGB"))


def embed_file(ext: Extractor, path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    """(1, width) features of an image file, as the store's extraction computes them."""
    return ext(ext.collate([prepare_file(ext, path, max_pixels)]))


def embed_image(ext: Extractor, image: Image.Image, max_pixels: int) -> np.ndarray:
    """(1, width) features of an image already in memory."""
    return ext(ext.collate([prepare_image(ext, image, max_pixels)]))
