"""Duplicates up to flips and 90-degree rotations: hash the 8 orientations of every image, match across them.

A hash's grid is a reduced grey image; flipping that grid is flipping the image (the reduction is
separable and symmetric), and a 90-degree rotation is a transpose plus a flip. So each image is
decoded once and reduced twice (as is and transposed), and its 8 orientations are flips of those
two grids. Two images match when some orientation of one is within the threshold of the other;
the distance reported is the smallest over orientations. Cost: one more decode pass and 7 more
searches over the folder (see the benchmark table in docs/fast_search.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

ORIENTATIONS = 8


def orientation_codes(ext, paths: Sequence[str], progress: bool = False) -> np.ndarray | None:
    """(8, n, bytes) codes of every image in 8 orientations (row 0: as is); None for a non-hash extractor."""
    from extractor.hashes import HashExtractor
    from helpers.images import BadImageError

    if not isinstance(ext, HashExtractor) or ext.exact or ext.name.startswith("crop_resistant"):
        return None
    out = None
    for n, path in enumerate(tqdm(paths, desc="orientations", unit="img", disable=not progress)):
        try:
            image = ext.decode(path)
        except (BadImageError, OSError):
            continue  # stays all-zero below: filled from the store's code by the caller
        grey = image if isinstance(image, np.ndarray) else np.asarray(image.convert("L"))
        grids = []
        for base in (grey, np.ascontiguousarray(grey.T)):
            small = ext.transform(base)
            grids += [small, small[:, ::-1], small[::-1, :], small[::-1, ::-1]]
        codes = ext(np.stack([np.ascontiguousarray(g) for g in grids]))
        if out is None:
            out = np.zeros((ORIENTATIONS, len(paths), codes.shape[1]), np.uint8)
        out[:, n] = codes
    return out


def invariant_pairs(ext, paths: Sequence[str], features: np.ndarray, max_distance: float,
                    progress: bool = False, turned_max_distance: float | None = None) -> list[tuple[int, int, float]]:
    """Pairs (i < j, smallest distance over orientations) within `max_distance`, sorted by (distance, i, j).

    `turned_max_distance` (None: `max_distance`) is the threshold of a match through a flip or rotation.
    """
    import faiss

    from fast_search.pairs import binary_pairs

    codes = orientation_codes(ext, paths, progress)
    if codes is None:
        raise ValueError(f"invariant matching needs a hash method (phash, dhash, ahash, whash), not {ext.name!r}")
    unread = ~codes.any(axis=(0, 2))
    codes[:, unread] = features[unread]  # unreadable now: its stored code in every orientation
    i, j, d, _ = binary_pairs(features, max_distance)
    best = {(a, b): v for a, b, v in zip(i.tolist(), j.tolist(), d.tolist(), strict=True)}
    index = faiss.IndexBinaryFlat(features.shape[1] * 8)
    index.add(np.ascontiguousarray(features))
    t = int(np.floor((max_distance if turned_max_distance is None else turned_max_distance) + 1e-6))
    for o in range(1, ORIENTATIONS):
        for start in range(0, len(paths), 4096):
            lims, dist, ids = index.range_search(np.ascontiguousarray(codes[o, start:start + 4096]), t + 1)
            lims = lims.astype(np.int64)
            rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims))
            for a, b, v in zip(rows.tolist(), ids.tolist(), dist.tolist(), strict=True):
                if a != b and v <= t:
                    key = (min(a, b), max(a, b))
                    best[key] = min(best.get(key, v), float(v))
    return sorted(((a, b, float(v)) for (a, b), v in best.items()), key=lambda p: (p[2], p[0], p[1]))
