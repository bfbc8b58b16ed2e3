"""Agglomerative clustering: dense == scipy, sparse == dense where both fit, planted clusters, errors."""

import logging

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from clustering.agglomerative import Agglomerative, dense_memory_bytes
from clustering.metrics import adjusted_rand_score
from clustering.synthetic import planted_clusters
from clustering.trees import cut_at_distance, cut_to_clusters, relabel_by_size

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 12)).astype(np.float32)
CASES = [("single", "euclidean"), ("single", "cosine"), ("complete", "euclidean"), ("complete", "cosine"),
         ("average", "euclidean"), ("average", "cosine"), ("ward", "euclidean"), ("centroid", "euclidean")]  # fmt: skip


def same_partition(a, b):
    return adjusted_rand_score(a, b) == pytest.approx(1.0)


@pytest.mark.parametrize("linkage_name,metric", CASES)
def test_dense_path_equals_scipy(linkage_name, metric):
    Z = linkage(pdist(X.astype(np.float64), metric), linkage_name)
    model = Agglomerative(linkage=linkage_name, metric=metric).fit(X)
    assert model.path_ == "dense"
    np.testing.assert_allclose(model.linkage_matrix_[:, 2], Z[:, 2], rtol=1e-5, atol=1e-6)
    for k in (2, 7, 30):
        assert same_partition(model.cut(k), cut_to_clusters(Z, k))


@pytest.mark.parametrize("linkage_name,metric", [c for c in CASES if c[0] != "centroid"])
def test_sparse_path_on_full_graph_equals_scipy(linkage_name, metric):
    """With k = n - 1 the kNN graph is complete: MST single linkage, graph average/complete and
    connectivity ward must give scipy's tree."""
    Z = linkage(pdist(X.astype(np.float64), metric), linkage_name)
    path = "mst" if linkage_name == "single" else "knn-graph"
    model = Agglomerative(linkage=linkage_name, metric=metric, path=path, n_neighbors=len(X) - 1).fit(X)
    assert model.path_ == path
    np.testing.assert_allclose(np.sort(model.linkage_matrix_[:, 2]), np.sort(Z[:, 2]), rtol=1e-5, atol=1e-6)
    for k in (2, 7, 30):
        assert same_partition(model.cut(k), cut_to_clusters(Z, k))


def test_hamming_on_packed_bits_matches_scipy():
    bits = RNG.integers(0, 2, (40, 64)).astype(np.uint8)
    Z = linkage(pdist(bits.astype(bool), "hamming"), "average")
    packed = np.packbits(bits, axis=1)
    dense = Agglomerative(linkage="average", metric="hamming", binary=True).fit(packed)
    np.testing.assert_allclose(dense.linkage_matrix_[:, 2], Z[:, 2], atol=1e-12)
    sparse = Agglomerative(linkage="average", metric="hamming", binary=True, path="knn-graph", n_neighbors=39).fit(packed)
    np.testing.assert_allclose(np.sort(sparse.linkage_matrix_[:, 2]), np.sort(Z[:, 2]), atol=1e-9)


@pytest.mark.parametrize("linkage_name", ["ward", "average", "complete", "single"])
def test_planted_clusters_recovered_on_knn_graph(linkage_name, caplog):
    Xp, y = planted_clusters(1200, 32, 24, spread=0.5, seed=1, imbalance=0.5)
    with caplog.at_level(logging.INFO, logger="clustering.agglomerative"):
        model = Agglomerative(24, linkage=linkage_name, memory_budget_gb=1e-4, n_neighbors=10).fit(Xp)
    assert model.path_ == ("mst" if linkage_name == "single" else "knn-graph")
    assert "path" in caplog.text
    assert adjusted_rand_score(y, model.labels_) == pytest.approx(1.0)
    assert model.n_components_ >= 1


def test_budget_picks_the_path():
    n, d = 60, 12
    need = dense_memory_bytes(n, d, "average")
    assert need == n * (n - 1) // 2 * 17 + n * d * 8 + 3 * n * n * 8
    assert dense_memory_bytes(n, d, "single") < need
    assert Agglomerative(linkage="average", memory_budget_gb=need / 1e9).fit(X).path_ == "dense"
    assert Agglomerative(linkage="average", memory_budget_gb=need / 1e9 * 0.99).fit(X).path_ == "knn-graph"
    assert Agglomerative(linkage="single", memory_budget_gb=1e-6).fit(X).path_ == "mst"


def test_one_tree_many_cuts():
    model = Agglomerative(linkage="average").fit(X)
    coarse, fine = model.cut(5), model.cut(20)
    assert len(np.unique(coarse)) == 5 and len(np.unique(fine)) == 20
    for c in np.unique(fine):  # nested: each fine cluster lies inside one coarse cluster
        assert len(np.unique(coarse[fine == c])) == 1
    t = float(np.median(model.linkage_matrix_[:, 2]))
    expected = relabel_by_size(fcluster(model.linkage_matrix_, t, "distance"))
    np.testing.assert_array_equal(model.cut(distance_threshold=t), expected)
    np.testing.assert_array_equal(cut_at_distance(model.linkage_matrix_, t), expected)
    assert np.bincount(model.cut(5)).tolist() == sorted(np.bincount(model.cut(5)).tolist(), reverse=True)
    assert Agglomerative(n_clusters=4).fit(X).labels_.max() == 3
    assert len(np.unique(Agglomerative(distance_threshold=t, linkage="average").fit(X).labels_)) == len(np.unique(expected))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"linkage": "ward", "metric": "cosine"}, "ward linkage is only defined for metric='euclidean'"),
        ({"linkage": "centroid", "metric": "hamming"}, "only defined for metric='euclidean'"),
        ({"linkage": "median"}, "valid linkages: single, complete, average, centroid, ward"),
        ({"metric": "manhattan"}, "valid metrics: euclidean, cosine, hamming"),
        ({"n_clusters": 61}, "61 clusters but there are only 60 points"),
        ({"n_clusters": 0}, "integers >= 1"),
        ({"linkage": "centroid", "memory_budget_gb": 1e-6}, "centroid linkage needs the dense path"),
        ({"path": "sparse"}, "valid paths: auto, dense, knn-graph, mst"),
        ({"linkage": "ward", "path": "mst"}, "does not apply to ward"),
        ({"n_clusters": 3, "distance_threshold": 1.0}, "not both"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Agglomerative(**kwargs).fit(X)


def test_bad_features_and_unfitted():
    with pytest.raises(RuntimeError, match="call fit"):
        Agglomerative().cut(3)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        Agglomerative().fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        Agglomerative().fit(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="need metric='hamming'"):
        Agglomerative(binary=True, linkage="average", metric="cosine").fit(np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="exactly one"):
        Agglomerative().fit(X).cut()
