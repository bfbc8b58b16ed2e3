# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Retrieval measures for copy detection, computed from k-NN results `(D, I)` and ground truth.

Conventions shared by every function:

- ``I``: (nq, k) int64 database indices, best first; ``-1`` (faiss: no result) never matches.
- ``D``: (nq, k) *distances*, smaller is closer (cosine and inner product are turned into
  distances by `fast_search.index`, so one threshold direction serves every metric).
- ``targets``: (nq,) int64 index of each query's original in the database, ``-1`` for a
  *negative* query (its original is not in the database).

Degenerate cases return ``nan`` (no positive query for recall-type measures, no negative query
for false-positive rates), never raise, and every scalar is a Python ``float``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "recall_at_k",
    "map_at_k",
    "threshold_curve",
    "roc_auc",
    "recall_at_fpr",
    "recall_at_precision",
    "micro_average_precision",
    "recall_vs_exact",
]


def _check_results(I: np.ndarray, targets: np.ndarray, D: np.ndarray | None = None):
    """Validate (I, targets[, D]) shapes and dtypes; errors name the shapes received."""
    I = np.asarray(I)
    targets = np.asarray(targets)
    if I.ndim != 2:
        raise ValueError(f"I must be 2-D (n_queries, k), got shape {I.shape}")
    if not np.issubdtype(I.dtype, np.integer):
        raise TypeError(f"I must hold integer indices, got dtype {I.dtype}")
    if targets.ndim != 1 or len(targets) != I.shape[0]:
        raise ValueError(f"targets must have shape ({I.shape[0]},) to match I {I.shape}, got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must hold integer indices (-1 = negative), got dtype {targets.dtype}")
    if D is not None:
        D = np.asarray(D, dtype=np.float64)
        if D.shape != I.shape:
            raise ValueError(f"D has shape {D.shape} but I has shape {I.shape}")
        if np.isnan(D).any():
            raise ValueError(f"D holds {int(np.isnan(D).sum())} NaN distances")
    return I.astype(np.int64, copy=False), targets.astype(np.int64, copy=False), D


def _check_k(k: int, width: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > width:
        raise ValueError(f"k={k} but the results only hold {width} neighbours per query")
    return int(k)


def _hits(I: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(nq, k) bool: result j of query q is q's original (never for negatives or -1 results)."""
    return (I == targets[:, None]) & (targets[:, None] >= 0) & (I >= 0)


def recall_at_k(I: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Fraction of positive queries whose original is among their first `k` results.

    ``recall@k = #{q positive : target(q) in I[q, :k]} / #{q positive}``; each query counts
    at most once (the seed summed hits per query, which can exceed 1). ``nan`` with no positive query.

    >>> I = np.array([[3, 1], [0, 2], [5, 6]])
    >>> recall_at_k(I, np.array([1, 0, -1]), 1), recall_at_k(I, np.array([1, 0, -1]), 2)
    (0.5, 1.0)
    """
    I, targets, _ = _check_results(I, targets)
    k = _check_k(k, I.shape[1])
    positive = targets >= 0
    if not positive.any():
        return math.nan
    return float(_hits(I[:, :k], targets)[positive].any(axis=1).mean())


def map_at_k(I: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean over positive queries of AP@k; with one relevant item per query AP@k = 1/rank (0 if absent).

    ``mAP@k = mean_q [target(q) at rank r <= k] / r`` (ranks from 1), i.e. MRR@k here.

    >>> map_at_k(np.array([[3, 1], [0, 2], [5, 6]]), np.array([1, 0, -1]), 2)
    0.75
    """
    I, targets, _ = _check_results(I, targets)
    k = _check_k(k, I.shape[1])
    positive = targets >= 0
    if not positive.any():
        return math.nan
    hits = _hits(I[:, :k], targets)[positive]
    ranks = np.argmax(hits, axis=1) + 1
    return float(np.where(hits.any(axis=1), 1.0 / ranks, 0.0).mean())


def threshold_curve(D: np.ndarray, I: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Recall, false-positive rate and precision as functions of a top-1 distance threshold.

    A query is *accepted* at threshold t when its top-1 distance is ``<= t``. A positive query
    whose top-1 is its original and is accepted is a true positive; an accepted negative query is
    a false positive (a positive query with a wrong top-1 is a miss, never a false positive).
    ``recall = TP / #positive``, ``fpr = FP / #negative``, ``precision = TP / (TP + FP)``
    (1.0 where nothing is accepted). The first point is "accept nothing" (threshold ``-inf``);
    tied distances form one step. Returns arrays ``thresholds, tp, fp, recall, fpr, precision``.

    >>> c = threshold_curve(np.array([[0.1], [0.5], [0.3]]), np.array([[1], [0], [5]]), np.array([1, 0, -1]))
    >>> c["thresholds"].tolist(), c["recall"].tolist(), c["fpr"].tolist()
    ([-inf, 0.1, 0.3, 0.5], [0.0, 0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0])
    """
    I, targets, D = _check_results(I, targets, D)
    if D is None or D.shape[1] < 1:
        raise ValueError(f"threshold_curve needs at least one neighbour per query, got D {np.shape(D)}")
    top1 = D[:, 0]
    positive = targets >= 0
    correct = positive & (I[:, 0] == targets) & (I[:, 0] >= 0)
    negative = ~positive
    order = np.argsort(top1, kind="stable")
    d_sorted = top1[order]
    tp_cum = np.cumsum(correct[order])
    fp_cum = np.cumsum(negative[order])
    last_of_group = np.r_[d_sorted[1:] != d_sorted[:-1], True] if len(d_sorted) else np.zeros(0, bool)
    thresholds = np.r_[-np.inf, d_sorted[last_of_group]]
    tp = np.r_[0, tp_cum[last_of_group]].astype(np.int64)
    fp = np.r_[0, fp_cum[last_of_group]].astype(np.int64)
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / n_pos if n_pos else np.full(len(tp), np.nan)
        fpr = fp / n_neg if n_neg else np.full(len(fp), np.nan)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    return {
        "thresholds": thresholds,
        "tp": tp,
        "fp": fp,
        "recall": recall,
        "fpr": fpr,
        "precision": precision,
    }


def roc_auc(D: np.ndarray, I: np.ndarray, targets: np.ndarray) -> float:
    """Area under recall (y) vs false-positive rate (x) of `threshold_curve`, trapezoids, x in [0, 1].

    The curve ends at FPR 1 with recall = acc@1 (top-1 correct rate), so AUC <= acc@1.
    ``nan`` when there is no positive or no negative query.

    >>> roc_auc(np.array([[0.1], [0.5], [0.3]]), np.array([[1], [0], [5]]), np.array([1, 0, -1]))
    0.5
    """
    c = threshold_curve(D, I, targets)
    if np.isnan(c["recall"]).any() or np.isnan(c["fpr"]).any():
        return math.nan
    return float(np.trapezoid(c["recall"], c["fpr"]))


def recall_at_fpr(D: np.ndarray, I: np.ndarray, targets: np.ndarray, fpr: float) -> tuple[float, float]:
    """Best recall whose false-positive rate is ``<= fpr``, and the distance threshold giving it.

    The threshold is the largest one reaching that recall within the FPR budget (``-inf``: accept
    nothing). ``(nan, nan)`` without positive or negative queries.

    >>> recall_at_fpr(np.array([[0.1], [0.5], [0.3]]), np.array([[1], [0], [5]]), np.array([1, 0, -1]), 0.01)
    (0.5, 0.1)
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr!r}")
    c = threshold_curve(D, I, targets)
    if np.isnan(c["recall"]).any() or np.isnan(c["fpr"]).any():
        return math.nan, math.nan
    ok = np.flatnonzero(c["fpr"] <= fpr + 1e-12)
    best = ok[np.flatnonzero(c["recall"][ok] == c["recall"][ok].max())[-1]]  # largest such threshold
    return float(c["recall"][best]), float(c["thresholds"][best])


def recall_at_precision(D: np.ndarray, I: np.ndarray, targets: np.ndarray, precision: float = 0.9):
    """Best recall at a threshold whose precision is ``>= precision``, and that threshold.

    The threshold is the largest one reaching that recall. Only thresholds that accept at least one
    query count; ``(0.0, -inf)`` if none reaches the precision, ``(nan, nan)`` without positive queries.

    >>> recall_at_precision(np.array([[0.1], [0.5], [0.3]]), np.array([[1], [0], [5]]), np.array([1, 0, -1]))
    (0.5, 0.1)
    """
    if not 0 <= precision <= 1:
        raise ValueError(f"precision must be in [0, 1], got {precision!r}")
    c = threshold_curve(D, I, targets)
    if np.isnan(c["recall"]).any():
        return math.nan, math.nan
    ok = np.flatnonzero((c["precision"] >= precision - 1e-12) & (c["tp"] + c["fp"] > 0))
    if not len(ok):
        return 0.0, -math.inf
    best = ok[np.flatnonzero(c["recall"][ok] == c["recall"][ok].max())[-1]]  # largest such threshold
    return float(c["recall"][best]), float(c["thresholds"][best])


def micro_average_precision(D: np.ndarray, I: np.ndarray, targets: np.ndarray) -> float:
    """Micro-AP (uAP) as DISC21 defines it, over every (query, result) pair of the top-k lists.

    All pairs of all queries (negatives included) are pooled and sorted by distance; within tied
    distances wrong pairs come first (DISC21's pessimistic order). With ``tp_i``, ``fp_i`` the
    cumulative counts down that list, ``P_i = tp_i / (tp_i + fp_i)`` and ``R_i = tp_i / N`` where N
    is the number of positive queries (so originals missing from every top-k lower the score):
    ``uAP = sum_i (R_i - R_{i-1}) P_i``. ``nan`` with no positive query.

    >>> micro_average_precision(np.array([[0.1, 0.2], [0.5, 0.6]]), np.array([[1, 2], [0, 3]]), np.array([1, 0]))
    0.8333333333333333
    """
    I, targets, D = _check_results(I, targets, D)
    n_pos = int((targets >= 0).sum())
    if n_pos == 0:
        return math.nan
    valid = I >= 0
    dist = D[valid]
    good = _hits(I, targets)[valid]
    order = np.lexsort((good, dist))  # by distance, then wrong (False) before right in ties
    good = good[order]
    tp = np.cumsum(good)
    precision = tp / np.arange(1, len(good) + 1)
    return float(precision[good].sum() / n_pos)


def recall_vs_exact(I: np.ndarray, I_exact: np.ndarray, k: int | None = None) -> float:
    """Mean fraction of the exact top-k neighbours that the approximate top-k also returns.

    ``mean_q |I[q, :k] ∩ I_exact[q, :k]| / k`` (``-1`` entries ignored); 1.0 for an exact index.

    >>> recall_vs_exact(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [4, 9]]))
    0.75
    """
    I, I_exact = np.asarray(I), np.asarray(I_exact)
    if I.ndim != 2 or I_exact.ndim != 2 or I.shape[0] != I_exact.shape[0]:
        raise ValueError(
            f"I {I.shape} and I_exact {I_exact.shape} must be 2-D with the same number of queries"
        )
    k = _check_k(k if k is not None else min(I.shape[1], I_exact.shape[1]), min(I.shape[1], I_exact.shape[1]))
    if I.shape[0] == 0:
        return math.nan
    total = 0
    for start in range(0, I.shape[0], 1024):  # bounded (block, k, k) comparison
        a, b = I[start : start + 1024, :k], I_exact[start : start + 1024, :k]
        total += int(((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(axis=2).sum())
    return float(total / (I.shape[0] * k))
