"""Perceptual hashes (aHash, pHash, dHash, wHash, crop-resistant), imagededup-style.

`HashExtractor` owns decoding and batching; each algorithm sets the grey size its worker
`transform` reduces an image to and implements one hook, `_bits(pixels) -> (B, bits) bool`,
vectorised over the batch. Bits are stored packed (np.packbits, most significant bit first).

- **fast** (default): JPEGs are decoded straight to grey by libjpeg-turbo (`helpers.jpeg`) at the
  smallest DCT scale that keeps at least `draft_factor` x the hash grid, then reduced with
  Lanczos; other formats (and JPEGs that path declines) go through PIL in draft mode. A few bits
  differ from `imagehash` (the benchmark prints the mean Hamming distance).
- **exact** (``exact=True``): full decoding and `imagehash`'s exact arithmetic: the same bits.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from extractor.base import Extractor
from helpers import images
from helpers.jpeg import decode_grey

LANCZOS = Image.Resampling.LANCZOS


class HashExtractor(Extractor):
    """Base class: worker reduces each image to a grey array, `_bits` hashes the whole batch."""

    binary = True
    algorithm = ""

    def __init__(self, hash_size: int = 8, exact: bool = False, draft_factor: int = 4) -> None:
        if not isinstance(hash_size, int) or hash_size < 2:
            raise ValueError(f"hash_size must be an integer >= 2, got {hash_size!r}")
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
        return {"algorithm": self.algorithm, "hash_size": self.hash_size, "exact": self.exact,
                "draft_factor": self.draft_factor, "packing": "np.packbits, MSB first"}

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
        """Image (PIL, or grey array from `decode`) -> reduced grey uint8 array, as `imagehash` prepares it."""
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image, "L")
        return np.asarray(image.convert("L").resize(self.grey_size(), LANCZOS))

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        """The algorithm: (B, h, w) reduced images -> (B, bits) bool, row-major like imagehash."""
        raise NotImplementedError

    def __call__(self, batch: Any) -> np.ndarray:
        bits = self._bits(np.asarray(batch))
        return np.packbits(bits.reshape(len(bits), -1), axis=1)


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

    def grey_size(self) -> tuple[int, int]:
        side = self.hash_size * self.highfreq_factor
        return (side, side)

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        import scipy.fftpack

        dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels.astype(np.float64), axis=1), axis=2)
        return _above_median(dct[:, : self.hash_size, : self.hash_size])


class WHash(HashExtractor):
    """Wavelet hash: Haar LL band at n x n (global mean removed), bit = coefficient > median.

    Exact mode follows `imagehash` (image scaled to the largest power of two that fits, per image,
    in the worker); fast mode reduces every image to 4n x 4n and takes 4 x 4 block means, which
    is what the Haar LL band is up to a constant factor.
    """

    algorithm = "whash"

    def _check(self) -> None:
        if self.hash_size & (self.hash_size - 1):
            raise ValueError(f"whash needs a power-of-two hash_size, got {self.hash_size}")

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

    def __init__(self, hash_size: int = 8, exact: bool = False, draft_factor: int = 4, segments: int = 4) -> None:
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
        import imagehash

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image, "L")

        dhash = functools.partial(imagehash.dhash, hash_size=self.hash_size)
        multi = imagehash.crop_resistant_hash(image, hash_func=dhash, limit_segments=self.segments)
        hashes = [h.hash.reshape(-1) for h in multi.segment_hashes]
        return np.stack([hashes[i % len(hashes)] for i in range(self.segments)])

    def _bits(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(bool)


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
