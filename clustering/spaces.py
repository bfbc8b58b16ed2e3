"""Metrics as Euclidean spaces: every clustering path works on one float array and converts distances.

- ``euclidean``: the features as they are.
- ``cosine``: rows L2-normalised; cosine distance ``1 - cos(a, b) = ||a' - b'||^2 / 2``.
- ``hamming``: packed binary hashes unpacked to 0/1 floats; the Hamming distance as a *fraction*
  of bits (scipy's convention, as the seed used) is ``||a - b||^2 / n_bits``.

So a faiss L2 index (which returns squared distances) serves all three metrics, and
`from_squared_l2` turns its output into the metric's own distance.
"""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "cosine", "hamming")
LINKAGES = ("single", "complete", "average", "centroid", "ward")
EUCLIDEAN_ONLY = ("centroid", "ward")
#: How DBSCAN's noise points count in the scores (clustering.metrics).
NOISE_MODES = ("singleton", "cluster", "ignore")
#: The seed's DBSCAN eps sweeps per metric.
DEFAULT_EPS = {
    "euclidean": [4.0, 4.125, 4.25, 4.375, 4.5],
    "cosine": [0.18, 0.1975, 0.215, 0.2325, 0.25],
    "hamming": [0.16, 0.18, 0.2],
}


def check_metric(metric: str) -> str:
    """`metric` itself, or a ValueError listing the valid metrics."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    return metric


def check_linkage(linkage: str, metric: str) -> str:
    """`linkage` itself; ValueError for an unknown linkage or one that needs Euclidean distances."""
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; valid linkages: {', '.join(LINKAGES)}")
    check_metric(metric)
    if linkage in EUCLIDEAN_ONLY and metric != "euclidean":
        raise ValueError(
            f"{linkage} linkage is only defined for metric='euclidean', got metric={metric!r}; "
            f"use one of single, complete, average with {metric}"
        )
    return linkage


def check_features(X, binary: bool | None = None) -> np.ndarray:
    """A 2-D finite numeric array with at least one row, or a ValueError giving the shape received."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"features must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise TypeError(f"features must be numeric, got dtype {X.dtype}")
    if binary and X.dtype != np.uint8:
        raise TypeError(f"binary features must be packed uint8 (np.packbits), got dtype {X.dtype}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinite values")
    return X


def prepare(X, metric: str, binary: bool | None = None) -> np.ndarray:
    """The float32 C-contiguous array whose squared L2 distances encode `metric` (see module doc).

    For ``hamming``, uint8 input is taken as packed bits (unpacked here); any other input must
    already hold 0/1 values. Zero rows stay zero under ``cosine``.
    """
    check_metric(metric)
    X = check_features(X, binary)
    if metric == "hamming":
        if X.dtype == np.uint8 and binary is not False:
            X = np.unpackbits(X, axis=1)
        elif not np.isin(X, (0, 1)).all():
            raise ValueError("hamming metric needs packed uint8 hashes or 0/1 values")
        return np.ascontiguousarray(X, dtype=np.float32)
    if binary:
        raise ValueError(f"binary (packed) features need metric='hamming', got {metric!r}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.maximum(norms, np.finfo(np.float32).tiny)
    return X


def from_squared_l2(d2: np.ndarray, metric: str, n_bits: int | None = None) -> np.ndarray:
    """Distances of `metric` from squared L2 distances in the prepared space (negatives clipped)."""
    d2 = np.maximum(d2, 0)
    if metric == "euclidean":
        return np.sqrt(d2)
    if metric == "cosine":
        return d2 / 2
    if metric == "hamming":
        if not n_bits:
            raise ValueError("hamming distances need n_bits")
        return d2 / n_bits
    raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")


def to_squared_l2(distance: float, metric: str, n_bits: int | None = None) -> float:
    """The squared L2 radius in the prepared space that corresponds to a `metric` distance."""
    if metric == "euclidean":
        return float(distance) ** 2
    if metric == "cosine":
        return 2.0 * float(distance)
    if metric == "hamming":
        return float(distance) * n_bits
    raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
