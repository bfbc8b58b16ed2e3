"""Linkage trees (scipy's ``Z`` format) from sparse graphs, and flat cuts of any tree.

``Z`` has one row per merge: ``[node_a, node_b, distance, size]``; leaves are ``0..n-1`` and the
merge in row ``t`` creates node ``n + t``. A tree is built once and cut many times.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster
from scipy.sparse.csgraph import minimum_spanning_tree
from tqdm.auto import tqdm


def linkage_matrix(children: np.ndarray, distances: np.ndarray, n: int) -> np.ndarray:
    """scipy ``Z`` from merge pairs and heights (sizes computed here)."""
    children = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    sizes = np.ones(2 * n - 1, dtype=np.int64)
    for t, (a, b) in enumerate(children):
        sizes[n + t] = sizes[a] + sizes[b]
    Z = np.empty((len(children), 4), dtype=np.float64)
    Z[:, :2] = children
    Z[:, 2] = distances
    Z[:, 3] = sizes[n:]
    return Z


def _merge_edges(n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Single-linkage ``Z`` from spanning-tree edges, merged in order of weight (union-find)."""
    order = np.argsort(w, kind="stable").tolist()
    parent = list(range(n))
    node = list(range(n))  # tree node currently representing each union-find root
    a, b, w = a.tolist(), b.tolist(), np.asarray(w).tolist()
    children, heights = [], []

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in order:
        ra, rb = find(a[e]), find(b[e])
        if ra == rb:
            continue
        children.append((node[ra], node[rb]))
        heights.append(w[e])
        parent[rb] = ra
        node[ra] = n + len(children) - 1
    if len(children) != n - 1:
        raise ValueError(f"graph is not connected: {n - 1 - len(children)} merges missing")
    return linkage_matrix(np.array(children), np.array(heights), n)


def mst_single_linkage(graph: sparse.csr_array) -> np.ndarray:
    """Single linkage as the minimum spanning tree of a connected distance graph.

    Exact (equal to scipy's single linkage) when the graph contains the full MST, e.g. a
    complete graph; on a kNN graph, exact below the distances the graph covers.
    """
    n = graph.shape[0]
    g = graph.astype(np.float64, copy=True)
    tiny = np.nextafter(0.0, 1.0)
    g.data[g.data == 0] = tiny  # csgraph drops zero weights: keep duplicates as edges
    mst = minimum_spanning_tree(g).tocoo()
    w = mst.data.copy()
    w[w == tiny] = 0.0
    return _merge_edges(n, mst.row.astype(np.int64), mst.col.astype(np.int64), w)


def graph_linkage(graph: sparse.csr_array, linkage: str) -> np.ndarray:
    """Average or complete linkage restricted to the edges of a connected distance graph.

    Two clusters may merge only if some edge joins them; their distance is the mean (average)
    or the maximum (complete) of the distances on the edges between them. On a complete graph
    this is exactly UPGMA / complete linkage; on a kNN graph, an approximation that never
    needs more memory than the graph.

    A merged cluster keeps the slot (neighbour dict) of the child with more neighbours, so each
    merge only touches the smaller child's neighbours; heap entries are checked against the
    current distance when popped (lazy deletion).
    """
    if linkage not in ("average", "complete"):
        raise ValueError(f"graph_linkage supports 'average' and 'complete', got {linkage!r}")
    n = graph.shape[0]
    average = linkage == "average"
    coo = sparse.triu(graph, k=1).tocoo()
    nbrs: list = [{} for _ in range(n)]
    for i, j, d in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        v = (d, 1) if average else d
        nbrs[i][j] = v
        nbrs[j][i] = v
    heap = list(zip(coo.data.tolist(), coo.row.tolist(), coo.col.tolist(), strict=True))
    heapify(heap)
    node = list(range(n))  # tree node id currently held by each slot
    children, heights = [], []
    bar = tqdm(total=n - 1, desc=f"{linkage} linkage", unit="merge", leave=False, disable=n < 20000)
    for t in range(n - 1):
        while heap:
            d, i, j = heappop(heap)
            ni = nbrs[i]
            if ni is not None and nbrs[j] is not None and j in ni:
                v = ni[j]
                if (v[0] / v[1] if average else v) == d:
                    break
        else:
            bar.close()
            raise ValueError(f"graph is not connected: {n - 1 - t} merges missing")
        if len(nbrs[i]) < len(nbrs[j]):
            i, j = j, i
        big, small = nbrs[i], nbrs[j]
        del big[j], small[i]
        for x, v in small.items():
            nx = nbrs[x]
            del nx[j]
            u = big.get(x)
            if u is not None:
                v = (u[0] + v[0], u[1] + v[1]) if average else max(u, v)
            big[x] = v
            nx[i] = v
            heappush(heap, (v[0] / v[1] if average else v, i, x))
        nbrs[j] = None
        children.append((node[i], node[j]))
        heights.append(d)
        node[i] = n + t
        if t % 1000 == 999:
            bar.update(1000)
    bar.close()
    return linkage_matrix(np.array(children).reshape(-1, 2), np.array(heights), n)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..c-1 by decreasing cluster size (ties: first occurrence); -1 stays -1."""
    labels = np.asarray(labels)
    out = np.full(len(labels), -1, dtype=np.int64)
    valid = labels != -1
    if not valid.any():
        return out
    uniq, first, inverse, counts = np.unique(labels[valid], return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    out[valid] = rank[inverse]
    return out


def cut_to_clusters(Z: np.ndarray, n_clusters: int) -> np.ndarray:
    """Exactly `n_clusters` flat clusters: the first ``n - n_clusters`` merges applied, any tree."""
    n = len(Z) + 1
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and the number of points ({n}), got {n_clusters}")
    parent = np.arange(2 * n - 1)
    m = n - n_clusters
    kids = Z[:m, :2].astype(np.int64)
    parent[kids[:, 0]] = np.arange(n, n + m)
    parent[kids[:, 1]] = np.arange(n, n + m)
    while True:  # pointer jumping: O(log depth) vectorised passes
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            break
        parent = jumped
    return relabel_by_size(parent[:n])


def cut_at_distance(Z: np.ndarray, threshold: float) -> np.ndarray:
    """Flat clusters whose cophenetic distance is at most `threshold` (scipy ``fcluster`` 'distance')."""
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"distance threshold must be a finite number >= 0, got {threshold}")
    return relabel_by_size(fcluster(Z, t=threshold, criterion="distance"))
