# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Search region descriptors with any faiss index and aggregate per image (best region pair).

Each database image owns several region rows, and so may each query (`extractor.regions`). The
distance of (query image, database image) is the smallest distance over their region pairs (max
similarity); results are per image, so `fast_search.metrics` counts them like any global search.

`pairs="whole"` (the default) compares only pairs where one side is a whole image: the query's
regions against whole database images (a pasted original is one region of the query) and the whole
query against the database's regions (a crop is one region of the original). `pairs="all"` also
compares region with region, which finds more and, measured, also lets unrelated images meet through
look-alike parts (docs/partial.md).

Exactness: a query row searches ``k * r_db`` database rows (r_db: most rows of one database image
it may meet), which always holds its k nearest database images; the k best images of the query are
among the union of its rows' lists, since an image's best pair is found in the list of that pair's
query row. Ties are broken by database row, so results do not depend on the order of regions.
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


def whole_rows(boxes: np.ndarray) -> np.ndarray:
    """Rows whose (fractional) box is the whole image."""
    b = np.asarray(boxes, np.float64)
    return (np.abs(b - [0, 0, 1, 1]) < 1e-6).all(axis=1)


@dataclass
class RegionIndex:
    """A faiss `factory` index over database regions; `search` returns per-image results (max over regions).

    `pairs`: "whole" (a whole image on one side of every pair) or "all" (every region pair).
    """

    factory: str = "Flat"
    metric: str = "cosine"
    binary: bool = False
    pairs: str = "whole"

    def fit(self, features: np.ndarray, owner: np.ndarray, whole: np.ndarray | None = None) -> RegionIndex:
        """Index (T, dim) region `features` of database image rows `owner`; `whole` marks whole-image rows."""
        if self.pairs not in ("whole", "all"):
            raise ValueError(f"pairs must be 'whole' or 'all', got {self.pairs!r}")
        owner = np.asarray(owner, np.int64)
        if len(owner) != len(features):
            raise ValueError(f"{len(features)} region rows but {len(owner)} owners")
        self.owner_ = owner
        self.n_images_ = int(owner.max()) + 1 if len(owner) else 0
        self.per_image_ = int(np.bincount(owner).max()) if len(owner) else 0
        self.index_ = FaissIndex(self.factory, self.metric, self.binary).fit(features).add(features)
        self.whole_index_ = None
        if self.pairs == "whole":
            whole = self._check_whole(whole, owner)
            self.whole_owner_ = owner[whole]
            if len(np.unique(self.whole_owner_)) != len(self.whole_owner_):
                raise ValueError("pairs='whole' needs exactly one whole-image row per database image")
            xw = np.asarray(features)[whole]
            self.whole_index_ = FaissIndex(self.factory, self.metric, self.binary).fit(xw).add(xw)
        return self

    @staticmethod
    def _check_whole(whole: np.ndarray | None, owner: np.ndarray) -> np.ndarray:
        if whole is None:
            raise ValueError("pairs='whole' needs `whole`: which rows describe the whole image (see whole_rows)")
        whole = np.asarray(whole, bool)
        if whole.shape != owner.shape:
            raise ValueError(f"whole has shape {whole.shape}, expected {owner.shape}")
        return whole

    @property
    def nbytes(self) -> int:
        extra = self.whole_index_.memory_bytes() if self.whole_index_ is not None else 0
        return self.index_.memory_bytes() + extra

    def search(self, features: np.ndarray, owner: np.ndarray, n_queries: int, k: int,
               whole: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per query image the k nearest database images (distance of their best allowed region pair)."""
        features, owner = np.asarray(features), np.asarray(owner, np.int64)
        width = min(k * self.per_image_, len(self.owner_))
        if self.pairs == "all":
            D, I = self.index_.search(features, width)
            return aggregate_max(D, I, owner, self.owner_, n_queries, k)
        whole = self._check_whole(whole, owner)
        parts = []
        if whole.any():  # whole queries meet every database row (whole images and their regions)
            D, I = self.index_.search(features[whole], width)
            parts.append((D, self.owner_[np.where(I >= 0, I, 0)], I >= 0, owner[whole]))
        if (~whole).any():  # query regions meet whole database images only
            D, I = self.whole_index_.search(features[~whole], min(k, len(self.whole_owner_)))
            parts.append((D, self.whole_owner_[np.where(I >= 0, I, 0)], I >= 0, owner[~whole]))
        n = max(p[0].shape[1] for p in parts)

        def pad(x: np.ndarray, fill) -> np.ndarray:
            return np.hstack([x, np.full((len(x), n - x.shape[1]), fill, x.dtype)])

        D = np.vstack([pad(d, np.inf) for d, *_ in parts])
        I = np.vstack([pad(np.where(ok, img, -1), -1) for _, img, ok, _ in parts])
        rows = np.concatenate([o for *_, o in parts])
        return aggregate_max(D, I, rows, np.arange(self.n_images_), n_queries, k)
