"""Graph DBSCAN == sklearn dense DBSCAN where the graph covers every eps-neighbour; HDBSCAN; k-means."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, HDBSCAN

from clustering.density import FaissKMeans, GraphDBSCAN, GraphHDBSCAN
from clustering.metrics import adjusted_rand_score
from clustering.synthetic import planted_clusters
from clustering.trees import relabel_by_size


def blobs_with_noise(seed=1):
    X, y = planted_clusters(400, 32, 8, spread=0.6, seed=seed, imbalance=0.5)
    noise = np.random.default_rng(seed).standard_normal((40, 32)).astype(np.float32) * 0.5
    X = np.vstack([X, noise, X[:5]])  # five exact duplicates: zero distances must count
    return X, np.concatenate([y, -np.ones(40, int), y[:5]])


@pytest.mark.parametrize("graph", ["range", "knn"])
@pytest.mark.parametrize("metric,eps", [("euclidean", 0.8), ("cosine", 0.3)])
def test_graph_dbscan_equals_dense(graph, metric, eps):
    X, _ = blobs_with_noise()
    dense = DBSCAN(eps=eps, min_samples=5, metric=metric).fit(X.astype(np.float64)).labels_
    model = GraphDBSCAN(eps, min_samples=5, metric=metric, graph=graph, n_neighbors=150).fit(X)
    assert model.path_ == f"{graph}-graph"
    assert len(np.unique(dense[dense >= 0])) >= 5 and (dense == -1).any()
    np.testing.assert_array_equal(model.labels_, relabel_by_size(dense))
    smaller = DBSCAN(eps=eps * 0.8, min_samples=5, metric=metric).fit(X.astype(np.float64)).labels_
    np.testing.assert_array_equal(model.relabel(eps * 0.8), relabel_by_size(smaller))


def test_hamming_dbscan_equals_dense():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, (6, 64))
    bits = np.repeat(base, 20, axis=0) ^ (rng.random((120, 64)) < 0.05)
    dense = DBSCAN(eps=0.12, min_samples=4, metric="hamming").fit(bits.astype(bool)).labels_
    model = GraphDBSCAN(0.12, min_samples=4, metric="hamming", binary=True).fit(np.packbits(bits.astype(np.uint8), axis=1))
    np.testing.assert_array_equal(model.labels_, relabel_by_size(dense))


def test_dbscan_errors():
    X, _ = blobs_with_noise()
    with pytest.raises(ValueError, match="over the memory budget"):
        GraphDBSCAN(100.0, memory_budget_gb=1e-6).fit(X)
    with pytest.raises(ValueError, match="valid graphs: range, knn"):
        GraphDBSCAN(0.5, graph="dense").fit(X)
    with pytest.raises(ValueError, match="eps must be"):
        GraphDBSCAN(-1.0).fit(X)
    with pytest.raises(ValueError, match="larger than the fitted eps"):
        GraphDBSCAN(0.5).fit(X).relabel(0.6)


def test_hdbscan_full_graph_equals_dense_and_planted_recovered():
    X, y = blobs_with_noise()
    dense = HDBSCAN(min_cluster_size=5, copy=True).fit(X.astype(np.float64)).labels_
    full = GraphHDBSCAN(5, n_neighbors=len(X) - 1).fit(X)
    np.testing.assert_array_equal(full.labels_, relabel_by_size(dense))
    knn = GraphHDBSCAN(5).fit(X)
    assert knn.path_ == "knn-graph"
    planted = y >= 0
    assert adjusted_rand_score(y[planted], knn.labels_[planted]) > 0.9
    with pytest.raises(ValueError, match="min_cluster_size must be >= 2"):
        GraphHDBSCAN(1).fit(X)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_faiss_kmeans_planted(metric):
    X, y = planted_clusters(600, 16, 6, spread=0.3, seed=2)
    model = FaissKMeans(6, metric=metric, n_init=3).fit(X)
    assert model.path_ == "faiss" and model.cluster_centers_.shape == (6, 16)
    assert adjusted_rand_score(y, model.labels_) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="between 1 and the number of points"):
        FaissKMeans(601).fit(X)
