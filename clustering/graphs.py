"""Neighbour graphs built with faiss, instead of an n x n distance matrix.

All functions take the *prepared* array of `clustering.spaces.prepare` and return symmetric
``scipy.sparse.csr_array`` graphs whose values are distances of the chosen metric. Edges are
found with a faiss L2 index, then their distances are recomputed exactly (row differences, not
the ``|a|^2 + |b|^2 - 2ab`` expansion), so near-duplicates keep accurate tiny distances.
Exact duplicates are kept as *explicit* zeros; no graph holds its diagonal.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from clustering.spaces import from_squared_l2, to_squared_l2
from helpers.blas import configure_faiss

configure_faiss(faiss)  # BLAS blocks large enough for BLAS speed (helpers/blas.py)

logger = logging.getLogger(__name__)

#: Bytes held per stored graph edge (both directions, int32 + int64 + float64 while building).
EDGE_BYTES = 48


def _progress(total: int, desc: str, unit: str):
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=total < 20000)


def edge_distances(Xp: np.ndarray, rows: np.ndarray, cols: np.ndarray, metric: str, chunk_bytes: int = 32 << 20) -> np.ndarray:
    """Exact `metric` distance of each pair (rows[e], cols[e]), computed in float64 blocks."""
    out = np.empty(len(rows), dtype=np.float64)
    step = max(1, chunk_bytes // (8 * Xp.shape[1]))
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        diff = Xp[rows[start:stop]].astype(np.float64) - Xp[cols[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return from_squared_l2(out, metric, n_bits=Xp.shape[1])


def symmetric_graph(rows: np.ndarray, cols: np.ndarray, dists: np.ndarray, n: int) -> sparse.csr_array:
    """Symmetric CSR graph from undirected pairs (each pair once, any orientation); explicit zeros kept."""
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    d = np.concatenate([dists, dists])
    order = np.lexsort((c, r))
    r, c, d = r[order], c[order], d[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return sparse.csr_array((d, c.astype(np.int64), indptr), shape=(n, n))


def _unique_pairs(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    keep = lo != hi
    keys = np.unique(lo[keep].astype(np.int64) * n + hi[keep])
    return keys // n, keys % n


def build_index(Xp: np.ndarray, index_factory: str = "Flat", train_size: int = 100_000, seed: int = 0) -> faiss.Index:
    """A faiss L2 index over `Xp` (exact ``Flat`` by default; e.g. ``HNSW32`` or ``PCA256,Flat`` to go faster)."""
    try:
        index = faiss.index_factory(Xp.shape[1], index_factory, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ValueError(f"faiss cannot build index_factory={index_factory!r}: {exc}") from None
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = Xp if len(Xp) <= train_size else Xp[np.sort(rng.choice(len(Xp), train_size, replace=False))]
        index.train(sample)
    index.add(Xp)
    return index


def knn_pairs(Xp: np.ndarray, n_neighbors: int, index_factory: str = "Flat", batch_size: int = 4096):
    """Each point's `n_neighbors` nearest other points: (indices, D2) of shape (n, k), -1 where missing."""
    n = len(Xp)
    k = min(n_neighbors, n - 1)
    index = build_index(Xp, index_factory)
    nbr = np.empty((n, k), dtype=np.int64)
    D2 = np.empty((n, k), dtype=np.float32)
    with _progress(n, "kNN graph", "pt") as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            d, i = index.search(Xp[start:stop], k + 1)
            own = i == np.arange(start, stop)[:, None]
            own[~own.any(axis=1), -1] = True  # self not returned (duplicates): drop the farthest instead
            keep = ~own
            nbr[start:stop] = i[keep].reshape(-1, k)
            D2[start:stop] = d[keep].reshape(-1, k)
            bar.update(stop - start)
    return nbr, D2


def knn_graph(Xp: np.ndarray, n_neighbors: int, metric: str, index_factory: str = "Flat") -> sparse.csr_array:
    """Symmetrised k-nearest-neighbour graph (an edge where either point is in the other's k nearest)."""
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    n = len(Xp)
    if n < 2:
        return sparse.csr_array((n, n), dtype=np.float64)
    nbr, _ = knn_pairs(Xp, n_neighbors, index_factory)
    rows = np.repeat(np.arange(n), nbr.shape[1])
    cols = nbr.ravel()
    valid = cols >= 0
    lo, hi = _unique_pairs(rows[valid], cols[valid], n)
    return symmetric_graph(lo, hi, edge_distances(Xp, lo, hi, metric), n)


def range_graph(
    Xp: np.ndarray, radius: float, metric: str, max_edges: int | None = None, batch_size: int = 2048
) -> sparse.csr_array:
    """Every pair within `radius` (a `metric` distance), from a faiss range search in query blocks.

    Raises ValueError as soon as more than `max_edges` pairs are found (the radius is too large
    for the memory budget), before the graph is built.
    """
    n = len(Xp)
    r2 = to_squared_l2(radius, metric, n_bits=Xp.shape[1])
    r2 = r2 * (1 + 1e-4) + 1e-6  # float32 search slack: exact distances filter below
    index = build_index(Xp, "Flat")
    rows, cols, total = [], [], 0
    with _progress(n, "range graph", "pt") as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            lims, _, i = index.range_search(Xp[start:stop], r2)
            q = np.repeat(np.arange(start, stop), np.diff(lims.astype(np.int64)))
            upper = i > q  # each undirected pair once; drops self
            rows.append(q[upper])
            cols.append(i[upper])
            total += int(upper.sum())
            if max_edges is not None and total > max_edges:
                raise ValueError(
                    f"radius {radius} gives more than {max_edges} neighbour pairs (after {stop} of {n} points): "
                    "over the memory budget; lower eps, raise memory_budget_gb, or use graph='knn'"
                )
            bar.update(stop - start)
    lo = np.concatenate(rows) if rows else np.empty(0, np.int64)
    hi = np.concatenate(cols) if cols else np.empty(0, np.int64)
    d = edge_distances(Xp, lo, hi, metric)
    keep = d <= radius
    return symmetric_graph(lo[keep], hi[keep], d[keep], n)


def restrict(graph: sparse.csr_array, radius: float) -> sparse.csr_array:
    """The subgraph of edges with distance <= `radius` (explicit zeros kept)."""
    coo = graph.tocoo()
    keep = coo.data <= radius
    n = graph.shape[0]
    upper = keep & (coo.row < coo.col)
    return symmetric_graph(coo.row[upper], coo.col[upper], coo.data[upper], n)


def _component_centroids(Xp: np.ndarray, labels: np.ndarray, n_comp: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_comp).astype(np.float32)
    member = sparse.csr_array((np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))), shape=(n_comp, len(labels)))
    return np.asarray(member @ Xp) / counts[:, None]


def connect_components(Xp: np.ndarray, graph: sparse.csr_array, metric: str) -> tuple[sparse.csr_array, int]:
    """Join the graph's connected components with a few bridging edges; returns (graph, n_components).

    Boruvka rounds over component centroids: each component is linked to the component of the
    nearest other centroid, through its member closest to that centroid and the member of the
    other component closest to it. An approximation of the cheapest bridge, cheap to compute.
    """
    n = graph.shape[0]
    n_comp, labels = connected_components(graph, directed=False)
    original = n_comp
    if n_comp > 1:
        logger.info("neighbour graph has %d connected components: bridging them", n_comp)
    new_rows, new_cols = [], []
    while n_comp > 1:
        cents = _component_centroids(Xp, labels, n_comp)
        index = faiss.IndexFlatL2(Xp.shape[1])
        index.add(cents)
        _, nb = index.search(cents, 2)
        members = np.split(np.argsort(labels, kind="stable"), np.cumsum(np.bincount(labels, minlength=n_comp))[:-1])
        target = np.where(nb[:, 0] == np.arange(n_comp), nb[:, 1], nb[:, 0])
        pa = np.array([m[np.argmin(((Xp[m] - cents[b]) ** 2).sum(axis=1))] for m, b in zip(members, target, strict=True)])
        pb = np.empty_like(pa)
        for b in np.unique(target):  # one pass over each target component's members
            asking = np.flatnonzero(target == b)
            mb = members[b]
            Xb = Xp[mb]
            d2 = np.einsum("ij,ij->i", Xb, Xb)[None, :] - 2.0 * (Xp[pa[asking]] @ Xb.T)
            pb[asking] = mb[np.argmin(d2, axis=1)]
        new_rows.extend(pa.tolist())
        new_cols.extend(pb.tolist())
        bridges = sparse.csr_array((np.ones(len(new_rows)), (new_rows, new_cols)), shape=(n, n))
        n_comp, labels = connected_components(graph + bridges, directed=False)
    if not new_rows:
        return graph, original
    lo, hi = _unique_pairs(np.asarray(new_rows), np.asarray(new_cols), n)
    coo = graph.tocoo()
    upper = coo.row < coo.col
    rows = np.concatenate([coo.row[upper], lo])
    cols = np.concatenate([coo.col[upper], hi])
    dists = np.concatenate([coo.data[upper], edge_distances(Xp, lo, hi, metric)])
    keys, first = np.unique(rows.astype(np.int64) * n + cols, return_index=True)
    return symmetric_graph(keys // n, keys % n, dists[first], n), original


def condensed_distances(Xp: np.ndarray, metric: str, block_rows: int = 1024) -> np.ndarray:
    """The condensed (scipy ``pdist`` order) float64 distance vector, by BLAS blocks in float64."""
    n = len(Xp)
    X = Xp.astype(np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    with tqdm(total=n, desc="dense distances", unit="row", leave=False, disable=n < 5000) as bar:
        for i0 in range(0, n, block_rows):
            i1 = min(i0 + block_rows, n)
            d2 = sq[i0:i1, None] + sq[None, i0:] - 2.0 * (X[i0:i1] @ X[i0:].T)
            d = from_squared_l2(d2, metric, n_bits=Xp.shape[1])
            for r in range(i0, i1):
                start = r * n - r * (r + 1) // 2
                out[start : start + n - r - 1] = d[r - i0, r - i0 + 1 :]
            bar.update(i1 - i0)
    return out
