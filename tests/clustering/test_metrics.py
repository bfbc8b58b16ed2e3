"""External scores against hand-computed values on tiny labelings, and their shared properties."""

import math

import numpy as np
import pytest

from clustering import metrics as M

TRUE = [0, 0, 1, 1]
PRED = [0, 0, 0, 1]  # cluster 0 = {a, b, c}, cluster 1 = {d}; class 0 = {a, b}, class 1 = {c, d}


def _h(*p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_homogeneity_completeness_v_measure_by_hand():
    h_c = _h(0.5, 0.5)  # H(C): classes 2/4, 2/4
    h_c_k = 3 / 4 * _h(2 / 3, 1 / 3)  # H(C|K): cluster 0 mixes 2:1, cluster 1 pure
    h_k = _h(3 / 4, 1 / 4)
    h_k_c = 2 / 4 * _h(1 / 2, 1 / 2)  # class 1 split 1:1 over the two clusters
    h, c = 1 - h_c_k / h_c, 1 - h_k_c / h_k
    assert M.homogeneity_score(TRUE, PRED) == pytest.approx(h)
    assert M.completeness_score(TRUE, PRED) == pytest.approx(c)
    assert M.v_measure_score(TRUE, PRED) == pytest.approx(2 * h * c / (h + c))


def test_ari_by_hand():
    # sum C(n_ij,2)=1, sum C(a_i,2)=3, sum C(b_j,2)=2, C(4,2)=6: expected 1, max 2.5 -> ARI 0
    assert M.adjusted_rand_score(TRUE, PRED) == pytest.approx(0.0)
    # n_ij = [[2,0],[1,2]] over 5 points: index 2, a-pairs 1+3=4, b-pairs 3+1=4, expected 16/10
    ari = (2 - 1.6) / (4 - 1.6)
    assert M.adjusted_rand_score([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]) == pytest.approx(ari)


def test_bcubed_and_purity_by_hand():
    # precision per point: a,b: 2/3, c: 1/3, d: 1 -> 8/3/4; recall: a,b: 1, c: 1/2, d: 1/2 -> 3/4
    p, r = (2 / 3 + 2 / 3 + 1 / 3 + 1) / 4, (1 + 1 + 0.5 + 0.5) / 4
    assert M.bcubed_precision(TRUE, PRED) == pytest.approx(p)
    assert M.bcubed_recall(TRUE, PRED) == pytest.approx(r)
    assert M.bcubed_f_score(TRUE, PRED) == pytest.approx(2 * p * r / (p + r))
    assert M.purity_score(TRUE, PRED) == pytest.approx(3 / 4)
    # 3 classes, one cluster: precision = sum(b_j^2)/N^2, recall 1, purity = largest class / N
    t = [0, 0, 0, 1, 1, 2]
    assert M.bcubed_precision(t, [5] * 6) == pytest.approx((9 + 4 + 1) / 36)
    assert M.bcubed_recall(t, [5] * 6) == pytest.approx(1.0)
    assert M.purity_score(t, [5] * 6) == pytest.approx(0.5)
    # all singletons: precision 1, recall = mean 1/b_j over points
    assert M.bcubed_precision(t, range(6)) == pytest.approx(1.0)
    assert M.bcubed_recall(t, list(range(6))) == pytest.approx((3 * 1 / 3 + 2 * 1 / 2 + 1) / 6)


def test_ami_extremes():
    assert M.adjusted_mutual_info_score(TRUE, [7, 7, 3, 3]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert abs(M.adjusted_mutual_info_score(rng.integers(0, 5, 4000), rng.integers(0, 5, 4000))) < 0.01


ALL = [
    M.homogeneity_score, M.completeness_score, M.v_measure_score, M.adjusted_rand_score,
    M.adjusted_mutual_info_score, M.bcubed_precision, M.bcubed_recall, M.bcubed_f_score, M.purity_score,
]  # fmt: skip


@pytest.mark.parametrize("score", ALL, ids=lambda f: f.__name__)
def test_common_properties(score):
    t = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([1, 1, 0, 2, 2, 2, 0])
    value = score(t, p)
    assert type(value) is float
    assert -1.0 <= value <= 1.0
    assert score(t, t) == pytest.approx(1.0)
    perm = np.array([2, 0, 1])
    assert score(t, perm[p]) == pytest.approx(value)  # renaming clusters changes nothing
    with pytest.raises(ValueError, match=r"\(7,\).*\(6,\)"):
        score(t, p[:6])
    with pytest.raises(ValueError, match=r"1-D.*\(7, 1\)"):
        score(t, p[:, None])
    with pytest.raises(TypeError, match="integers"):
        score(t, p.astype(float))


def test_noise_modes():
    t = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0, 0, -1, 1, 1, -1])
    single = M.clustering_scores(t, p, noise="singleton")
    assert single["n_clusters"] == 2 and single["n_noise"] == 2
    assert single["homogeneity"] == pytest.approx(1.0)  # noise points alone: still pure
    assert single["bcubed_recall"] == pytest.approx((2 / 3 * 4 + 1 / 3 * 2) / 6)
    one = M.clustering_scores(t, p, noise="cluster")
    assert one["homogeneity"] < 1.0  # the two noise points share a "cluster" across classes
    ignored = M.clustering_scores(t, p, noise="ignore")
    assert ignored["purity"] == pytest.approx(1.0) and ignored["completeness"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="valid modes: singleton, cluster, ignore"):
        M.clustering_scores(t, p, noise="drop")
    with pytest.raises(ValueError, match="every point is noise"):
        M.clustering_scores(t, -np.ones(6, int), noise="ignore")


def test_noise_as_singletons():
    out = M.noise_as_singletons([3, -1, 3, -1])
    assert out[0] == out[2] == 3 and len({out[1], out[3], 3}) == 3


def test_intersection_over_union_by_hand():
    t = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 0, 0, 1, -1])  # point 4 is noise: in no cluster, still in class 2
    iou, clusters, classes = M.intersection_over_union(p, t)
    assert clusters.tolist() == [0, 1] and classes.tolist() == [0, 1, 2]
    expected = [[2 / 3, 1 / 4, 0.0], [0.0, 1 / 2, 0.0]]
    np.testing.assert_allclose(iou, expected)
