"""Deterministic synthetic pictures for tests, benchmarks and notebooks (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def synthetic_image(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A deterministic picture with structure (blobs and gradients), distinct for each seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.3)]
        img[..., c] = 127 + 100 * np.sin(fx * x / w * 6.28 + phase) * np.cos(fy * y / h * 6.28)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, min(w, h) / 2)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
