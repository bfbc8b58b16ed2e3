# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Search region descriptors with any faiss index and aggregate per image (best region pair).

Each database image owns several region rows, and so may each query (`extractor.regions`). The
distance of (query image, database image) is the smallest distance over their region pairs (max
similarity); results are per image, so `fast_search.metrics` counts them like any global search.

Exactness: a query region searches ``k * r_db`` region neighbours (r_db: most regions of one database
image), which always holds its k nearest database images; the k best images of the query are among
the union of its regions' lists, since an image's best pair is found in the list of that pair's
query region. Ties are broken by database row, so results do not depend on the order of regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_search.index import FaissIndex


def aggregate_max(D: np.ndarray, I: np.ndarray, query_owner: np.ndarray, db_owner: np.ndarray,
                  n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Region k-NN (D, I) (rows: query regions, ids: database region rows) -> per-image (n_queries, k).

    Each (query image, database image) keeps its smallest region distance; rows are sorted by
    (distance, database image), padded with (inf, -1).
    """
    D = np.asarray(D, np.float64)
    I = np.asarray(I, np.int64)
    rows = np.repeat(np.asarray(query_owner, np.int64), D.shape[1])
    valid = I.ravel() >= 0
    q, d = rows[valid], np.asarray(db_owner, np.int64)[I.ravel()[valid]]
    dist = D.ravel()[valid]
    order = np.lexsort((dist, d, q))  # per (query, image): the smallest distance first
    q, d, dist = q[order], d[order], dist[order]
    first = np.ones(len(q), bool)
    first[1:] = (q[1:] != q[:-1]) | (d[1:] != d[:-1])
    q, d, dist = q[first], d[first], dist[first]
    order = np.lexsort((d, dist, q))  # per query: by distance, ties by image row
    q, d, dist = q[order], d[order], dist[order]
    starts = np.searchsorted(q, np.arange(n_queries))
    rank = np.arange(len(q)) - starts[q]
    keep = rank < k
    out_D = np.full((n_queries, k), np.inf, np.float32)
    out_I = np.full((n_queries, k), -1, np.int64)
    out_D[q[keep], rank[keep]] = dist[keep]
    out_I[q[keep], rank[keep]] = d[keep]
    return out_D, out_I


@dataclass
class RegionIndex:
    """A faiss `factory` index over database regions; `search` returns per-image results (max over regions)."""

    factory: str = "Flat"
    metric: str = "cosine"
    binary: bool = False

    def fit(self, features: np.ndarray, owner: np.ndarray) -> RegionIndex:
        """Train and fill the index with (T, dim) region `features` owned by database image rows `owner`."""
        owner = np.asarray(owner, np.int64)
        if len(owner) != len(features):
            raise ValueError(f"{len(features)} region rows but {len(owner)} owners")
        self.owner_ = owner
        self.n_images_ = int(owner.max()) + 1 if len(owner) else 0
        self.per_image_ = int(np.bincount(owner).max()) if len(owner) else 0
        self.index_ = FaissIndex(self.factory, self.metric, self.binary).fit(features).add(features)
        return self

    @property
    def nbytes(self) -> int:
        return self.index_.memory_bytes()

    def search(self, features: np.ndarray, owner: np.ndarray, n_queries: int, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """Per query image the k nearest database images (distance of their best region pair)."""
        width = min(k * self.per_image_, len(self.owner_))
        D, I = self.index_.search(np.asarray(features), width)
        return aggregate_max(D, I, owner, self.owner_, n_queries, k)
