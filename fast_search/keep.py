"""Which file of a group of duplicates to keep: facts about each file, and the policies that rank them.

Policies (``--keep``):

- ``resolution`` (default): the original, as far as the pixels tell: the most *effective*
  resolution (pixels times the share of the spectrum that carries detail, so an upscaled copy does
  not beat its source), then the least processed (no added border, highest JPEG quality estimate,
  most colour, sharpest), then the largest file;
- ``quality``: the least processed first, then the effective resolution, then the largest file;
- ``size``: the largest file; ``oldest``: the earliest modification time; ``first``: path order.

Each criterion keeps the files within its tolerance of the best (10 % for resolution, colour and
sharpness, 3 points of JPEG quality) and the next criterion decides among them, so two copies that
differ by noise in one measure are compared on the next. Ties end in path order: the choice never
depends on the order of the input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

KEEP_POLICIES = ("resolution", "quality", "size", "oldest", "first")
#: Side of the central crop analysed for detail, colour and borders (bounded cost on big photos).
CROP = 512
#: libjpeg's standard luminance quantisation table at quality 50 (any order: only its sum is used).
_STD_LUMA_SUM = sum((
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
))


@dataclass(frozen=True)
class FileFacts:
    """What the keep policies look at for one file (-1 / 0 where the file cannot be read)."""

    path: str
    width: int
    height: int
    bytes: int
    mtime: float
    jpeg_quality: float  # 100 for lossless formats
    border: float  # share of the area in uniform bands along the edges
    noise: float  # standard deviation of white noise (grey levels)
    colour: float  # Hasty & Suesstrunk colourfulness
    sharpness: float  # mean absolute Laplacian of the grey crop

    @property
    def pixels(self) -> int:
        return max(self.width, 0) * max(self.height, 0)


def jpeg_quality(image) -> float:
    """Estimated JPEG quality (libjpeg scale) from the luminance quantisation table; 100 if not a JPEG."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return 100.0
    luma = tables.get(0) or next(iter(tables.values()))
    scale = 100.0 * float(sum(luma)) / _STD_LUMA_SUM
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return float(np.clip(quality, 1, 100))


def noise_sigma(grey: np.ndarray) -> float:
    """Standard deviation of white noise in `grey` (Donoho: median |finest diagonal Haar coefficient| / 0.6745)."""
    h, w = (grey.shape[0] // 2) * 2, (grey.shape[1] // 2) * 2
    g = grey[:h, :w]
    diagonal = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2
    return float(np.median(np.abs(diagonal)) / 0.6745) if diagonal.size else 0.0


def border_share(pixels: np.ndarray, tolerance: float = 3.0) -> float:
    """Share of the area in uniform rows/columns along the four edges (an added frame or padding); grey or RGB."""
    grey = pixels.mean(axis=2) if pixels.ndim == 3 else pixels
    h, w = grey.shape
    rows = grey.std(axis=1) < tolerance
    cols = grey.std(axis=0) < tolerance

    def run(flags: np.ndarray) -> int:
        idx = np.flatnonzero(~flags)
        return len(flags) if len(idx) == 0 else int(idx[0])

    top, bottom = run(rows), run(rows[::-1])
    left, right = run(cols), run(cols[::-1])
    inner = max(h - top - bottom, 0) * max(w - left - right, 0)
    return 1.0 - inner / float(h * w)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasty & Suesstrunk (2003): spread and mean of the opponent colour channels."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def sharpness(grey: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian: blur lowers it."""
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.abs(lap).mean()) if lap.size else 0.0


def _central_crop(a: np.ndarray, side: int = CROP) -> np.ndarray:
    h, w = a.shape[:2]
    top, left = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return a[top:top + side, left:left + side]


def file_facts(path: str | os.PathLike) -> FileFacts:
    """Measure one file (header, JPEG tables, and the pixels of a central crop)."""
    from PIL import Image, ImageOps

    path = str(path)
    try:
        stat = os.stat(path)
        size, mtime = stat.st_size, stat.st_mtime
    except OSError:
        return FileFacts(path, -1, -1, -1, float("inf"), 0.0, 1.0, 1e9, 0.0, 0.0)
    try:
        with Image.open(path) as image:
            quality = jpeg_quality(image)
            image = ImageOps.exif_transpose(image)
            width, height = image.size
            frame = border_share(np.asarray(image.convert("L"), np.float32))
            left, top = max((width - CROP) // 2, 0), max((height - CROP) // 2, 0)
            crop = np.asarray(image.crop((left, top, min(left + CROP, width), min(top + CROP, height))).convert("RGB"),
                              np.float32)
    except Exception:  # noqa: BLE001 - an unreadable file is never the one to keep
        return FileFacts(path, -1, -1, size, mtime, 0.0, 1.0, 1e9, 0.0, 0.0)
    grey = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    return FileFacts(path, width, height, size, mtime, quality, frame, noise_sigma(grey), colourfulness(crop),
                     sharpness(grey))


def upscale_residual(path: str, ratio: float) -> float:
    """RMS grey-level change of a central crop of `path` when shrunk by `ratio` and enlarged back.

    An image enlarged from a smaller one loses almost nothing (it holds no detail beyond the smaller
    one's resolution); a real high-resolution image loses its fine detail.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            grey = np.asarray(ImageOps.exif_transpose(image).convert("L"), np.float32)
    except Exception:  # noqa: BLE001
        return float("nan")
    grey = _central_crop(grey)
    h, w = grey.shape
    small = Image.fromarray(grey).resize((max(4, round(w * ratio)), max(4, round(h * ratio))), Image.Resampling.BICUBIC)
    back = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    return float(np.sqrt(np.mean((back - grey)[2:-2, 2:-2] ** 2))) if h > 4 and w > 4 else 0.0


#: Files of one size whose residual (their median) at a smaller size's ratio is below this share of
#: that size's files' residual are enlargements of them. Measured on the demo (23 photographs):
#: sources against their 0.8x reductions 0.86-1.59, 1.2x enlargements against their source 0.38-0.93
#: (21 of 23 below 0.8), 1.6x enlargements 0.29-0.93 (22 of 23).
UPSCALE_RATIO = 0.8
#: Only sizes down to this side ratio are compared (a reduction to 0.4-0.5x holds too little to judge by:
#: sources against their 0.4x reductions 0.21-1.39 on the demo).
MIN_SIDE_RATIO = 0.6
#: A file's uniform frame counts as added when it exceeds the group's median frame by this share of the area.
ADDED_FRAME = 0.1
#: A file that loses less than this (RMS grey levels) when shrunk to a smaller size holds no detail
#: beyond it (smooth pictures: the demo's cell and color enlargements lose 0.2-0.3, JPEG noise ~1).
MIN_DETAIL = 1.0


def effective_pixels(facts: Sequence[FileFacts]) -> list[float]:
    """Pixels of each file inside any added frame, reduced to a smaller size's when the file enlarges files of that size."""
    pixels = [float(f.pixels) for f in facts]
    out = list(pixels)
    cache: dict[tuple[int, float], float] = {}

    def residual(i: int, ratio: float) -> float:
        key = (i, round(ratio, 3))
        if key not in cache:
            cache[key] = upscale_residual(facts[i].path, ratio)
        return cache[key]

    by_size: dict[float, list[int]] = {}
    for i, p in enumerate(pixels):
        if p > 0:
            by_size.setdefault(p, []).append(i)
    sizes = sorted(by_size)
    effective = {p: p for p in sizes}

    def class_residual(p: float, ratio: float) -> float:
        return float(np.nanmedian([residual(j, ratio) for j in sorted(by_size[p], key=lambda k: facts[k].path)[:9]]))

    for p in sizes:  # smallest first: an enlargement of an enlargement inherits its source's size
        for s in [s for s in sizes if MIN_SIDE_RATIO**2 * p <= s < 0.9 * p][-4:]:  # bounded work
            ratio = math.sqrt(s / p)
            if class_residual(p, ratio) < max(UPSCALE_RATIO * class_residual(s, ratio), MIN_DETAIL):
                effective[p] = min(effective[p], effective[s])
    usual = float(np.median([f.border for f in facts]))  # natural margins (a logo's white) are in every copy
    for i, p in enumerate(pixels):
        if p > 0:
            added = facts[i].border if facts[i].border - usual > ADDED_FRAME else 0.0
            out[i] = effective[p] * (1.0 - added)  # an added frame is not resolution
    return out


# (measure, tolerance, relative?): larger is better for every measure
_Criterion = tuple[Callable[[FileFacts], float], float, bool]
_RESOLUTION = "effective pixels"  # measured per group (effective_pixels), 10 % tolerance
_PROCESSING: tuple[_Criterion, ...] = (
    (lambda f: f.jpeg_quality, 3.0, False),
    (lambda f: -round(f.border, 2), 0.0, False),
    (lambda f: -f.noise, 1.0, False),
    (lambda f: f.colour, 0.10, True),
    (lambda f: f.sharpness, 0.10, True),
)
_SIZE: _Criterion = (lambda f: float(f.bytes), 0.0, False)
POLICIES: dict[str, tuple[_Criterion | str, ...]] = {
    "resolution": (_RESOLUTION, *_PROCESSING, _SIZE),
    "quality": (*_PROCESSING, _RESOLUTION, _SIZE),
    "size": (_SIZE,),
    "oldest": ((lambda f: -f.mtime, 0.0, False),),
    "first": (),
}


def choose(facts: Sequence[FileFacts], policy: str = "resolution") -> int:
    """Position in `facts` of the file to keep under `policy` (ties: the first path in sorted order)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown keep policy {policy!r}; choose one of {', '.join(KEEP_POLICIES)}")
    candidates = list(range(len(facts)))
    for criterion in POLICIES[policy]:
        if len(candidates) == 1:
            break
        if criterion == _RESOLUTION:
            pixels = effective_pixels(facts)
            values, tolerance, relative = {i: pixels[i] for i in candidates}, 0.10, True
        else:
            measure, tolerance, relative = criterion
            values = {i: measure(facts[i]) for i in candidates}
        best = max(values.values())
        margin = tolerance * abs(best) if relative else tolerance
        candidates = [i for i in candidates if values[i] >= best - margin]
    return min(candidates, key=lambda i: facts[i].path)
