"""Neighbour graphs and tree cuts: exact distances, symmetry, duplicates, bridging, condensed order."""

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist, squareform

from clustering.graphs import condensed_distances, connect_components, knn_graph, range_graph, restrict
from clustering.spaces import prepare
from clustering.trees import cut_to_clusters, linkage_matrix, mst_single_linkage, relabel_by_size

RNG = np.random.default_rng(3)
X = RNG.standard_normal((50, 6)).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_condensed_distances_match_pdist(metric):
    np.testing.assert_allclose(condensed_distances(prepare(X, metric), metric), pdist(X.astype(np.float64), metric), atol=1e-6)


def test_knn_graph_is_symmetric_exact_and_keeps_duplicates():
    Xd = np.vstack([X, X[:3]])  # rows 50..52 duplicate rows 0..2
    g = knn_graph(prepare(Xd, "euclidean"), 4, "euclidean")
    assert (g != g.T).nnz == 0
    assert g.diagonal().sum() == 0 and not np.any(g.tocoo().row == g.tocoo().col)
    full = squareform(pdist(Xd.astype(np.float64)))
    coo = g.tocoo()
    np.testing.assert_allclose(coo.data, full[coo.row, coo.col], atol=1e-6)
    assert g[0, 50] == 0 and 50 in g.indices[g.indptr[0] : g.indptr[1]]  # explicit zero edge kept
    assert all(np.diff(g.indptr) >= 4)


def test_range_graph_is_exactly_the_pairs_within_radius():
    full = squareform(pdist(X.astype(np.float64)))
    r = float(np.quantile(full[full > 0], 0.1))
    g = range_graph(prepare(X, "euclidean"), r, "euclidean")
    expected = (full <= r) & ~np.eye(len(X), dtype=bool)
    np.testing.assert_array_equal(g.toarray() > 0, expected)
    np.testing.assert_array_equal(restrict(g, r / 2).toarray() > 0, expected & (full <= r / 2))


def test_connect_components_bridges_everything():
    far = np.vstack([X, X + 100, X - 100]).astype(np.float32)
    Xp = prepare(far, "euclidean")
    g = knn_graph(Xp, 3, "euclidean")
    assert connected_components(g)[0] >= 3
    joined, before = connect_components(Xp, g, "euclidean")
    assert before == connected_components(g)[0] and connected_components(joined)[0] == 1
    assert (joined != joined.T).nnz == 0
    coo = joined.tocoo()
    np.testing.assert_allclose(coo.data, np.linalg.norm(far[coo.row] - far[coo.col], axis=1), rtol=1e-5)


def test_mst_single_linkage_with_duplicates_and_cuts():
    Xd = np.vstack([X[:10], X[:2]])
    g = knn_graph(prepare(Xd, "euclidean"), 11, "euclidean")
    Z = mst_single_linkage(g)
    assert Z.shape == (11, 4) and Z[-1, 3] == 12 and (Z[:2, 2] == 0).all()
    assert len(np.unique(cut_to_clusters(Z, 10))) == 10
    with pytest.raises(ValueError, match="between 1 and the number of points"):
        cut_to_clusters(Z, 13)


def test_linkage_matrix_and_relabel():
    Z = linkage_matrix([[0, 1], [2, 3]], [1.0, 2.0], 3)
    np.testing.assert_array_equal(Z[:, 3], [2, 3])
    np.testing.assert_array_equal(relabel_by_size([5, 7, 7, -1, 5, 7]), [1, 0, 0, -1, 1, 0])
