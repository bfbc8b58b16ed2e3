"""Scores of a clustering against ground-truth groups (all return Python floats; higher is better).

Notation: ``n_ij`` = points of cluster ``i`` in class ``j`` (the contingency table), ``a_i`` =
size of cluster ``i``, ``b_j`` = size of class ``j``, ``N`` = number of points.

Label ``-1`` in a prediction marks noise (DBSCAN, HDBSCAN). `clustering_scores` decides what
noise means (``noise=``): each noise point its own cluster (default), one cluster, or ignored.
The geometric measures (diameters, separation, ...) live in `clustering.geometry`.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn import metrics as skm

from clustering.geometry import (  # noqa: F401  (re-exported: one place to import metrics from)
    ClusterGeometry,
    centroid_to_centroid,
    cluster_centroids,
    cluster_diameters,
    cluster_geometry,
    dispersion,
    separation,
)
from clustering.spaces import NOISE_MODES


def check_clusterings(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both labelings as 1-D integer arrays of equal, non-zero length; errors give the shapes."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.ndim != 1:
        raise ValueError(f"labels_true must be 1-D, got shape {labels_true.shape}")
    if labels_pred.ndim != 1:
        raise ValueError(f"labels_pred must be 1-D, got shape {labels_pred.shape}")
    if labels_true.shape != labels_pred.shape:
        raise ValueError(f"labels_true {labels_true.shape} and labels_pred {labels_pred.shape} differ in length")
    if len(labels_true) == 0:
        raise ValueError("labelings are empty (shape (0,))")
    for name, lab in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {lab.dtype}")
    return labels_true, labels_pred


def contingency(labels_true, labels_pred) -> sparse.csr_array:
    """Sparse table ``n_ij`` (clusters as rows, classes as columns)."""
    labels_true, labels_pred = check_clusterings(labels_true, labels_pred)
    _, t = np.unique(labels_true, return_inverse=True)
    _, p = np.unique(labels_pred, return_inverse=True)
    table = sparse.csr_array((np.ones(len(t), dtype=np.int64), (p, t)), shape=(p.max() + 1, t.max() + 1))
    table.sum_duplicates()
    return table


def homogeneity_score(labels_true, labels_pred) -> float:
    """Each cluster holds one class: ``1 - H(C|K) / H(C)`` (sklearn; 1 when H(C) = 0)."""
    return float(skm.homogeneity_score(*check_clusterings(labels_true, labels_pred)))


def completeness_score(labels_true, labels_pred) -> float:
    """Each class sits in one cluster: ``1 - H(K|C) / H(K)`` (sklearn)."""
    return float(skm.completeness_score(*check_clusterings(labels_true, labels_pred)))


def v_measure_score(labels_true, labels_pred) -> float:
    """Harmonic mean of homogeneity ``h`` and completeness ``c``: ``2hc / (h + c)`` (sklearn)."""
    return float(skm.v_measure_score(*check_clusterings(labels_true, labels_pred)))


def adjusted_rand_score(labels_true, labels_pred) -> float:
    """Rand index over pairs, adjusted for chance: ``(RI - E[RI]) / (max RI - E[RI])`` (sklearn)."""
    return float(skm.adjusted_rand_score(*check_clusterings(labels_true, labels_pred)))


def adjusted_mutual_info_score(labels_true, labels_pred) -> float:
    """Mutual information adjusted for chance, arithmetic normalisation (sklearn)."""
    return float(skm.adjusted_mutual_info_score(*check_clusterings(labels_true, labels_pred)))


def _bcubed(labels_true, labels_pred) -> tuple[float, float]:
    table = contingency(labels_true, labels_pred)
    coo = table.tocoo()
    sq = coo.data.astype(np.float64) ** 2
    a = np.asarray(table.sum(axis=1)).ravel()
    b = np.asarray(table.sum(axis=0)).ravel()
    n = a.sum()
    return float((sq / a[coo.row]).sum() / n), float((sq / b[coo.col]).sum() / n)


def bcubed_precision(labels_true, labels_pred) -> float:
    """Mean over points of the share of its cluster in its class: ``sum_ij n_ij^2 / a_i / N``.

    >>> bcubed_precision([0, 0, 1, 1], [0, 0, 0, 1])  # (2*2/3 + 1/3 + 1) / 4
    0.6666666666666666
    """
    return _bcubed(labels_true, labels_pred)[0]


def bcubed_recall(labels_true, labels_pred) -> float:
    """Mean over points of the share of its class in its cluster: ``sum_ij n_ij^2 / b_j / N``.

    >>> bcubed_recall([0, 0, 1, 1], [0, 0, 0, 1])  # (2 + 1/2 + 1/2) / 4
    0.75
    """
    return _bcubed(labels_true, labels_pred)[1]


def bcubed_f_score(labels_true, labels_pred) -> float:
    """Harmonic mean ``2PR / (P + R)`` of BCubed precision and recall (0 when both are 0)."""
    p, r = _bcubed(labels_true, labels_pred)
    return 0.0 if p + r == 0 else float(2 * p * r / (p + r))


def purity_score(labels_true, labels_pred) -> float:
    """Share of points in their cluster's majority class: ``sum_i max_j n_ij / N``.

    >>> purity_score([0, 0, 1, 1], [0, 0, 0, 1])
    0.75
    """
    table = contingency(labels_true, labels_pred)
    return float(table.max(axis=1).sum() / table.sum())


def noise_as_singletons(labels) -> np.ndarray:
    """Labels with each ``-1`` (noise) replaced by a new label of its own."""
    labels = np.asarray(labels).astype(np.int64, copy=True)
    noise = labels == -1
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(noise.sum())
    return labels


def intersection_over_union(labels_pred, labels_true) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IoU matrix (clusters x classes), cluster labels, class labels); label -1 ignored in both.

    ``IoU_ij = n_ij / (a_i + b_j - n_ij)``: 1 when cluster i is exactly class j.
    """
    labels_true, labels_pred = check_clusterings(labels_true, labels_pred)
    clusters = np.unique(labels_pred[labels_pred != -1])
    classes = np.unique(labels_true[labels_true != -1])
    keep = (labels_pred != -1) & (labels_true != -1)
    p = np.searchsorted(clusters, labels_pred[keep])
    t = np.searchsorted(classes, labels_true[keep])
    size = len(clusters) * len(classes)
    inter = np.bincount(p * len(classes) + t, minlength=size).astype(np.float64).reshape(len(clusters), len(classes))
    a = np.searchsorted(clusters, labels_pred[labels_pred != -1])
    a = np.bincount(a, minlength=len(clusters)).astype(np.float64)
    b = np.bincount(np.searchsorted(classes, labels_true[labels_true != -1]), minlength=len(classes)).astype(np.float64)
    union = a[:, None] + b[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou, clusters, classes


def clustering_scores(labels_true, labels_pred, noise: str = "singleton") -> dict[str, float]:
    """Every external score in one dict, plus ``n_clusters`` and ``n_noise``.

    ``noise``: ``"singleton"`` (each -1 its own cluster), ``"cluster"`` (all -1 one cluster) or
    ``"ignore"`` (points labelled -1 left out of the scores).
    """
    labels_true, labels_pred = check_clusterings(labels_true, labels_pred)
    if noise not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise!r}; valid modes: {', '.join(NOISE_MODES)}")
    is_noise = labels_pred == -1
    n_clusters = int(len(np.unique(labels_pred[~is_noise])))
    if noise == "singleton":
        labels_pred = noise_as_singletons(labels_pred)
    elif noise == "ignore":
        if is_noise.all():
            raise ValueError("every point is noise (-1): nothing to score with noise='ignore'")
        labels_true, labels_pred = labels_true[~is_noise], labels_pred[~is_noise]
    scores = {
        "n_clusters": n_clusters,
        "n_noise": int(is_noise.sum()),
        "homogeneity": homogeneity_score(labels_true, labels_pred),
        "completeness": completeness_score(labels_true, labels_pred),
        "v_measure": v_measure_score(labels_true, labels_pred),
        "ari": adjusted_rand_score(labels_true, labels_pred),
        "ami": adjusted_mutual_info_score(labels_true, labels_pred),
        "bcubed_precision": bcubed_precision(labels_true, labels_pred),
        "bcubed_recall": bcubed_recall(labels_true, labels_pred),
        "bcubed_f": bcubed_f_score(labels_true, labels_pred),
        "purity": purity_score(labels_true, labels_pred),
    }
    return scores
