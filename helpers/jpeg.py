"""Fast greyscale JPEG decoding for hashes: libjpeg-turbo (simplejpeg) straight to grey at a reduced DCT scale.

A hash needs a few dozen grey pixels per side, yet `PIL.Image.open(...).convert("L")` decodes
every colour pixel. libjpeg-turbo can skip the colour planes (the JPEG's Y channel is the
ITU-R 601 luma PIL computes) and run its inverse DCT at 1/2, 1/4 or 1/8 scale: 3-4x less CPU
per image. EXIF orientation is read from the APP1 segment and applied like
`PIL.ImageOps.exif_transpose`. Anything this path does not handle (not a JPEG, CMYK, damaged
data, simplejpeg missing, over the pixel limit) returns None and the caller uses PIL.
"""

from __future__ import annotations

import struct

import numpy as np

try:
    import simplejpeg
except ImportError:  # pragma: no cover  (an optional speed-up: PIL decodes everything too)
    simplejpeg = None

_SOI = b"\xff\xd8"
_ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) in a JPEG's APP1 segment; 1 when there is none or it is unreadable."""
    pos = 2
    n = len(data)
    while pos + 4 <= n and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no metadata after this
            break
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte / markers without length
            pos += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return _tiff_orientation(data[pos + 10 : pos + 2 + length])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for k in range(count):
            entry = ifd + 2 + 12 * k
            tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
            if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
                (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass
    return 1


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip a (h, w) array as `PIL.ImageOps.exif_transpose` does for this orientation."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.T
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels[::-1, ::-1].T
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


class ScaledGrey(np.ndarray):
    """Grey pixels of a JPEG decoded at a reduced DCT scale M/8, with ``span`` = (height, width) that
    the picture covers in these pixels: libjpeg-turbo rounds the output up to ceil(size x M/8), so
    the last row / column of pixels covers only part of a block (500 px at 1/8: 63 pixels for 62.5)."""

    span: tuple[float, float]


def _scale_eighths(width: int, height: int, out_w: int, out_h: int) -> int | None:
    """The M of the M/8 scale that gives (out_w, out_h) from (width, height); None if none does."""
    for m in range(1, 17):
        if -(-width * m // 8) == out_w and -(-height * m // 8) == out_h:
            return m
    return None


def decode_grey(data: bytes, min_size: tuple[int, int], max_pixels: int) -> ScaledGrey | None:
    """(h, w) uint8 grey pixels of a JPEG, at the smallest DCT scale keeping at least `min_size` (w, h).

    The array is a `ScaledGrey` whose ``span`` gives the exact extent of the picture in its pixels.
    None when the bytes are not a JPEG this path handles; the caller then decodes with PIL.
    """
    if simplejpeg is None or data[:2] != _SOI:
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("Gray", "YCbCr") or width * height > max_pixels or width < 1 or height < 1:
            return None
        grey = simplejpeg.decode_jpeg(
            data, colorspace="GRAY", min_width=min(min_size[0], width), min_height=min(min_size[1], height)
        )
    except (ValueError, RuntimeError):  # damaged or unusual data: PIL reports it properly
        return None
    out_h, out_w = grey.shape[:2]
    m = _scale_eighths(width, height, out_w, out_h)
    span = (height * m / 8, width * m / 8) if m else (float(out_h), float(out_w))
    orientation = exif_orientation(data)
    if orientation >= 5:  # transposed
        span = span[::-1]
    out = np.ascontiguousarray(apply_orientation(grey[:, :, 0], orientation)).view(ScaledGrey)
    out.span = span
    return out
