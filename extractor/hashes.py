"""Perceptual hashes (aHash, pHash, dHash, wHash, crop-resistant), imagededup-style.

`HashExtractor` owns decoding and batching; each algorithm sets the grey size its worker
`transform` reduces an image to and implements one hook, `_bits(pixels) -> (B, bits) bool`,
vectorised over the batch. Bits are stored packed (np.packbits, most significant bit first).

- **fast** (default): JPEGs are decoded straight to grey by libjpeg-turbo (`helpers.jpeg`) at the
  smallest DCT scale that keeps at least `draft_factor` x the hash grid (4 for aHash and dHash, 1
  for pHash and wHash), then reduced with Lanczos as two matrix products (`lanczos_matrix`) over
  the picture's true extent in the decoded pixels; other formats (and JPEGs that path
  declines) go through PIL in draft mode. A few bits differ from `imagehash`
  (the benchmark prints the mean Hamming distance).
- **exact** (``exact=True``): full decoding and `imagehash`'s exact arithmetic: the same bits.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from extractor.base import Extractor
from helpers import images
from helpers.jpeg import decode_grey

LANCZOS = Image.Resampling.LANCZOS


class HashExtractor(Extractor):
    """Base class: worker reduces each image to a grey array, `_bits` hashes the whole batch."""

    binary = True
    algorithm = ""
    threaded = True  # libjpeg-turbo, PIL's decoders and the resize matrix products release the GIL
    #: Fast mode decodes at least draft_factor x the grey grid (the smallest DCT scale that keeps it).
    default_draft_factor = 4

    def __init__(self, hash_size: int = 8, exact: bool = False, draft_factor: int | None = None) -> None:
        if not isinstance(hash_size, int) or hash_size < 2:
            raise ValueError(f"hash_size must be an integer >= 2, got {hash_size!r}")
        draft_factor = type(self).default_draft_factor if draft_factor is None else draft_factor
        if draft_factor < 1:
            raise ValueError(f"draft_factor must be >= 1, got {draft_factor!r}")
        self.hash_size = hash_size
        self.exact = exact
        self.draft_factor = draft_factor
        self._check()
        w, h = self.grey_size()
        self.draft = None if exact else (w * draft_factor, h * draft_factor)
        suffix = ("" if hash_size == 8 else f"_{hash_size}") + ("_exact" if exact else "")
        self.name = self.algorithm + suffix
        self.dim = self._n_bits()

    def _check(self) -> None:
        """Validate algorithm-specific constraints on the parameters."""

    def _n_bits(self) -> int:
        return self.hash_size * self.hash_size

    @property
    def params(self) -> dict[str, Any]:
        params = {"algorithm": self.algorithm, "hash_size": self.hash_size, "exact": self.exact,
                  "draft_factor": self.draft_factor, "packing": "np.packbits, MSB first"}
        if not self.exact:
            params["resize"] = "Lanczos-3 matrices over the decoded extent, rounded"
        return params

    def grey_size(self) -> tuple[int, int]:
        """(width, height) each image is reduced to before hashing."""
        raise NotImplementedError

    def decode(self, path: str | os.PathLike, data: bytes | None = None) -> Image.Image | np.ndarray:
        """Fast mode: a JPEG's grey pixels at a reduced DCT scale (an array); otherwise a PIL image."""
        if self.draft is not None:
            try:
                raw = Path(path).read_bytes() if data is None else data
            except OSError:
                raw = b""  # PIL reports the reason
            grey = decode_grey(raw, self.draft, images.MAX_PIXELS)
            if grey is not None:
                return grey
        return super().decode(path, data)

    def transform(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """Image (PIL, or grey array from `decode`) -> reduced grey array, as `imagehash` prepares it.

        A JPEG decoded at a reduced scale (`helpers.jpeg.ScaledGrey`) is resized with the picture's
        true extent (``span``): its last row and column of pixels cover part of a DCT block only.
        """
        w, h = self.grey_size()
        if not self.exact:  # Lanczos as matrix products (BLAS, no GIL), rounded to uint8 as PIL does
            span = getattr(image, "span", None)
            grey = np.asarray(image if isinstance(image, np.ndarray) else image.convert("L"), dtype=np.float32)
            span_h, span_w = span if span is not None else grey.shape
            small = lanczos_matrix(grey.shape[0], h, span_h) @ grey @ lanczos_matrix(grey.shape[1], w, span_w).T
            return np.clip(np.rint(small), 0, 255).astype(np.uint8)
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image, "L")
        return np.asarray(image.convert("L").resize((w, h), LANCZOS))

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        """The algorithm: (B, h, w) reduced images -> (B, bits) bool, row-major like imagehash."""
        raise NotImplementedError

    def __call__(self, batch: Any) -> np.ndarray:
        bits = self._bits(np.asarray(batch))
        return np.packbits(bits.reshape(len(bits), -1), axis=1)


@lru_cache(maxsize=512)
def lanczos_matrix(n_in: int, n_out: int, span: float | None = None) -> np.ndarray:
    """(n_out, n_in) float32 Lanczos-3 resampling matrix with PIL's geometry (pixel centres, support
    widened by the reduction factor), rows summing to 1: ``A @ image @ B.T`` resizes a grey image.

    `span` (default n_in): the extent of the picture in input pixels when the last pixel covers only
    part of one (``n_in - 1 < span <= n_in``, a JPEG decoded at a DCT scale): the output grid spans
    `span` pixels and the last pixel's weight is scaled by the share it covers.
    """
    span = float(n_in if span is None else span)
    if not n_in - 1 < span <= n_in:
        raise ValueError(f"span {span} must lie in ({n_in - 1}, {n_in}]")
    scale = span / n_out
    stretch = max(scale, 1.0)
    offsets = (np.arange(n_in) + 0.5)[None, :] - ((np.arange(n_out) + 0.5) * scale)[:, None]
    x = offsets / stretch
    weights = np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    weights[:, -1] *= span - (n_in - 1)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=64)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 rows of scipy's unnormalised DCT-II: ``y[k] = 2 sum_i x[i] cos(pi k (2i + 1) / 2N)``."""
    k, i = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n_in))


def _above_median(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    return flat > np.median(flat, axis=1, keepdims=True)


class AHash(HashExtractor):
    """Average hash: n x n grey image, bit = pixel > mean."""

    algorithm = "ahash"

    def grey_size(self) -> tuple[int, int]:
        return (self.hash_size, self.hash_size)

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        flat = pixels.reshape(len(pixels), -1)
        return flat > flat.mean(axis=1, keepdims=True)


class DHash(HashExtractor):
    """Difference hash: (n+1) x n grey image, bit = pixel brighter than its left neighbour."""

    algorithm = "dhash"

    def grey_size(self) -> tuple[int, int]:
        return (self.hash_size + 1, self.hash_size)

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[:, :, 1:] > pixels[:, :, :-1]


class PHash(HashExtractor):
    """Perceptual hash: 4n x 4n grey image, 2D DCT, low-frequency n x n block > its median."""

    algorithm = "phash"
    highfreq_factor = 4
    # its bits are the lowest n x n frequencies of the 4n x 4n grid: a decode at 1x the grid keeps
    # them (the smallest DCT scale, the JPEG's decoding floor, for 500x375 pictures)
    default_draft_factor = 1

    def grey_size(self) -> tuple[int, int]:
        side = self.hash_size * self.highfreq_factor
        return (side, side)

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        n = self.hash_size
        if self.exact:  # imagehash's arithmetic: scipy's full DCT-II along both axes
            import scipy.fftpack

            dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels.astype(np.float64), axis=1), axis=2)
            return _above_median(dct[:, :n, :n])
        # fast: only the n x n lowest coefficients, as two matrix products (no scipy import, ~1 s)
        c_rows, c_cols = dct_matrix(pixels.shape[1], n), dct_matrix(pixels.shape[2], n)
        return _above_median(c_rows @ pixels.astype(np.float64) @ c_cols.T)


class WHash(HashExtractor):
    """Wavelet hash: Haar LL band at n x n (global mean removed), bit = coefficient > median.

    Exact mode follows `imagehash` (image scaled to the largest power of two that fits, per image,
    in the worker); fast mode reduces every image to 4n x 4n and takes 4 x 4 block means, which
    is what the Haar LL band is up to a constant factor.
    """

    algorithm = "whash"
    default_draft_factor = 1  # its bits are n x n block means of the 4n x 4n grid: 1x the grid keeps them

    def _check(self) -> None:
        if self.hash_size & (self.hash_size - 1):
            raise ValueError(f"whash needs a power-of-two hash_size, got {self.hash_size}")

    @property
    def threaded(self) -> bool:  # exact: per-image Python wavelet transforms, better in processes
        return not self.exact

    def grey_size(self) -> tuple[int, int]:
        return (4 * self.hash_size, 4 * self.hash_size)

    def transform(self, image: Image.Image | np.ndarray) -> np.ndarray:
        if not self.exact:
            return super().transform(image)
        import pywt

        scale = max(2 ** int(np.log2(min(image.size))), self.hash_size)
        max_level = int(np.log2(scale))
        pixels = np.asarray(image.convert("L").resize((scale, scale), LANCZOS)) / 255.0
        coeffs = list(pywt.wavedec2(pixels, "haar", level=max_level))
        coeffs[0] *= 0
        pixels = pywt.waverec2(coeffs, "haar")
        return pywt.wavedec2(pixels, "haar", level=max_level - int(np.log2(self.hash_size)))[0]

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        if self.exact:  # the worker already computed the LL band
            return _above_median(pixels)
        n = self.hash_size
        blocks = pixels.astype(np.float64).reshape(len(pixels), n, 4, n, 4).mean(axis=(2, 4))
        return _above_median(blocks)


class CropResistantHash(HashExtractor):
    """Crop-resistant hash (imagehash's watershed segments, one dHash per segment).

    Fixed-size storage: the dHashes of the `segments` largest segments, largest first, as one
    ``segments * n * n``-bit vector. An image with fewer segments repeats its hashes cyclically,
    so nearest-segment comparisons (`crop_resistant_distance`) are unaffected by the padding.
    Segmentation runs per image in the worker; fast mode only changes the decoding (draft).
    """

    algorithm = "crop_resistant"
    segmentation_size = 300
    threaded = False  # the segmentation is Python and numpy work that holds the GIL

    def __init__(self, hash_size: int = 8, exact: bool = False, draft_factor: int | None = None, segments: int = 4) -> None:
        if not isinstance(segments, int) or segments < 1:
            raise ValueError(f"segments must be an integer >= 1, got {segments!r}")
        self.segments = segments
        super().__init__(hash_size=hash_size, exact=exact, draft_factor=draft_factor)
        if segments != 4:
            self.name += f"_{segments}seg"

    def _n_bits(self) -> int:
        return self.segments * self.hash_size * self.hash_size

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "segments": self.segments, "segment_hash": "dhash"}

    def grey_size(self) -> tuple[int, int]:  # draft target: keep the segmentation resolution
        side = -(-self.segmentation_size // self.draft_factor)
        return (side, side)

    def transform(self, image: Image.Image | np.ndarray) -> np.ndarray:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image, "L")
        grey = image.convert("L")  # imagehash's dhash converts each crop; converting once is the same
        boxes = segment_boxes(grey, self.segmentation_size, self.segments)
        hashes = [_dhash_bits(grey.crop(box), self.hash_size) for box in boxes]
        return np.stack([hashes[i % len(hashes)] for i in range(self.segments)])

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(bool)


def _dhash_bits(image: Image.Image, hash_size: int) -> np.ndarray:
    pixels = np.asarray(image.resize((hash_size + 1, hash_size), LANCZOS))
    return (pixels[:, 1:] > pixels[:, :-1]).reshape(-1)


def segment_boxes(
    grey: Image.Image, size: int = 300, limit: int | None = None, threshold: int = 128, min_pixels: int = 500
) -> list[tuple[float, float, float, float]]:
    """Crop boxes of `imagehash.crop_resistant_hash`'s segments, largest first, vectorised.

    imagehash grows each bright ("hill") then dark ("valley") 4-connected region pixel by pixel
    in Python sets (~0.1 s an image); the regions are the connected components of the two masks,
    found here with `scipy.ndimage.label`, in imagehash's discovery order (first pixel in row-major
    order, hills first). Its quirks are kept: a one-pixel region never counts as segmented, and
    the valley search stops once the segmented pixels plus the 4 x size border cells reach size^2.
    """
    from scipy import ndimage

    small = grey.resize((size, size), LANCZOS).filter(ImageFilter.GaussianBlur()).filter(ImageFilter.MedianFilter())
    hills = np.asarray(small).astype(np.float32) > threshold
    found: list[tuple[int, int, slice, slice]] = []  # (size, discovery rank, rows, cols)
    segmented = 4 * size  # imagehash's border cells outside the image
    for phase, mask in enumerate((hills, ~hills)):
        labels, n = ndimage.label(mask)
        if n == 0:
            continue
        flat = labels.ravel()
        values, first = np.unique(flat, return_index=True)
        first = first[values > 0]  # first pixel of each label 1..n, row-major
        counts = np.bincount(flat, minlength=n + 1)[1:]
        objects = ndimage.find_objects(labels)
        order = np.argsort(first, kind="stable")  # discovery order
        for rank, k in enumerate(order):
            if phase == 1 and segmented >= size * size:
                break
            segmented += int(counts[k]) if counts[k] > 1 else 0
            if counts[k] > min_pixels:
                found.append((int(counts[k]), phase * size * size + rank, *objects[k]))
    if not found:  # imagehash: one segment covering the whole image
        found = [(0, 0, slice(0, size), slice(0, size))]
    found.sort(key=lambda f: (-f[0], f[1]))
    width, height = grey.size
    scale_w, scale_h = width / size, height / size
    return [(cols.start * scale_w, rows.start * scale_h, cols.stop * scale_w, rows.stop * scale_h)
            for _, _, rows, cols in found[:limit]]


def crop_resistant_distance(a: np.ndarray, b: np.ndarray, segments: int = 4) -> np.ndarray:
    """Mean over a's segments of the Hamming distance to the closest segment of b (packed rows, broadcast)."""
    a = np.unpackbits(np.atleast_2d(a), axis=1).reshape(-1, segments, 1, a.shape[-1] * 8 // segments)
    b = np.unpackbits(np.atleast_2d(b), axis=1).reshape(-1, 1, segments, b.shape[-1] * 8 // segments)
    return (a != b).sum(axis=3).min(axis=2).mean(axis=1)


ENTRIES = {
    "ahash": AHash,
    "phash": PHash,
    "dhash": DHash,
    "whash": WHash,
    "crop_resistant": CropResistantHash,
}
