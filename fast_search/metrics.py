# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Retrieval measures for copy detection, computed from k-NN results `(D, I)` and ground truth.

Conventions shared by every function:

- ``D``: (nq, width) *distances*, ascending per row, smaller is closer (cosine and inner product
  are turned into distances by `fast_search.index`, so one threshold direction serves every metric).
- ``I``: (nq, width) int64 database indices; ``-1`` (faiss: no result) never matches.
- ``positives``: each query's relevant database indices. Either (nq,) with one original per query
  (``-1``: a *negative* query, its original is not in the database) or (nq, m) with several
  positives per query, padded with ``-1`` (the ILIAS ground truth). A query without any positive
  is a negative query.

**Ties** are counted the way DISC21 (``isc2021``) and ILIAS count them, so no measure depends on
the order of the database or of the queries: every result gets the rank of the *end* of its group
of equal distances (``rank = #{results at a distance <= its own}``, isc2021's ``find_tp_ranks``;
sklearn's ``average_precision_score`` used by ILIAS treats a tied group the same way). A result
counts within the first k only if its whole tied group does; since faiss cuts ties at the k-th
column arbitrarily, measures at k need one more column than k (``width > k``): a group that
reaches that extra column is beyond k. `fast_search.experiment` searches ``max(ks) + 1`` neighbours.

The group **cut at k** (it starts within the first k results and goes on beyond k) fills the
remaining slots up to k, and whichever of its members faiss kept decides the field's own numbers.
Each measure counts it the pessimistic way, so it never depends on that choice:

- recall@k and the top-1 threshold measures: a query's first positive ranks after every negative of
  its tied group (`first_positive_rank`; with one positive, its group's end, as isc2021's
  ``find_tp_ranks``), so in the group cut at k it is beyond k unless the group's negatives leave
  it a slot (and a group that reaches the last column is beyond k);
- micro-AP and DISC21 recall@P90: its slots within k are *wrong pairs* at its distance, so the value
  is at or below isc2021's for every order of the tie, and equal to it when no group is cut;
- mAP@k and the oracle: its members are ordered *negatives first*, so its positives fill only the
  slots its negatives leave (all slots share the group's precision, as in sklearn). A group that
  reaches the last column may hold results beyond it, taken as negatives. This equals ILIAS's
  ``_compute_AP`` wherever ILIAS's value does not depend on the order of the tie, and is a lower
  bound of it elsewhere.

Degenerate cases return ``nan`` (no positive query for recall-type measures, no negative query
for false-positive rates), never raise, and every scalar is a Python ``float``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "tie_ranks",
    "relevance",
    "cut_group",
    "positive_ranks",
    "first_positive_rank",
    "recall_at_k",
    "map_at_k",
    "oracle_at_k",
    "average_precision_at_k",
    "threshold_curve",
    "roc_auc",
    "recall_at_fpr",
    "recall_at_precision",
    "micro_average_precision",
    "disc21_recall_at_precision",
    "recall_vs_exact",
]


def as_positives(positives: np.ndarray, nq: int) -> np.ndarray:
    """(nq, m) int64 positives, -1 padded, from a (nq,) targets or (nq, m) array; errors name shapes."""
    p = np.asarray(positives)
    if not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"positives/targets must hold integer indices (-1 = none), got dtype {p.dtype}")
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[0] != nq:
        raise ValueError(
            f"targets must have shape ({nq},) or ({nq}, m) to match the results, got {np.shape(positives)}"
        )
    return p.astype(np.int64, copy=False)


def _check_results(D: np.ndarray, I: np.ndarray, positives: np.ndarray):
    """Validate (D, I, positives) shapes, dtypes and row order; errors name the shapes received."""
    I = np.asarray(I)
    if I.ndim != 2:
        raise ValueError(f"I must be 2-D (n_queries, k), got shape {I.shape}")
    if not np.issubdtype(I.dtype, np.integer):
        raise TypeError(f"I must hold integer indices, got dtype {I.dtype}")
    D = np.asarray(D, dtype=np.float64)
    if D.shape != I.shape:
        raise ValueError(f"D has shape {D.shape} but I has shape {I.shape}")
    if np.isnan(D).any():
        raise ValueError(f"D holds {int(np.isnan(D).sum())} NaN distances")
    if D.shape[1] > 1 and (np.diff(D, axis=1) < 0).any():
        raise ValueError("each row of D must be sorted by increasing distance (as faiss returns it)")
    return D, I.astype(np.int64, copy=False), as_positives(positives, I.shape[0])


def _check_k(k: int, width: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= width:
        raise ValueError(
            f"k={k} needs {k + 1} neighbours per query (one more than k, so ties at the k-th "
            f"distance can be counted) but the results hold {width}"
        )
    return int(k)


def tie_ranks(D: np.ndarray) -> np.ndarray:
    """(nq, width) rank of each result: the end of its group of equal distances (1-based).

    ``rank[q, j] = #{j' : D[q, j'] <= D[q, j]}`` on rows sorted by distance; a group that reaches
    the last column may continue beyond the results, so only ranks smaller than the width are exact.

    >>> tie_ranks(np.array([[0.0, 1.0, 1.0, 2.0]])).tolist()
    [[1, 3, 3, 4]]
    """
    D = np.asarray(D)
    nq, width = D.shape
    if width == 0:
        return np.zeros((nq, 0), np.int64)
    ends = np.ones((nq, width), dtype=bool)  # column j ends its group
    ends[:, :-1] = D[:, 1:] != D[:, :-1]
    candidate = np.where(ends, np.arange(1, width + 1), width + 1)
    return np.minimum.accumulate(candidate[:, ::-1], axis=1)[:, ::-1].astype(np.int64)


def relevance(I: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """(nq, width) bool: result j of query q is one of q's positives (never for -1 results)."""
    I = np.asarray(I, dtype=np.int64)
    pos = as_positives(positives, I.shape[0])
    rel = np.zeros(I.shape, dtype=bool)
    for c in range(pos.shape[1]):
        rel |= (I == pos[:, c : c + 1]) & (pos[:, c : c + 1] >= 0)
    return rel & (I >= 0)


def _n_relevant(positives: np.ndarray) -> np.ndarray:
    """|GT| of each query: its distinct positives (-1 padding ignored)."""
    p = np.sort(positives, axis=1)
    distinct = (p >= 0) & np.r_["1", np.ones((len(p), 1), bool), p[:, 1:] != p[:, :-1]]
    return distinct.sum(axis=1)


def _first_occurrence(I: np.ndarray) -> np.ndarray:
    """(nq, width) bool: I[q, j] did not appear earlier in row q (a duplicated result counts once)."""
    order = np.argsort(I, axis=1, kind="stable")
    s = np.take_along_axis(I, order, axis=1)
    first_sorted = np.ones(I.shape, dtype=bool)
    first_sorted[:, 1:] = s[:, 1:] != s[:, :-1]
    out = np.empty_like(first_sorted)
    np.put_along_axis(out, order, first_sorted, axis=1)
    return out


def positive_ranks(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> np.ndarray:
    """(nq, k) tie-aware ranks (1..k) of each query's positives found within k, ascending; 0 = none.

    A positive counts at rank r only if its whole tied group ends at r <= k (see module docstring).
    """
    D, I, pos = _check_results(D, I, positives)
    k = _check_k(k, I.shape[1])
    rel = relevance(I, pos) & _first_occurrence(I)
    ranks = np.where(rel, tie_ranks(D), 0)
    ranks[ranks > k] = 0
    ranks = np.sort(np.where(ranks > 0, ranks, k + 1), axis=1)[:, :k]
    ranks[ranks > k] = 0
    return ranks


def first_positive_rank(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """(nq,) rank (1-based) of each query's first positive with its tied group ordered negatives first; 0: none.

    In a group of equal distances starting after rank s that holds n negatives, the first positive
    ranks s + n + 1 whatever order faiss left the group in (with one positive: the group's end, as
    isc2021's ``find_tp_ranks`` counts it; a group of positives only: its start). A group that
    reaches the last column may go on with unseen negatives: its positives count as not found.
    """
    D, I, pos = _check_results(D, I, positives)
    nq, width = D.shape
    if width == 0:
        return np.zeros(nq, np.int64)
    ends = tie_ranks(D)
    starts_here = np.ones((nq, width), dtype=bool)
    starts_here[:, 1:] = D[:, 1:] != D[:, :-1]
    start = np.maximum.accumulate(np.where(starts_here, np.arange(width), 0), axis=1)  # 0-based group start
    rel = relevance(I, pos) & _first_occurrence(I)
    neg_before = np.concatenate([np.zeros((nq, 1), np.int64), np.cumsum(~rel, axis=1)], axis=1)
    n_neg = np.take_along_axis(neg_before, ends, axis=1) - np.take_along_axis(neg_before, start, axis=1)
    rank = np.where(rel & (ends < width), start + n_neg + 1, np.iinfo(np.int64).max)
    first = rank.min(axis=1)
    return np.where(first == np.iinfo(np.int64).max, 0, first).astype(np.int64)


def cut_group(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(slots, positives it may fill) of each row's tied group cut at k (module docstring); 0 when none.

    ``slots``: the cut group's columns among the first k. The positives, ordered negatives-first:
    ``max(0, slots - negatives of the group)``, and 0 when the group reaches the last column (it
    may go on with results that were not returned).
    """
    D, I, pos = _check_results(D, I, positives)
    k = _check_k(k, I.shape[1])
    ranks = tie_ranks(D)
    cut = ranks[:, k - 1] > k
    members = (D == D[:, k - 1 : k]) & cut[:, None]
    slots = members[:, :k].sum(axis=1)
    n_pos = (members & relevance(I, pos) & _first_occurrence(I)).sum(axis=1)
    n_neg = members.sum(axis=1) - n_pos
    known = ranks[:, k - 1] < I.shape[1]
    return slots, np.where(known, np.maximum(slots - n_neg, 0), 0)


def _per_query(D, I, positives, k) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ranks (nq, k), |GT| per query, positive-query mask)."""
    D, I, pos = _check_results(D, I, positives)
    n_rel = _n_relevant(pos)
    return positive_ranks(D, I, pos, k), n_rel, n_rel > 0


def recall_at_k(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Fraction of positive queries with a positive among their first `k` results (ties pessimistic).

    Each query counts at most once (the seed summed hits per query, which can exceed 1).

    >>> D = np.array([[0.1, 0.2, 0.3], [0.1, 0.1, 0.3], [0.0, 0.1, 0.2]])
    >>> I = np.array([[3, 1, 4], [0, 2, 5], [5, 6, 7]])
    >>> recall_at_k(D, I, np.array([1, 0, -1]), 1), recall_at_k(D, I, np.array([1, 0, -1]), 2)
    (0.0, 1.0)
    """
    D, I, pos = _check_results(D, I, positives)
    _check_k(k, I.shape[1])
    positive = _n_relevant(pos) > 0
    if not positive.any():
        return math.nan
    first = first_positive_rank(D, I, pos)
    return float(((first > 0) & (first <= k))[positive].mean())


def average_precision_at_k(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> np.ndarray:
    """(nq,) AP@k of each query, ILIAS's definition, normalised by ``min(k, |GT|)``; nan for negatives.

    ``AP@k = sum_{positives at rank r <= k} precision@r / min(k, |GT|)`` with tie-group ranks (a
    group of equal distances is scored at its end, like sklearn's ``average_precision_score``);
    the group cut at k adds the positives it holds, negatives first, at precision@k (`cut_group`).
    With one positive per query AP@k = 1/rank (0 if beyond k).
    """
    ranks, n_rel, positive = _per_query(D, I, positives, k)
    found = ranks > 0
    hits_before = np.cumsum(found, axis=1)  # positives at ranks <= this one (groups end together)
    # positives of one tied group share its end rank: precision there counts all of them
    same_as_next = np.zeros_like(found)
    same_as_next[:, :-1] = (ranks[:, 1:] == ranks[:, :-1]) & found[:, 1:]
    group_hits = hits_before.copy()
    for j in range(k - 2, -1, -1):  # propagate the group's total back to its first member
        group_hits[:, j] = np.where(same_as_next[:, j], group_hits[:, j + 1], group_hits[:, j])
    precision = np.where(found, group_hits / np.maximum(ranks, 1), 0.0)
    _, cut_pos = cut_group(D, I, positives, k)  # the group cut at k, negatives first: precision at k
    total = precision.sum(axis=1) + cut_pos * (found.sum(axis=1) + cut_pos) / k
    ap = total / np.maximum(np.minimum(k, n_rel), 1)
    return np.where(positive, ap, np.nan)


def map_at_k(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Mean over positive queries of AP@k (`average_precision_at_k`); with one positive, MRR@k.

    >>> D = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.0, 0.1, 0.2]])
    >>> map_at_k(D, np.array([[3, 1, 4], [0, 2, 5], [5, 6, 7]]), np.array([1, 0, -1]), 2)
    0.75
    """
    ap = average_precision_at_k(D, I, positives, k)
    ap = np.sort(ap[~np.isnan(ap)])  # summed in value order: the same bits whatever the query order
    return math.nan if not len(ap) else float(ap.mean())


def oracle_at_k(D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> float:
    """ILIAS's recall@k oracle: mean over positive queries of (#positives within k) / |GT|.

    The AP a perfect re-ranking of the first k results could reach; equals recall@k with one positive.
    """
    ranks, n_rel, positive = _per_query(D, I, positives, k)
    if not positive.any():
        return math.nan
    found = (ranks > 0).sum(axis=1) + cut_group(D, I, positives, k)[1]  # cut group: negatives first
    return float(np.sort(found[positive] / n_rel[positive]).mean())  # value order: query-order-free bits


def _top1(D: np.ndarray, I: np.ndarray, positives: np.ndarray):
    """(top-1 distance, rank 1 is a positive with its tie group ordered negatives first, positive-query mask)."""
    D, I, pos = _check_results(D, I, positives)
    if D.shape[1] < 2:
        raise ValueError(
            f"threshold measures need 2 neighbours per query (one to close ties at rank 1), got D {D.shape}"
        )
    correct = first_positive_rank(D, I, pos) == 1
    return D[:, 0], correct, _n_relevant(pos) > 0


def threshold_curve(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> dict[str, np.ndarray]:
    """Recall, false-positive rate and precision as functions of a top-1 distance threshold.

    A query is *accepted* at threshold t when its top-1 distance is ``<= t``. A positive query
    whose top-1 is a positive (after every negative tied with it: ties count against it) and is accepted is a
    true positive; an accepted negative query is a false positive (a positive query with a wrong
    top-1 is a miss, never a false positive). ``recall = TP / #positive``, ``fpr = FP / #negative``,
    ``precision = TP / (TP + FP)`` (1.0 where nothing is accepted). The first point is "accept
    nothing" (threshold ``-inf``); tied distances form one step. Returns arrays
    ``thresholds, tp, fp, recall, fpr, precision``.

    >>> D = np.array([[0.1, 0.9], [0.5, 0.9], [0.3, 0.9]])
    >>> c = threshold_curve(D, np.array([[1, 7], [0, 7], [5, 7]]), np.array([1, 0, -1]))
    >>> c["thresholds"].tolist(), c["recall"].tolist(), c["fpr"].tolist()
    ([-inf, 0.1, 0.3, 0.5], [0.0, 0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0])
    """
    top1, correct, positive = _top1(D, I, positives)
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


def roc_auc(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> float:
    """Area under recall (y) vs false-positive rate (x) of `threshold_curve`, trapezoids, x in [0, 1].

    The curve ends at FPR 1 with recall = acc@1 (top-1 correct rate), so AUC <= acc@1.
    ``nan`` when there is no positive or no negative query.

    >>> D = np.array([[0.1, 0.9], [0.5, 0.9], [0.3, 0.9]])
    >>> roc_auc(D, np.array([[1, 7], [0, 7], [5, 7]]), np.array([1, 0, -1]))
    0.5
    """
    c = threshold_curve(D, I, positives)
    if np.isnan(c["recall"]).any() or np.isnan(c["fpr"]).any():
        return math.nan
    return float(np.trapezoid(c["recall"], c["fpr"]))


def recall_at_fpr(D: np.ndarray, I: np.ndarray, positives: np.ndarray, fpr: float) -> tuple[float, float]:
    """Best recall whose false-positive rate is ``<= fpr``, and the distance threshold giving it.

    The threshold is the largest one reaching that recall within the FPR budget (``-inf``: accept
    nothing). ``(nan, nan)`` without positive or negative queries.
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr!r}")
    c = threshold_curve(D, I, positives)
    if np.isnan(c["recall"]).any() or np.isnan(c["fpr"]).any():
        return math.nan, math.nan
    ok = np.flatnonzero(c["fpr"] <= fpr + 1e-12)
    best = ok[np.flatnonzero(c["recall"][ok] == c["recall"][ok].max())[-1]]  # largest such threshold
    return float(c["recall"][best]), float(c["thresholds"][best])


def recall_at_precision(D: np.ndarray, I: np.ndarray, positives: np.ndarray, precision: float = 0.9):
    """Top-1 threshold measure: best recall of `threshold_curve` at precision ``>= precision``.

    One decision per query (its top-1), unlike DISC21's pooled-pairs measure
    (`disc21_recall_at_precision`). The threshold is the largest one reaching that recall. Only
    thresholds that accept at least one query count; ``(0.0, -inf)`` if none reaches the
    precision, ``(nan, nan)`` without positive queries.
    """
    if not 0 <= precision <= 1:
        raise ValueError(f"precision must be in [0, 1], got {precision!r}")
    c = threshold_curve(D, I, positives)
    if np.isnan(c["recall"]).any():
        return math.nan, math.nan
    ok = np.flatnonzero((c["precision"] >= precision - 1e-12) & (c["tp"] + c["fp"] > 0))
    if not len(ok):
        return 0.0, -math.inf
    best = ok[np.flatnonzero(c["recall"][ok] == c["recall"][ok].max())[-1]]  # largest such threshold
    return float(c["recall"][best]), float(c["thresholds"][best])


def _pooled_pairs(D, I, positives, k: int | None):
    """DISC21's pooled (distance, correct) pairs of every query's first k results, pessimistic order.

    Every returned result within k is a pair; the slots of a tied group cut at k are wrong pairs
    whichever members faiss kept (order-independent, at or below isc2021 for every tie order);
    within equal distances wrong pairs come first. Returns (distances, correct, N = total positives).
    """
    D, I, pos = _check_results(D, I, positives)
    k = _check_k(D.shape[1] - 1 if k is None else k, D.shape[1])
    n_pos = int(_n_relevant(pos).sum())
    keep = I[:, :k] >= 0
    whole = tie_ranks(D)[:, :k] <= k  # the group ends within k: its members are known
    good = ((relevance(I, pos) & _first_occurrence(I))[:, :k] & whole)[keep]
    dist = D[:, :k][keep]
    order = np.lexsort((good, dist))  # by distance, then wrong (False) before right in ties
    return dist[order], good[order], n_pos


def micro_average_precision(
    D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int | None = None
) -> float:
    """Micro-AP (uAP) as DISC21 defines it, over every (query, result) pair of the first k results.

    All pairs of all queries (negatives included) are pooled and sorted by distance; within tied
    distances wrong pairs come first (DISC21's pessimistic order). With ``tp_i``, ``fp_i`` the
    cumulative counts down that list, ``P_i = tp_i / (tp_i + fp_i)`` and ``R_i = tp_i / N`` where N
    is the number of ground-truth pairs (so positives missing from every list lower the score):
    ``uAP = sum_i (R_i - R_{i-1}) P_i``. k defaults to ``width - 1``. ``nan`` with no positive.

    >>> D = np.array([[0.1, 0.2, 0.9], [0.5, 0.6, 0.9]])
    >>> micro_average_precision(D, np.array([[1, 2, 7], [0, 3, 7]]), np.array([1, 0]))
    0.8333333333333333
    """
    _, good, n_pos = _pooled_pairs(D, I, positives, k)
    if n_pos == 0:
        return math.nan
    precision = np.cumsum(good) / np.arange(1, len(good) + 1)
    return float(precision[good].sum() / n_pos)


def disc21_recall_at_precision(
    D: np.ndarray, I: np.ndarray, positives: np.ndarray, precision: float = 0.9, k: int | None = None
) -> tuple[float, float]:
    """DISC21's "recall at precision 90 %": over the pooled pairs of `micro_average_precision`.

    The highest ``R_i`` whose ``P_i >= precision`` (isc2021's ``find_operating_point``), and the
    distance of that pair (the threshold). Not the top-1 measure `recall_at_precision`: here every
    pair of the first k results is a decision. ``(0.0, -inf)`` if no point reaches the precision,
    ``(nan, nan)`` with no positive.
    """
    if not 0 <= precision <= 1:
        raise ValueError(f"precision must be in [0, 1], got {precision!r}")
    dist, good, n_pos = _pooled_pairs(D, I, positives, k)
    if n_pos == 0:
        return math.nan, math.nan
    tp = np.cumsum(good)
    prec = tp / np.arange(1, len(good) + 1)
    ok = np.flatnonzero(prec >= precision - 1e-12)
    if not len(ok):
        return 0.0, -math.inf
    best = ok[np.argmax(tp[ok])]
    return float(tp[best] / n_pos), float(dist[best])


def recall_vs_exact(
    I: np.ndarray,
    I_exact: np.ndarray,
    k: int | None = None,
    D: np.ndarray | None = None,
    D_exact: np.ndarray | None = None,
) -> float:
    """Mean fraction of the exact top-k neighbours that the approximate top-k also returns.

    ``mean_q |I[q, :k] ∩ I_exact[q, :k]| / k`` (``-1`` entries ignored); 1.0 for an exact index.
    With distances, an approximate result that is not in the exact list but lies at the exact k-th
    distance also counts (a tie the two searches broke differently), capped at k per query.

    >>> recall_vs_exact(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [4, 9]]))
    0.75
    """
    I, I_exact = np.asarray(I), np.asarray(I_exact)
    if I.ndim != 2 or I_exact.ndim != 2 or I.shape[0] != I_exact.shape[0]:
        raise ValueError(
            f"I {I.shape} and I_exact {I_exact.shape} must be 2-D with the same number of queries"
        )
    width = min(I.shape[1], I_exact.shape[1])
    k = int(k if k is not None else width)
    if k < 1 or k > width:
        raise ValueError(f"k must be in [1, {width}], got {k!r}")
    if I.shape[0] == 0:
        return math.nan
    total = 0
    for start in range(0, I.shape[0], 1024):  # bounded (block, k, k) comparison
        a, b = I[start : start + 1024, :k], I_exact[start : start + 1024, :k]
        found = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(axis=2)
        if D is not None and D_exact is not None:
            kth = np.asarray(D_exact)[start : start + 1024, k - 1 : k]
            found |= (np.asarray(D)[start : start + 1024, :k] <= kth) & (a >= 0)
        total += int(np.minimum(found.sum(axis=1), k).sum())
    return float(total / (I.shape[0] * k))
