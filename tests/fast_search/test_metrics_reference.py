# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Property tests: every measure against the field's own formulas on thousands of random cases with ties.

The references are re-implemented here from their published code: isc2021's ``isc/metrics.py``
(``precision_recall``, ``average_precision``, ``find_operating_point``, ``find_tp_ranks``: the
predictions are each query's first k results in whatever order faiss left a tie) and ILIAS's
``evaluation/src/dataset.py`` (``_compute_AP``: sklearn's ``average_precision_score`` of the first k
results, times hits / min(k, |GT|); per-category scores average each instance's queries first).
Each reference is evaluated on several random orders of every tied group: the library's value must
be at or below every one of them, and equal wherever they all agree (no order dependence).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fast_search import metrics as M
from fast_search.results import per_category

N_CASES = 2500
N_ORDERS = 6


# ---------------------------------------------------------------- references, from the published code
def isc_evaluate(gt_pairs: set, predictions: list[tuple[int, int, float]]) -> dict:
    """isc2021 ``evaluate``: pooled (query, db, score) predictions against ground-truth pairs."""
    scores = np.array([p[2] for p in predictions], dtype=float)
    y_true = np.array([(p[0], p[1]) in gt_pairs for p in predictions], dtype=bool)
    order = sorted(range(len(scores)), key=list(zip(scores, ~y_true, strict=True)).__getitem__)[::-1]
    y, s = y_true[order], scores[order]
    ntp = np.cumsum(y)
    precisions = ntp / (np.arange(len(y)) + 1)
    recalls = ntp / len(gt_pairs)
    ap = ((recalls - np.concatenate([[0], recalls[:-1]])) * precisions).sum()
    valid = precisions >= 0.9
    rp90 = recalls[valid][np.argmax(recalls[valid])] if valid.any() else None
    tp90 = s[valid][np.argmax(recalls[valid])] if valid.any() else None
    by_query: dict[int, list] = {}
    for p in predictions:
        by_query.setdefault(p[0], []).append(p)
    ranks = []
    for q, db in sorted(gt_pairs):  # find_tp_ranks: ties pessimistic among the predictions given
        res = np.array([(p[2], p[1] == db) for p in by_query.get(q, [])]).reshape(-1, 2)
        hit = np.flatnonzero(res[:, 1] == 1)
        ranks.append(1 << 35 if not hit.size else (res[:, 0] >= res[hit[0], 0]).sum() - 1)
    ranks = np.array(ranks)
    return {"ap": ap, "rp90": rp90, "tp90": tp90, "r1": (ranks == 0).mean(), "r10": (ranks < 10).mean(),
            "ranks": ranks}


def sklearn_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """sklearn's ``average_precision_score`` (step-wise, one point per distinct score), vectorised."""
    order = np.argsort(-y_score, kind="stable")
    y, s = y_true[order], y_score[order]
    ends = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[ends]
    precision = tp / (np.flatnonzero(ends) + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def ilias_compute_ap(ids: np.ndarray, scores: np.ndarray, gt: set, k: int, ap=sklearn_ap) -> tuple[float, float]:
    """ILIAS ``_compute_AP``: the order of `ids` decides ties (argsort is stable here)."""
    order = np.argsort(-scores, kind="stable")
    top_ids = ids[order][:k]
    y_true = np.isin(top_ids, list(gt))
    if not y_true.any():
        return 0.0, 0.0
    value = ap(y_true, scores[order][:k]) * y_true.sum() / min(k, len(gt))
    return value, y_true.mean() * (k / len(gt))


# ---------------------------------------------------------------- random cases with ties
def random_case(rng: np.random.Generator, single: bool = False):
    nq = int(rng.integers(1, 6))
    width = int(rng.integers(2, 9))
    D = np.sort(rng.integers(0, 4, (nq, width)), axis=1).astype(float)
    I = np.array([rng.permutation(12)[:width] for _ in range(nq)])
    if single:
        pos = rng.integers(-1, 12, nq)[:, None]
    else:
        pos = np.full((nq, 3), -1)
        for q in range(nq):
            n = int(rng.integers(0, 4))
            pos[q, :n] = rng.permutation(12)[:n]
    k = int(rng.integers(1, width))
    return D, I, pos, k


def tie_orders(rng: np.random.Generator, D: np.ndarray, I: np.ndarray, pos: np.ndarray, n: int) -> list[np.ndarray]:
    """Orders of every tied group of every row: as given, negatives first, positives first, then random.

    The two extreme orders bound every reference (its value is monotone in how many positives of the
    cut group fall within k), so "all orders agree" is decided exactly, not by sampling.
    """
    rel = M.relevance(I, pos)
    out = [I]
    for kind in ("negatives-first", "positives-first", *["random"] * max(n - 3, 0)):
        J = I.copy()
        for q in range(len(D)):
            for value in np.unique(D[q]):
                cols = np.flatnonzero(D[q] == value)
                if kind == "random":
                    J[q, cols] = rng.permutation(I[q, cols])
                else:
                    key = rel[q, cols] if kind == "negatives-first" else ~rel[q, cols]
                    J[q, cols] = I[q, cols][np.argsort(key, kind="stable")]
        out.append(J)
    return out


def gt_pairs(pos: np.ndarray) -> set:
    return {(q, int(p)) for q in range(len(pos)) for p in pos[q] if p >= 0}


def isc_of(D, J, pos, k) -> dict:
    preds = [(q, int(J[q, j]), -float(D[q, j])) for q in range(len(D)) for j in range(k)]
    return isc_evaluate(gt_pairs(pos), preds)


def cut_somewhere(D: np.ndarray, k: int) -> bool:
    return bool((D[:, k - 1] == D[:, k]).any())


def test_sklearn_ap_reimplementation_is_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        y = rng.random(n) < 0.5
        y[rng.integers(n)] = True
        s = rng.integers(0, 3, n).astype(float)
        assert sklearn_ap(y, s) == pytest.approx(average_precision_score(y, s))


@pytest.mark.slow
def test_micro_ap_and_p90_at_or_below_isc2021_for_every_tie_order_and_equal_without_a_cut():
    rng = np.random.default_rng(1)
    cut_cases = 0
    for _ in range(N_CASES):
        D, I, pos, k = random_case(rng)
        if not (pos >= 0).any():
            continue
        ours = M.micro_average_precision(D, I, pos, k)
        ours_r, ours_t = M.disc21_recall_at_precision(D, I, pos, 0.9, k)
        refs = [isc_of(D, J, pos, k) for J in tie_orders(rng, D, I, pos, N_ORDERS)]
        for ref in refs:
            assert ours <= ref["ap"] + 1e-12
            assert ours_r <= (ref["rp90"] or 0.0) + 1e-12
        if not cut_somewhere(D, k):
            assert ours == pytest.approx(refs[0]["ap"], abs=1e-12)
            assert ours_r == pytest.approx(refs[0]["rp90"] or 0.0, abs=1e-12)
            if refs[0]["rp90"] is not None:
                assert ours_t == -refs[0]["tp90"]
        else:
            cut_cases += 1
    assert cut_cases > 500  # the cases that matter are well represented


@pytest.mark.slow
def test_recall_at_k_matches_isc2021_find_tp_ranks_with_one_positive():
    rng = np.random.default_rng(2)
    for _ in range(N_CASES):
        D, I, pos, k = random_case(rng, single=True)
        if not (pos >= 0).any():
            continue
        ours = M.recall_at_k(D, I, pos, k)
        for J in tie_orders(rng, D, I, pos, 3):
            ref = isc_of(D, J, pos, k)
            # isc2021 counts a query whose gt pair is absent from its predictions as not found
            ref_recall = float((ref["ranks"] < k).mean())
            assert ours <= ref_recall + 1e-12
            if not cut_somewhere(D, k):
                assert ours == pytest.approx(ref_recall)


@pytest.mark.slow
def test_map_at_k_negatives_first_equals_ilias_where_order_independent_and_is_a_lower_bound():
    rng = np.random.default_rng(3)
    equal_cut = 0
    for _ in range(N_CASES):
        D, I, pos, k = random_case(rng)
        ap = M.average_precision_at_k(D, I, pos, k)
        _, cut_pos = M.cut_group(D, I, pos, k)
        for q in range(len(D)):
            gt = {int(p) for p in pos[q] if p >= 0}
            if not gt:
                assert np.isnan(ap[q])
                continue
            refs = [ilias_compute_ap(J[0], -D[q], gt, k)[0] for J in tie_orders(rng, D[q:q + 1], I[q:q + 1], pos[q:q + 1], N_ORDERS)]
            assert ap[q] <= min(refs) + 1e-12
            reaches_end = D[q, k - 1] == D[q, -1] and D[q, k - 1] == D[q, k]
            if max(refs) - min(refs) < 1e-12 and not reaches_end:
                assert ap[q] == pytest.approx(refs[0], abs=1e-12)
                equal_cut += bool(D[q, k - 1] == D[q, k])
    assert equal_cut > 100


@pytest.mark.slow
def test_oracle_at_k_is_ilias_oracle_lower_bound():
    rng = np.random.default_rng(4)
    for _ in range(1000):
        D, I, pos, k = random_case(rng)
        if not (pos >= 0).any():
            continue
        refs = []
        for J in tie_orders(rng, D, I, pos, 4):
            vals = [ilias_compute_ap(J[q], -D[q], {int(p) for p in pos[q] if p >= 0}, k)[1]
                    for q in range(len(D)) if (pos[q] >= 0).any()]
            refs.append(np.mean(vals))
        ours = M.oracle_at_k(D, I, pos, k)
        assert ours <= min(refs) + 1e-12
        if not cut_somewhere(D, k):
            assert ours == pytest.approx(refs[0])


def test_ilias_with_real_sklearn_on_a_sample():
    rng = np.random.default_rng(6)
    for _ in range(200):
        D, I, pos, k = random_case(rng)
        ap = M.average_precision_at_k(D, I, pos, k)
        for q in range(len(D)):
            gt = {int(p) for p in pos[q] if p >= 0}
            if gt and not (D[q, k - 1] == D[q, k]):
                ref = ilias_compute_ap(I[q], -D[q], gt, k, ap=average_precision_score)[0]
                assert ap[q] == pytest.approx(ref, abs=1e-12)


# ---------------------------------------------------------------- the reproductions
def test_micro_ap_counts_a_cut_tie_group_as_wrong_pairs():
    D = np.array([[0.0, 0, 0], [1, 5, 6]])
    I = np.array([[7, 8, 9], [0, 3, 4]])
    p = np.array([-1, 0])
    assert M.micro_average_precision(D, I, p, 2) == pytest.approx(1 / 3)  # isc2021: 0.333 in every order
    assert M.disc21_recall_at_precision(D, I, p, 0.9, 2) == (0.0, -np.inf)  # no operating point


def test_map_at_k_cut_group_of_positives_only():
    assert M.map_at_k(np.array([[0.0, 0, 1]]), np.array([[1, 2, 3]]), np.array([[1, 2]]), 1) == 1.0
    # a group that reaches the last column may continue with unseen negatives: no credit
    assert M.map_at_k(np.array([[0.0, 0, 0]]), np.array([[1, 2, 3]]), np.array([[1, 2]]), 1) == 0.0


# ---------------------------------------------------------------- ILIAS per-category averaging
def test_per_category_averages_instances_first_as_ilias_does():
    # instance a (category x): 3 queries, AP 1, 1, 0; instance b (category x): 1 query, AP 0
    D = np.array([[0.1, 0.9]] * 4)
    I = np.array([[0, 5], [0, 5], [5, 0], [5, 1]])
    pos = np.array([[0], [0], [7], [1]])
    cats = np.array(["x", "x", "x", "x"])
    instances = np.array(["a", "a", "a", "b"])
    out = per_category(D, I, pos, [1], cats, instances)["x"]
    assert out["map_at_k"]["1"] == pytest.approx(((1 + 1 + 0) / 3 + 0) / 2)  # ILIAS
    assert out["map_at_k_per_query"]["1"] == pytest.approx(2 / 4)
    assert out["n_instances"] == 2


def test_a_tie_of_positives_only_counts_at_its_start():
    # the query's two duplicates tie at distance 0: whichever order, a positive is at rank 1
    D, I = np.array([[0.0, 0.0, 5.0]]), np.array([[4, 7, 9]])
    assert M.recall_at_k(D, I, np.array([[4, 7]]), 1) == 1.0
    assert M.first_positive_rank(D, I, np.array([[4, 7]])).tolist() == [1]
    assert M.first_positive_rank(D, I, np.array([[7, -1]])).tolist() == [2]  # one negative tied before it
    assert M.first_positive_rank(np.array([[0.0, 0, 0]]), I, np.array([[4, 7]])).tolist() == [0]  # may go on
