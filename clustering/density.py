"""DBSCAN and HDBSCAN on a sparse faiss neighbour graph, and k-means with faiss.

sklearn's DBSCAN and HDBSCAN accept a precomputed *sparse* distance matrix; we give them a
graph from faiss (range search within ``eps``, or k nearest neighbours) instead of the dense
n x n matrix the seed built. ``path_`` says which graph was used.
"""

from __future__ import annotations

import logging
import time

import faiss
import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN, HDBSCAN

from clustering.graphs import EDGE_BYTES, connect_components, knn_graph, range_graph, restrict
from clustering.spaces import check_metric, prepare
from clustering.trees import relabel_by_size

logger = logging.getLogger(__name__)

GRAPHS = ("range", "knn")


def _with_diagonal(graph: sparse.csr_array) -> sparse.csr_array:
    """The graph plus explicit zero self-distances (a point is in its own neighbourhood)."""
    n = graph.shape[0]
    eye = sparse.csr_array((np.zeros(n), (np.arange(n), np.arange(n))), shape=(n, n))
    out = (graph + eye).tocsr()
    out.sort_indices()
    return out


class GraphDBSCAN:
    """DBSCAN on a neighbour graph; `relabel(eps)` re-runs it for any smaller eps without a new search.

    ``graph="range"`` finds every pair within ``eps`` (exact; refused when it would exceed
    ``memory_budget_gb``); ``graph="knn"`` keeps the pairs within ``eps`` among each point's
    ``n_neighbors`` nearest, which equals dense DBSCAN when no point has more than
    ``n_neighbors`` neighbours within ``eps``.
    """

    def __init__(
        self,
        eps: float = 0.5,
        *,
        min_samples: int = 5,
        metric: str = "euclidean",
        graph: str = "range",
        n_neighbors: int = 50,
        memory_budget_gb: float = 4.0,
        binary: bool | None = None,
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.graph = graph
        self.n_neighbors = n_neighbors
        self.memory_budget_gb = memory_budget_gb
        self.binary = binary

    def _validate(self) -> None:
        check_metric(self.metric)
        if self.graph not in GRAPHS:
            raise ValueError(f"unknown graph {self.graph!r}; valid graphs: {', '.join(GRAPHS)}")
        if not np.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps}")
        if int(self.min_samples) < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")

    def fit(self, X, y=None) -> GraphDBSCAN:
        """Build the graph for ``eps`` and cluster; noise points get label -1."""
        self._validate()
        Xp = prepare(X, self.metric, self.binary)
        start = time.perf_counter()
        if self.graph == "range":
            max_edges = int(self.memory_budget_gb * 1e9 / EDGE_BYTES)
            self.graph_ = range_graph(Xp, self.eps, self.metric, max_edges=max_edges)
            self.path_ = "range-graph"
        else:
            self.graph_ = restrict(knn_graph(Xp, self.n_neighbors, self.metric), self.eps)
            self.path_ = "knn-graph"
            full = np.diff(self.graph_.indptr) >= min(self.n_neighbors, len(Xp) - 1)
            if full.any():
                logger.warning(
                    "%d points have all %d neighbours within eps=%s: DBSCAN may differ from the dense result; "
                    "raise n_neighbors or use graph='range'", int(full.sum()), self.n_neighbors, self.eps,
                )
        logger.info("DBSCAN %s graph: %d points, %d pairs within eps=%s", self.graph, len(Xp), self.graph_.nnz // 2, self.eps)
        self.labels_ = self.relabel(self.eps)
        self.fit_time_ = time.perf_counter() - start
        return self

    def relabel(self, eps: float) -> np.ndarray:
        """DBSCAN labels for ``eps`` <= the fitted eps, from the stored graph (-1 = noise)."""
        if not hasattr(self, "graph_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")
        if eps > self.eps:
            raise ValueError(f"eps={eps} is larger than the fitted eps={self.eps}: fit with the largest eps first")
        graph = _with_diagonal(restrict(self.graph_, eps) if eps < self.eps else self.graph_)
        labels = DBSCAN(eps=eps, min_samples=int(self.min_samples), metric="precomputed").fit(graph).labels_
        return relabel_by_size(labels)


class GraphHDBSCAN:
    """HDBSCAN on a connected kNN graph (bridged between components); noise gets label -1."""

    def __init__(
        self,
        min_cluster_size: int = 5,
        *,
        min_samples: int | None = None,
        metric: str = "euclidean",
        n_neighbors: int | None = None,
        cluster_selection_epsilon: float = 0.0,
        binary: bool | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.metric = metric
        self.n_neighbors = n_neighbors
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.binary = binary

    def fit(self, X, y=None) -> GraphHDBSCAN:
        """Build the kNN graph (k >= min_samples) and run sklearn's HDBSCAN on it."""
        check_metric(self.metric)
        if int(self.min_cluster_size) < 2:
            raise ValueError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        Xp = prepare(X, self.metric, self.binary)
        n = len(Xp)
        min_samples = int(self.min_cluster_size if self.min_samples is None else self.min_samples)
        if not 1 <= min_samples <= n:
            raise ValueError(f"min_samples must be between 1 and the number of points ({n}), got {min_samples}")
        k = self.n_neighbors if self.n_neighbors is not None else max(2 * min_samples, 15)
        if k < min_samples:
            raise ValueError(f"n_neighbors={k} must be >= min_samples={min_samples}")
        start = time.perf_counter()
        graph, self.n_components_ = connect_components(Xp, knn_graph(Xp, k, self.metric), self.metric)
        tiny = np.finfo(np.float64).eps * max(1.0, float(graph.data.max(initial=0.0)))
        graph.data = np.maximum(graph.data, tiny)  # csgraph ignores zero weights: keep duplicates linked
        self.graph_ = graph
        self.path_ = "knn-graph"
        model = HDBSCAN(
            min_cluster_size=int(self.min_cluster_size),
            min_samples=min_samples,
            metric="precomputed",
            cluster_selection_epsilon=float(self.cluster_selection_epsilon),
            copy=True,
        )
        self.labels_ = relabel_by_size(model.fit(_with_diagonal(graph)).labels_)
        self.fit_time_ = time.perf_counter() - start
        return self


class FaissKMeans:
    """k-means with faiss (spherical for cosine; on unpacked bits for hamming)."""

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        metric: str = "euclidean",
        n_iter: int = 25,
        n_init: int = 1,
        random_state: int = 0,
        binary: bool | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.n_iter = n_iter
        self.n_init = n_init
        self.random_state = random_state
        self.binary = binary

    def fit(self, X, y=None) -> FaissKMeans:
        """Train the centroids and assign each point to its nearest one."""
        check_metric(self.metric)
        Xp = prepare(X, self.metric, self.binary)
        if not isinstance(self.n_clusters, (int, np.integer)) or not 1 <= self.n_clusters <= len(Xp):
            raise ValueError(f"n_clusters must be an integer between 1 and the number of points ({len(Xp)}), got {self.n_clusters!r}")
        start = time.perf_counter()
        km = faiss.Kmeans(
            Xp.shape[1], int(self.n_clusters), niter=int(self.n_iter), nredo=int(self.n_init),
            seed=int(self.random_state), spherical=self.metric == "cosine", verbose=False,
            max_points_per_centroid=max(256, len(Xp) // int(self.n_clusters) + 1),
        )  # fmt: skip
        km.train(Xp)
        d2, assign = km.index.search(Xp, 1)
        self.cluster_centers_ = km.centroids
        self.inertia_ = float(d2.sum())
        self.labels_ = assign.ravel().astype(np.int64)
        self.path_ = "faiss"
        self.fit_time_ = time.perf_counter() - start
        return self
