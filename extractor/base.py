"""The extractor interface shared by hashes and neural models: per-image `transform`, batched call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from helpers.images import load_image


class Extractor:
    """One feature method: `transform` runs per image in DataLoader workers, `__call__` per batch.

    Subclasses set `name` (the store file name, non-default params included), `binary` (packed
    uint8 bits), `dim` (features, or bits) and `draft` (JPEG draft size for decoding, or None).
    `threaded` says `decode` + `transform` spend their time with the GIL released, so threads
    feed it faster than worker processes.
    """

    name: str = ""
    binary: bool = False
    dim: int = 0
    draft: tuple[int, int] | None = None
    threaded: bool = False
    #: The module of the registry factory that built it (set by `create_extractor`; its source is
    #: hashed into the store's provenance, `extractor.code_digest`).
    factory_module: str | None = None

    def decode(self, path: str | os.PathLike, data: bytes | None = None) -> Any:
        """Read one image for `transform` (in DataLoader workers): a PIL RGB image by default.

        `data` holds the file's bytes when they do not come from `path` (a tar member). Raises
        `BadImageError` for a file that cannot be used. Hashes override it with a faster grey path.
        """
        return load_image(path, draft=self.draft, data=data)

    def transform(self, image: Image.Image) -> Any:
        """PIL RGB image -> one sample (array or tensor) ready to be collated."""
        raise NotImplementedError

    def __call__(self, batch: Any) -> np.ndarray:
        """Collated batch -> (B, dim) float32, or (B, dim // 8) uint8 packed bits for hashes."""
        raise NotImplementedError

    def collate(self, samples: Sequence[Any]) -> Any:
        """Stack per-image samples into one batch (numpy arrays stay numpy, tensors stay tensors)."""
        first = samples[0]
        if isinstance(first, np.ndarray):
            return np.stack(samples)
        import torch

        if isinstance(first, torch.Tensor):
            return torch.stack(list(samples))
        raise TypeError(f"cannot collate samples of type {type(first).__name__}; expected numpy arrays or tensors")

    def to(self, device: str | None = None, precision: str | None = None) -> Extractor:
        """Move to a device / precision (a no-op for CPU-only methods such as hashes)."""
        return self

    @property
    def params(self) -> dict[str, Any]:
        """Parameters recorded in the store's `params` attribute."""
        return {}

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Features of a few PIL images in memory (convenience for notebooks and tests)."""
        return self(self.collate([self.transform(img.convert("RGB")) for img in images]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, binary={self.binary})"
