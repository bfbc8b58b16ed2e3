"""Geometric measures of clusters, as the seed defined them, in bounded memory.

All distances are Euclidean in the array given (for cosine clustering, pass the L2-normalised
features; `clustering.spaces.prepare` gives the right space). Noise points (label -1) belong to
no cluster but count as "outside" every cluster. Per-cluster arrays follow ``clusters``
(sorted labels). Nothing builds an n x n matrix: large clusters are sampled for diameters, and
centroid-to-point distances are computed in blocks.

- diameter: the `quantile` (1 = max) of the pairwise distances inside a cluster;
- dispersion: mean distance from the members to their centroid (mean of the members);
- separation: distance from the centroid to the nearest point outside the cluster;
- centroid-to-centroid: mean distance from the centroid to the other centroids;
- the seed's signal-to-noise ratios: ``diameter / separation`` and
  ``dispersion / centroid-to-centroid`` (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

BLOCK_BYTES = 64 << 20


def _check(X, labels) -> tuple[np.ndarray, np.ndarray]:
    X, labels = np.asarray(X), np.asarray(labels)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels of shape {labels.shape} do not match X of shape {X.shape}")
    if not (labels != -1).any():
        raise ValueError("no point belongs to a cluster (all labels are -1)")
    return X, labels


def _members(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    valid = np.flatnonzero(labels != -1)
    order = valid[np.argsort(labels[valid], kind="stable")]
    clusters, starts = np.unique(labels[order], return_index=True)
    return clusters, np.split(order, starts[1:])


def cluster_centroids(X, labels) -> tuple[np.ndarray, np.ndarray]:
    """(clusters, centroids): the mean of each cluster's members, as float64."""
    X, labels = _check(X, labels)
    valid = labels != -1
    clusters, idx = np.unique(labels[valid], return_inverse=True)
    member = sparse.csr_array((np.ones(len(idx)), (idx, np.flatnonzero(valid))), shape=(len(clusters), len(X)))
    counts = np.bincount(idx, minlength=len(clusters)).astype(np.float64)
    return clusters, np.asarray(member @ X.astype(np.float64, copy=False)) / counts[:, None]


def _pairwise(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d2 = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * (A @ B.T)
    return np.sqrt(np.maximum(d2, 0.0))


def cluster_diameters(X, labels, quantile: float = 1.0, max_points: int = 2000, random_state: int = 0) -> np.ndarray:
    """Per cluster, the `quantile` of its pairwise distances (0 for a single point).

    A cluster larger than `max_points` is estimated from `max_points` members drawn at random
    (seeded), so memory stays at ``max_points^2`` floats whatever the cluster size.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    X, labels = _check(X, labels)
    rng = np.random.default_rng(random_state)
    _, groups = _members(labels)
    out = np.zeros(len(groups))
    for c, m in enumerate(tqdm(groups, desc="diameters", unit="cluster", leave=False, disable=len(groups) < 2000)):
        if len(m) < 2:
            continue
        if len(m) > max_points:
            m = np.sort(rng.choice(m, max_points, replace=False))
        Xm = X[m].astype(np.float64)
        d = _pairwise(Xm, Xm)[np.triu_indices(len(m), k=1)]
        out[c] = d.max() if quantile == 1.0 else np.quantile(d, quantile)
    return out


def dispersion(X, labels, centroids: np.ndarray | None = None) -> np.ndarray:
    """Per cluster, the mean distance of its members to its centroid."""
    X, labels = _check(X, labels)
    if centroids is None:
        _, centroids = cluster_centroids(X, labels)
    valid = np.flatnonzero(labels != -1)
    _, idx = np.unique(labels[valid], return_inverse=True)
    dist = np.empty(len(valid))
    step = max(1, BLOCK_BYTES // (8 * X.shape[1]))
    for s in range(0, len(valid), step):
        diff = X[valid[s : s + step]].astype(np.float64) - centroids[idx[s : s + step]]
        dist[s : s + step] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return np.bincount(idx, weights=dist, minlength=len(centroids)) / np.bincount(idx, minlength=len(centroids))


def separation(X, labels, centroids: np.ndarray | None = None) -> np.ndarray:
    """Per cluster, the distance from its centroid to the nearest point outside it (inf if none)."""
    X, labels = _check(X, labels)
    clusters, cents = cluster_centroids(X, labels) if centroids is None else (np.unique(labels[labels != -1]), centroids)
    own = np.full(len(X), -1, dtype=np.int64)
    valid = labels != -1
    own[valid] = np.searchsorted(clusters, labels[valid])
    best = np.full(len(cents), np.inf)
    step = max(1, BLOCK_BYTES // (8 * max(len(cents), X.shape[1])))
    for s in tqdm(range(0, len(X), step), desc="separation", unit="block", leave=False, disable=len(X) < 50000):
        d = _pairwise(cents, X[s : s + step].astype(np.float64))
        o = own[s : s + step]
        cols = np.flatnonzero(o >= 0)
        d[o[cols], cols] = np.inf
        np.minimum(best, d.min(axis=1), out=best)
    return best


def centroid_to_centroid(centroids: np.ndarray) -> np.ndarray:
    """Per centroid, the mean distance to the other centroids (nan when there is only one)."""
    centroids = np.asarray(centroids, dtype=np.float64)
    c = len(centroids)
    if c < 2:
        return np.full(c, np.nan)
    out = np.empty(c)
    step = max(1, BLOCK_BYTES // (8 * c))
    for s in range(0, c, step):
        out[s : s + step] = _pairwise(centroids[s : s + step], centroids).sum(axis=1) / (c - 1)
    return out


@dataclass
class ClusterGeometry:
    """Per-cluster geometry (arrays aligned with ``clusters``) and the seed's two ratios."""

    clusters: np.ndarray
    sizes: np.ndarray
    centroids: np.ndarray
    diameters: np.ndarray
    dispersions: np.ndarray
    separations: np.ndarray
    centroid_distances: np.ndarray
    quantile: float = 1.0

    @property
    def snr_diameter_separation(self) -> np.ndarray:
        """Diameter / separation per cluster (the seed's first signal-to-noise ratio)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.diameters / self.separations

    @property
    def snr_dispersion_centroid(self) -> np.ndarray:
        """Dispersion / centroid-to-centroid distance per cluster (the seed's second ratio)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.dispersions / self.centroid_distances

    def table(self) -> list[dict]:
        """One row per cluster, for a CSV."""
        cols = {
            "cluster": self.clusters, "size": self.sizes, "diameter": self.diameters,
            "dispersion": self.dispersions, "separation": self.separations,
            "centroid_to_centroid": self.centroid_distances,
            "snr_diameter_separation": self.snr_diameter_separation,
            "snr_dispersion_centroid": self.snr_dispersion_centroid,
        }  # fmt: skip
        return [{k: v[i].item() for k, v in cols.items()} for i in range(len(self.clusters))]

    def summary(self) -> dict[str, float]:
        """Medians over clusters of two or more points (singletons have no spread), as floats."""
        multi = self.sizes >= 2
        out = {"n_multi_clusters": int(multi.sum())}
        for name in ("diameters", "dispersions", "separations", "centroid_distances"):
            out[f"median_{name[:-1]}"] = _median(getattr(self, name)[multi])
        out["median_snr_diameter_separation"] = _median(self.snr_diameter_separation[multi])
        out["median_snr_dispersion_centroid"] = _median(self.snr_dispersion_centroid[multi])
        return out


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def cluster_geometry(X, labels, quantile: float = 1.0, max_points: int = 2000, random_state: int = 0) -> ClusterGeometry:
    """All geometric measures of one labeling."""
    X, labels = _check(X, labels)
    clusters, cents = cluster_centroids(X, labels)
    sizes = np.bincount(np.searchsorted(clusters, labels[labels != -1]), minlength=len(clusters))
    return ClusterGeometry(
        clusters=clusters,
        sizes=sizes,
        centroids=cents,
        diameters=cluster_diameters(X, labels, quantile, max_points, random_state),
        dispersions=dispersion(X, labels, cents),
        separations=separation(X, labels, cents),
        centroid_distances=centroid_to_centroid(cents),
        quantile=quantile,
    )
