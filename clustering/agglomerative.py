"""Agglomerative clustering that picks a dense or a sparse path to fit a memory budget.

Paths (``path_`` after `fit`):

- ``"dense"``: the exact condensed distance matrix (float64, BLAS blocks) and scipy ``linkage``;
  chosen only when `dense_memory_bytes` fits ``memory_budget_gb``. Every linkage.
- ``"mst"`` (single linkage): the minimum spanning tree of a faiss kNN graph (scipy csgraph).
- ``"knn-graph"``: ward with sklearn's ``ward_tree(connectivity=kNN graph)``; average and
  complete by merging along graph edges (`clustering.trees.graph_linkage`). Centroid linkage
  has no sparse form: it needs the dense path.

Graphs are bridged into one connected component first, so the tree always reaches one cluster
and can be cut to any number of clusters.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy.cluster.hierarchy import linkage as scipy_linkage
from sklearn.cluster import ward_tree

from clustering.graphs import condensed_distances, connect_components, knn_graph
from clustering.spaces import check_linkage, prepare
from clustering.trees import (
    cut_at_distance,
    cut_to_clusters,
    graph_linkage,
    linkage_matrix,
    mst_single_linkage,
)

logger = logging.getLogger(__name__)

PATHS = ("auto", "dense", "knn-graph", "mst")
BLOCK_ROWS = 1024


def dense_memory_bytes(n_samples: int, n_features: int, linkage: str = "average") -> int:
    """Peak bytes of the dense path: condensed float64 distances, plus scipy's working copy.

    ``n(n-1)/2 * 8`` bytes for the matrix; scipy copies it for every linkage but single, and
    checks finiteness (one byte per pair); the float64 features and a few row blocks live while
    distances are built.
    """
    pairs = n_samples * (n_samples - 1) // 2
    copies = 1 if linkage == "single" else 2
    blocks = 3 * min(BLOCK_ROWS, n_samples) * n_samples * 8  # distance block temporaries
    return pairs * (8 * copies + 1) + n_samples * n_features * 8 + blocks


def check_n_clusters(n_clusters, n_samples: int | None = None) -> list[int]:
    """`n_clusters` (an int or a list of ints) as a list, each between 1 and `n_samples`."""
    values = [n_clusters] if np.isscalar(n_clusters) else list(n_clusters)
    if not values:
        raise ValueError("n_clusters is empty: give at least one number of clusters")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"n_clusters must hold integers >= 1, got {v!r}")
        if n_samples is not None and v > n_samples:
            raise ValueError(f"asked for {v} clusters but there are only {n_samples} points")
    return [int(v) for v in values]


class Agglomerative:
    """Hierarchical clustering: build the tree once in `fit`, then `cut` it as many times as needed.

    Parameters are stored as given; `fit` validates them. ``n_clusters`` or
    ``distance_threshold`` (at most one) sets ``labels_`` at fit time.
    """

    def __init__(
        self,
        n_clusters: int | None = None,
        *,
        linkage: str = "ward",
        metric: str = "euclidean",
        distance_threshold: float | None = None,
        memory_budget_gb: float = 4.0,
        path: str = "auto",
        n_neighbors: int = 15,
        index_factory: str = "Flat",
        binary: bool | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.metric = metric
        self.distance_threshold = distance_threshold
        self.memory_budget_gb = memory_budget_gb
        self.path = path
        self.n_neighbors = n_neighbors
        self.index_factory = index_factory
        self.binary = binary

    def _validate(self) -> None:
        check_linkage(self.linkage, self.metric)
        if self.path not in PATHS:
            raise ValueError(f"unknown path {self.path!r}; valid paths: {', '.join(PATHS)}")
        if self.n_clusters is not None and self.distance_threshold is not None:
            raise ValueError("give n_clusters or distance_threshold, not both")
        if self.n_clusters is not None:
            check_n_clusters(self.n_clusters)
        if not self.memory_budget_gb or self.memory_budget_gb <= 0:
            raise ValueError(f"memory_budget_gb must be > 0, got {self.memory_budget_gb}")

    def _choose_path(self, n: int, d: int) -> str:
        if self.n_clusters is not None:
            check_n_clusters(self.n_clusters, n)
        needed = dense_memory_bytes(n, d, self.linkage)
        self.dense_bytes_ = needed
        fits = needed / 1e9 <= self.memory_budget_gb
        sparse_path = "mst" if self.linkage == "single" else "knn-graph"
        path = self.path
        if path == "auto":
            path = "dense" if fits else sparse_path
        elif path in ("mst", "knn-graph") and path != sparse_path:
            raise ValueError(f"path {path!r} does not apply to {self.linkage} linkage; use {sparse_path!r} or 'auto'")
        if path != "dense" and self.linkage == "centroid":
            raise ValueError(
                f"centroid linkage needs the dense path: {n} points need {needed / 1e9:.1f} GB "
                f"> memory_budget_gb={self.memory_budget_gb}; raise the budget or use ward/average"
            )
        return path

    def fit(self, X, y=None) -> Agglomerative:
        """Build the linkage tree of `X` (n_samples, n_features); set ``labels_`` if a cut was asked."""
        self._validate()
        Xp = prepare(X, self.metric, self.binary)
        n, d = Xp.shape
        self.path_ = self._choose_path(n, d)
        logger.info(
            "%s linkage, %s, %d points: %s path (dense would need %.2f GB, budget %.2f GB)",
            self.linkage, self.metric, n, self.path_, self.dense_bytes_ / 1e9, self.memory_budget_gb,
        )
        start = time.perf_counter()
        self.n_components_ = 1
        if n == 1:
            self.linkage_matrix_ = np.empty((0, 4))
        elif self.path_ == "dense":
            dists = condensed_distances(Xp, self.metric, block_rows=BLOCK_ROWS)
            self.linkage_matrix_ = scipy_linkage(dists, method=self.linkage)
            del dists
        else:
            graph = knn_graph(Xp, self.n_neighbors, self.metric, self.index_factory)
            graph, self.n_components_ = connect_components(Xp, graph, self.metric)
            self.n_edges_ = graph.nnz // 2
            self.graph_time_ = time.perf_counter() - start
            if self.linkage == "single":
                self.linkage_matrix_ = mst_single_linkage(graph)
            elif self.linkage == "ward":
                children, _, _, _, heights = ward_tree(Xp, connectivity=graph, return_distance=True)
                self.linkage_matrix_ = linkage_matrix(children, heights, n)
            else:
                self.linkage_matrix_ = graph_linkage(graph, self.linkage)
        self.fit_time_ = time.perf_counter() - start
        self.n_samples_ = n
        if self.n_clusters is not None or self.distance_threshold is not None:
            self.labels_ = self.cut(self.n_clusters, self.distance_threshold)
        return self

    def cut(self, n_clusters: int | None = None, distance_threshold: float | None = None) -> np.ndarray:
        """Flat labels (0 = largest cluster) for `n_clusters` clusters or a `distance_threshold`."""
        if not hasattr(self, "linkage_matrix_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")
        if (n_clusters is None) == (distance_threshold is None):
            raise ValueError("give exactly one of n_clusters or distance_threshold")
        if self.n_samples_ == 1:
            check_n_clusters(n_clusters if n_clusters is not None else 1, 1)
            return np.zeros(1, dtype=np.int64)
        if n_clusters is not None:
            return cut_to_clusters(self.linkage_matrix_, check_n_clusters(n_clusters, self.n_samples_)[0])
        return cut_at_distance(self.linkage_matrix_, float(distance_threshold))

    def __repr__(self) -> str:
        return (
            f"Agglomerative(n_clusters={self.n_clusters!r}, linkage={self.linkage!r}, metric={self.metric!r}, "
            f"distance_threshold={self.distance_threshold!r}, memory_budget_gb={self.memory_budget_gb!r}, "
            f"path={self.path!r}, n_neighbors={self.n_neighbors!r})"
        )
