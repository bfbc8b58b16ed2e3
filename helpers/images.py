"""Robust image decoding shared by extraction, attack generation and galleries.

`load_image` turns anything PIL can open (CMYK, 16-bit, float, palette with alpha, EXIF-rotated,
animated, multi-page) into a plain RGB (or L) image (wide and float grey scaled by their actual
range, `grey_range`), and raises `BadImageError` with a readable
reason for what it cannot decode: callers log and skip, they never crash mid-run.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Extensions listed as images. Anything else in a dataset folder is skipped with a reason.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

#: The one pixel limit: images with more pixels are skipped as possible decompression bombs.
#: 16384 x 16384 by default; `set_max_pixels` (``--max-pixels`` of extract_features.py) changes it
#: for this process and the processes it starts (environment variable ``IMSIM_MAX_PIXELS``).
DEFAULT_MAX_PIXELS = 16384 * 16384
MAX_PIXELS_ENV = "IMSIM_MAX_PIXELS"
MAX_PIXELS = DEFAULT_MAX_PIXELS


def set_max_pixels(n: int) -> None:
    """Set the pixel limit here, in Pillow (whose own check would otherwise fire at 89 Mpixels) and
    in child processes."""
    global MAX_PIXELS
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the pixel limit must be a positive integer, got {n!r}")
    MAX_PIXELS = n
    Image.MAX_IMAGE_PIXELS = n  # Pillow warns above it and raises above twice it; we refuse above it
    os.environ[MAX_PIXELS_ENV] = str(n)


set_max_pixels(int(os.environ.get(MAX_PIXELS_ENV) or DEFAULT_MAX_PIXELS))


class BadImageError(ValueError):
    """An image that cannot be decoded into pixels; the message says why."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a non-hidden file whose extension is a known image extension."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def grey_range(arr: np.ndarray, mode: str) -> tuple[float, float]:
    """The (black, white) values of a wide grey image, from its mode and its actual values.

    16-bit: 0..65535. 32-bit integers: 0..255 if they fit, else 0..65535, else their maximum.
    Float ("F"): 0..1 when every value lies in [0, 1] (the float-image convention), 0..255 when
    they fit in [0, 255], else their actual minimum..maximum.
    """
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    if mode == "F":
        if lo >= 0 and hi <= 1:
            return 0.0, 1.0
        if lo >= 0 and hi <= 255:
            return 0.0, 255.0
        return lo, hi if hi > lo else lo + 1
    if lo >= 0 and hi <= 255:
        return 0.0, 255.0
    if lo >= 0 and hi <= 65535:
        return 0.0, 65535.0
    return min(lo, 0.0), hi


def _wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    lo, hi = grey_range(arr, mode)
    scaled = (np.nan_to_num(arr, nan=lo) - lo) / (hi - lo) * 255.0 + 0.5
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any PIL mode to RGB or L, compositing transparency on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit and float grey: rescale to 8 bits instead of clipping (PIL's convert clips at 255)
        img = Image.fromarray(_wide_to_uint8(np.asarray(img, dtype=np.float64), img.mode), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def load_image(
    path: str | os.PathLike,
    mode: str = "RGB",
    max_pixels: int | None = None,
    draft: tuple[int, int] | None = None,
    data: bytes | None = None,
) -> Image.Image:
    """Decode `path` fully into a `mode` image (first frame of animations), EXIF orientation applied.

    `draft=(w, h)` lets JPEG decoding downscale by 1/2, 1/4 or 1/8 while staying at least that
    size, which makes hashing several times faster. `data` decodes these bytes instead of reading
    `path` (a tar member; `path` then only names it in messages). `max_pixels` None: the limit
    `MAX_PIXELS`. Raises `BadImageError` on anything unreadable.
    """
    path = Path(path)
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        if (path.stat().st_size if data is None else len(data)) == 0:
            raise BadImageError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise BadImageError(
                        f"{path}: decompression bomb? {width}x{height} exceeds the {max_pixels} pixel limit "
                        "(raise it with --max-pixels)"
                    )
                if width < 1 or height < 1:
                    raise BadImageError(f"{path}: empty image {width}x{height}")
                img.seek(0)
                if draft is not None and img.format == "JPEG":
                    img.draft(img.mode if img.mode in ("RGB", "L") else None, draft)
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_mode(img, mode)
    except BadImageError:
        raise
    except FileNotFoundError as e:
        raise BadImageError(f"{path}: file not found") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImageError(f"{path}: decompression bomb ({e})") from e
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, struct.error...)
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))  # same message every run
        raise BadImageError(f"{path}: cannot decode ({type(e).__name__}: {reason})") from e
