# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Every measure against values computed by hand on tiny arrays, ties counted as DISC21 and ILIAS do."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fast_search import metrics as M

# 4 positive queries (targets 0..3) and 2 negatives; database positions 0..9; the 4th column only
# closes ties (measures at k need k + 1 neighbours)
I = np.array(
    [
        [0, 5, 6, 99],  # original at rank 1
        [7, 1, 8, 99],  # original at rank 2
        [9, 8, 7, 99],  # original missing
        [4, 5, 3, 99],  # original at rank 3
        [2, 1, 0, 99],  # negative
        [6, 7, 8, 99],  # negative
    ]
)
TARGETS = np.array([0, 1, 2, 3, -1, -1])
D = np.array(
    [
        [0.1, 0.5, 0.6, 9.0],
        [0.2, 0.3, 0.9, 9.0],
        [0.4, 0.7, 0.8, 9.0],
        [0.3, 0.35, 0.5, 9.0],
        [0.25, 0.6, 0.7, 9.0],
        [0.9, 1.0, 1.1, 9.0],
    ]
)


def test_recall_at_k_counts_each_query_once():
    assert M.recall_at_k(D, I, TARGETS, 1) == 0.25
    assert M.recall_at_k(D, I, TARGETS, 2) == 0.5
    assert M.recall_at_k(D, I, TARGETS, 3) == 0.75
    # a query whose original appears twice (duplicate results) still counts once
    assert M.recall_at_k(np.array([[0.1, 0.2, 0.3]]), np.array([[0, 0, 4]]), np.array([0]), 2) == 1.0
    assert M.map_at_k(np.array([[0.1, 0.2, 0.3]]), np.array([[0, 0, 4]]), np.array([0]), 2) == 1.0


def test_recall_returns_python_float_and_nan_without_positives():
    value = M.recall_at_k(D, I, TARGETS, 1)
    assert type(value) is float
    assert math.isnan(M.recall_at_k(D[4:], I[4:], TARGETS[4:], 1))
    assert math.isnan(M.map_at_k(D[4:], I[4:], TARGETS[4:], 1))
    assert math.isnan(M.micro_average_precision(D[4:], I[4:], TARGETS[4:]))


def test_minus_one_results_never_match():
    assert M.recall_at_k(np.array([[0.1, 0.2, 0.3]]), np.array([[-1, 3, 4]]), np.array([3]), 1) == 0.0


def test_map_at_k():
    # APs: 1, 1/2, 0, 1/3
    assert M.map_at_k(D, I, TARGETS, 3) == pytest.approx((1 + 0.5 + 0 + 1 / 3) / 4)
    assert M.map_at_k(D, I, TARGETS, 1) == 0.25


def test_k_larger_than_results_is_an_error():
    with pytest.raises(ValueError, match="k=4 needs 5 neighbours"):
        M.recall_at_k(D, I, TARGETS, 4)
    with pytest.raises(ValueError, match="k=3 needs 4 neighbours"):  # the extra one closes ties
        M.recall_at_k(D[:, :3], I[:, :3], TARGETS, 3)
    with pytest.raises(ValueError, match="positive integer"):
        M.recall_at_k(D, I, TARGETS, 0)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(6,\) or \(6, m\)"):
        M.recall_at_k(D, I, TARGETS[:3], 1)
    with pytest.raises(ValueError, match="2-D"):
        M.recall_at_k(D[0], I[0], TARGETS, 1)
    with pytest.raises(ValueError, match=r"\(6, 2\)"):
        M.roc_auc(D[:, :2], I, TARGETS)
    with pytest.raises(TypeError, match="integer"):
        M.recall_at_k(D, I.astype(float), TARGETS, 1)
    with pytest.raises(ValueError, match="sorted"):
        M.recall_at_k(D[:, ::-1], I, TARGETS, 1)


def test_threshold_curve_by_hand():
    # top-1: q0 0.1 correct, q1 0.2 wrong, q2 0.4 wrong, q3 0.3 wrong, neg 0.25, neg 0.9
    c = M.threshold_curve(D, I, TARGETS)
    assert c["thresholds"].tolist() == [-np.inf, 0.1, 0.2, 0.25, 0.3, 0.4, 0.9]
    assert c["tp"].tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert c["fp"].tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert c["recall"].tolist() == [0, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]
    assert c["fpr"].tolist() == [0, 0, 0, 0.5, 0.5, 0.5, 1.0]
    assert c["precision"].tolist() == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 1 / 3]


def test_ties_form_one_step():
    d = np.array([[0.5, 0.9], [0.5, 0.9], [0.5, 0.9]])
    i = np.array([[0, 5], [1, 5], [7, 5]])
    t = np.array([0, 1, -1])
    c = M.threshold_curve(d, i, t)
    assert c["thresholds"].tolist() == [-np.inf, 0.5]
    assert c["tp"].tolist() == [0, 2] and c["fp"].tolist() == [0, 1]
    assert M.recall_at_fpr(d, i, t, 0.5) == (0.0, -np.inf)
    assert M.roc_auc(d, i, t) == pytest.approx(0.5)  # straight line from (0, 0) to (1, 1)


def test_roc_auc_and_recall_at_fpr():
    # recall steps to 0.25 at FPR 0, stays there up to FPR 1
    assert M.roc_auc(D, I, TARGETS) == pytest.approx(0.25)
    assert M.recall_at_fpr(D, I, TARGETS, 0.01) == (0.25, 0.2)
    assert M.recall_at_fpr(D, I, TARGETS, 0.001) == (0.25, 0.2)
    assert M.recall_at_fpr(D, I, TARGETS, 1.0)[0] == 0.25
    with pytest.raises(ValueError, match="fpr"):
        M.recall_at_fpr(D, I, TARGETS, 2.0)


def test_no_negative_queries_give_nan_fpr_measures():
    assert math.isnan(M.roc_auc(D[:4], I[:4], TARGETS[:4]))
    r, t = M.recall_at_fpr(D[:4], I[:4], TARGETS[:4], 0.01)
    assert math.isnan(r) and math.isnan(t)


def test_recall_at_precision():
    assert M.recall_at_precision(D, I, TARGETS, 0.9) == (0.25, 0.2)
    assert M.recall_at_precision(D, I, TARGETS, 0.5) == (0.25, 0.4)
    # nothing ever correct: no threshold reaches the precision
    bad = np.array([[3, 4]]), np.array([[0, 2]]), np.array([1])
    assert M.recall_at_precision(bad[0].astype(float), bad[1], bad[2], 0.9) == (0.0, -np.inf)


def test_micro_ap_by_hand():
    # pairs sorted by distance (pair correct?):
    # .1 T, .2 F, .25 F, .3 T(q1 .3) / .3 F(q3 .3): tie -> F first, .35 F, .4 F, .5 F, .5 T(q3)...
    d = np.array([[0.1, 0.3, 0.9], [0.2, 0.3, 0.9]])
    i = np.array([[0, 5, 9], [7, 1, 9]])
    t = np.array([0, 1])
    # order: .1 T (P=1), .2 F, .3 F (q0->5 before the tied true pair), .3 T (P=2/4)
    assert M.micro_average_precision(d, i, t) == pytest.approx((1 + 0.5) / 2)
    # 18 pairs; correct ones: q0 .1 (rank 1), q1 .3 (rank 5: .2 .25 .3(q3) before it), q3 .5 (rank 9,
    # after the tied wrong .5 of q0)
    # the original of q2 is never retrieved: recall tops out at 3/4
    assert M.micro_average_precision(D, I, TARGETS) == pytest.approx((1 / 1 + 2 / 5 + 3 / 9) / 4)


def test_micro_ap_matches_explicit_formula():
    rng = np.random.default_rng(1)
    d = np.hstack([np.sort(np.round(rng.random((30, 4)), 1), axis=1), np.full((30, 1), 2.0)])  # many ties
    i = np.array([rng.permutation(8)[:5] for _ in range(30)])
    t = rng.integers(-1, 6, 30)
    pairs = [(d[q, j], bool(i[q, j] == t[q] and t[q] >= 0)) for q in range(30) for j in range(4)]
    pairs.sort(key=lambda p: (p[0], p[1]))  # wrong first within ties
    tp, ap = 0, 0.0
    n_pos = int((t >= 0).sum())
    for rank, (_, good) in enumerate(pairs, 1):
        if good:
            tp += 1
            ap += tp / rank / n_pos
    assert M.micro_average_precision(d, i, t) == pytest.approx(ap)


def test_recall_vs_exact():
    assert M.recall_vs_exact(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [4, 9]])) == 0.75
    assert M.recall_vs_exact(np.array([[1, -1]]), np.array([[1, 2]])) == 0.5
    with pytest.raises(ValueError, match="same number of queries"):
        M.recall_vs_exact(np.zeros((2, 2), int), np.zeros((3, 2), int))


def test_docstring_examples():
    import doctest

    result = doctest.testmod(M, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# ---------------------------------------------------------------- ties (DISC21 / ILIAS counting)
def test_ties_count_against_the_query_whatever_the_order():
    # the original (3) ties with another item at distance 0: it is not "found at rank 1"
    d = np.array([[0.0, 0.0, 1.0]])
    for i in (np.array([[3, 5, 7]]), np.array([[5, 3, 7]])):
        assert M.recall_at_k(d, i, np.array([3]), 1) == 0.0
        assert M.recall_at_k(d, i, np.array([3]), 2) == 1.0
        assert M.map_at_k(d, i, np.array([3]), 2) == 0.5  # rank 2: the end of its tied group
        assert M.threshold_curve(d, i, np.array([3]))["tp"].tolist() == [0, 0]


def test_a_tie_across_the_k_th_column_is_beyond_k():
    # faiss returned (1, 3) as top-2, but 4 ties with 3: whichever it kept, the group ends at rank 3
    d = np.array([[0.1, 0.2, 0.2]])
    assert M.recall_at_k(d, np.array([[1, 3, 4]]), np.array([3]), 2) == 0.0
    assert M.recall_at_k(d, np.array([[1, 4, 3]]), np.array([3]), 2) == 0.0
    assert M.micro_average_precision(d, np.array([[1, 3, 4]]), np.array([3]), 2) == 0.0


def test_every_measure_is_independent_of_the_order_of_tied_results():
    rng = np.random.default_rng(5)
    d = np.sort(rng.integers(0, 4, (40, 6)), axis=1).astype(float)
    i = np.array([rng.permutation(12)[:6] for _ in range(40)])
    t = rng.integers(-1, 12, 40)
    shuffled = i.copy()
    for q in range(40):  # permute the ids inside every tied group
        for value in np.unique(d[q]):
            cols = np.flatnonzero(d[q] == value)
            shuffled[q, cols] = rng.permutation(i[q, cols])
    for f in (M.recall_at_k, M.map_at_k, M.oracle_at_k):
        for k in (1, 3, 5):
            assert f(d, i, t, k) == f(d, shuffled, t, k)
    for f in (M.micro_average_precision, M.roc_auc):
        assert f(d, i, t) == f(d, shuffled, t)
    assert M.disc21_recall_at_precision(d, i, t) == M.disc21_recall_at_precision(d, shuffled, t)
    assert M.recall_at_fpr(d, i, t, 0.1) == M.recall_at_fpr(d, shuffled, t, 0.1)


# ---------------------------------------------------------------- several positives (ILIAS)
def test_map_with_several_positives_by_hand():
    # |GT| = 3 (positions 1, 2, 3); results: 1 (hit) 9 2 (hit, tied with 9) 8 7 | 6 closes ties
    d = np.array([[0.1, 0.2, 0.2, 0.4, 0.5, 0.9]])
    i = np.array([[1, 9, 2, 8, 7, 6]])
    gt = np.array([[1, 2, 3]])
    # AP@5 = (1/1 + 2/3) / min(5, 3): the hit in the tied group {9, 2} is scored at the group's end
    assert M.map_at_k(d, i, gt, 5) == pytest.approx((1 + 2 / 3) / 3)
    # AP@2 = (1/1) / min(2, 3): the tied group ends at rank 3, beyond 2
    assert M.map_at_k(d, i, gt, 2) == pytest.approx(1 / 2)
    assert M.oracle_at_k(d, i, gt, 5) == pytest.approx(2 / 3)
    assert M.recall_at_k(d, i, gt, 1) == 1.0
    # ILIAS's formula: sklearn AP of the top k, times #hits / min(k, |GT|)
    y_true = np.isin(i[0, :5], gt[0])
    ilias = average_precision_score(y_true, -d[0, :5]) * y_true.sum() / min(5, 3)
    assert M.map_at_k(d, i, gt, 5) == pytest.approx(ilias)


def test_map_normalised_by_min_k_and_gt():
    # 2 positives, both found at ranks 1 and 2: AP@1 = 1 (min(1, 2) = 1), AP@3 = 1
    d = np.array([[0.1, 0.2, 0.3, 0.4]])
    i = np.array([[4, 5, 6, 7]])
    gt = np.array([[5, 4]])
    assert M.map_at_k(d, i, gt, 1) == 1.0 and M.map_at_k(d, i, gt, 3) == 1.0
    # a query with one positive padded with -1 among queries with several
    gt2 = np.array([[5, 4], [6, -1]])
    d2, i2 = np.vstack([d, d]), np.vstack([i, i])
    assert M.map_at_k(d2, i2, gt2, 3) == pytest.approx((1 + 1 / 3) / 2)
    # pooled, wrong first in ties: .1 F .1 T .2 F .2 T .3 F .3 T -> (1/2 + 2/4 + 3/6) / 3 pairs
    assert M.micro_average_precision(d2, i2, gt2) == pytest.approx(0.5)


def test_disc21_recall_at_precision_90_pools_pairs():
    # pooled pairs: .1 T, .2 T, .3 F, .4 T, .5 F | N = 4 ground-truth pairs
    d = np.array([[0.1, 0.3, 0.5, 0.9], [0.2, 0.4, 0.6, 0.9]])
    i = np.array([[0, 8, 9, 7], [1, 2, 6, 7]])
    gt = np.array([[0, -1], [1, 2]])
    # precision 1, 1, 2/3, 3/4...: the last point with P >= 0.9 is the 2nd pair, recall 2/3
    r, t = M.disc21_recall_at_precision(d, i, gt, 0.9, 2)
    assert r == pytest.approx(2 / 3) and t == 0.2
    assert M.disc21_recall_at_precision(d, i, gt, 0.7, 2) == (1.0, 0.4)
