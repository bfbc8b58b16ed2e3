# ruff: noqa: E741  (D, I) is faiss's fixed name for distances and ids
"""Every pair of rows within a distance of each other: exact range search, bounded memory.

Three exact paths, chosen by their cost on the data at hand:

- float features (cosine distance ``1 - cos``): faiss ``IndexFlatIP.range_search`` in blocks of
  queries, so memory holds one block's results, not an n x n matrix;
- binary features (Hamming bits), small or dense: faiss ``IndexBinaryFlat.range_search`` in blocks;
- binary features, many rows and a tight threshold: a multi-index Hamming join. The bits are cut
  into ``t + 1`` chunks; by the pigeonhole principle two codes within ``t`` bits agree exactly on
  at least one chunk, so only rows sharing a chunk value are compared (each pair is reported by
  the first chunk it agrees on, never twice). On random 64-bit codes at ``t = 4`` that is
  ~366 million comparisons for 1,000,000 rows instead of 5e11.

A faiss factory string (``index="BIVF1024"``) searches through that index instead: faster at
scale but approximate (pairs across lists are missed); the exact paths are the default.
Pairs come back as arrays ``(i, j, distance)`` with ``i < j``, sorted by (distance, i, j): the
same whatever the order of the rows (ties at the threshold count as matches).
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

#: Query rows per faiss range search call: bounds the memory of one call's candidates.
BLOCK = 4096
#: Below this many row pairs, brute force is cheaper than building the join.
BRUTE_FORCE_PAIRS = 50_000_000
#: A join comparison costs about this many faiss brute-force comparisons (numpy gathers vs SIMD popcount).
JOIN_COST = 25
#: Float tolerance: a cosine distance within this of the threshold counts as at the threshold.
EPS = 1e-6


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def _sorted_pairs(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((j, i, d))
    return i[order], j[order], d[order]


def normalise(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero), C-contiguous for faiss."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _range_blocks(index, queries: np.ndarray, radius: float, keep, progress: bool, what: str):
    """Run `index.range_search` over blocks of `queries`; `keep(rows, cols, dist)` filters each block."""
    out_i, out_j, out_d = [], [], []
    starts = range(0, len(queries), BLOCK)
    for start in tqdm(starts, desc=what, unit="block", disable=not progress or len(starts) < 4):
        lims, D, I = index.range_search(queries[start:start + BLOCK], radius)
        lims = lims.astype(np.int64)
        rows = np.repeat(np.arange(start, start + len(lims) - 1, dtype=np.int64), np.diff(lims))
        cols = I.astype(np.int64)
        mask = (cols > rows) & keep(D)
        out_i.append(rows[mask])
        out_j.append(cols[mask])
        out_d.append(D[mask].astype(np.float64))
    if not out_i:
        return _empty()
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def float_pairs(features: np.ndarray, max_distance: float, index=None, progress: bool = False):
    """Pairs of rows within cosine distance `max_distance` (exact with `index` None: IndexFlatIP)."""
    import faiss

    x = normalise(features)
    if index is None:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
    floor = 1.0 - max_distance - EPS  # faiss keeps inner products > radius
    i, j, sim = _range_blocks(index, x, floor - 1e-5, lambda D: D >= floor, progress, "pairs (range search)")
    d = np.maximum(1.0 - sim, 0.0)
    return _sorted_pairs(i, j, d)


def _words(codes: np.ndarray) -> np.ndarray:
    """uint8 codes (n, bytes) as uint64 words (n, ceil(bytes / 8)), zero-padded."""
    n, nbytes = codes.shape
    pad = (-nbytes) % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((n, pad), np.uint8)], axis=1)
    return np.ascontiguousarray(codes).view(np.uint64)


def hamming(words: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between rows a and b of `words` (uint64 codes)."""
    return np.bitwise_count(words[a] ^ words[b]).sum(axis=1).astype(np.int64)


def chunk_keys(codes: np.ndarray, chunks: int) -> np.ndarray:
    """(chunks, n) int64 keys: the value of each of `chunks` near-equal contiguous bit ranges of every code."""
    n, nbytes = codes.shape
    bits = nbytes * 8
    edges = np.linspace(0, bits, chunks + 1).round().astype(int)
    keys = np.empty((chunks, n), np.int64)
    step = 65536
    for start in range(0, n, step):
        unpacked = np.unpackbits(codes[start:start + step], axis=1)
        for c in range(chunks):
            part = unpacked[:, edges[c]:edges[c + 1]].astype(np.int64)
            keys[c, start:start + step] = part @ (np.int64(1) << np.arange(part.shape[1], dtype=np.int64))
    return keys


def join_candidates(keys: np.ndarray) -> int:
    """How many row pairs the Hamming join compares: pairs sharing a chunk value, summed over chunks."""
    total = 0
    for k in keys:
        _, counts = np.unique(k, return_counts=True)
        total += int((counts * (counts - 1) // 2).sum())
    return total


def hamming_join(codes: np.ndarray, max_distance: int, keys: np.ndarray | None = None, progress: bool = False):
    """Exact pairs within `max_distance` bits through the multi-index (pigeonhole) join."""
    t = int(max_distance)
    words = _words(codes)
    if keys is None:
        keys = chunk_keys(codes, t + 1)
    out_i, out_j, out_d = [], [], []
    n = len(codes)
    for c in tqdm(range(len(keys)), desc="pairs (Hamming join)", unit="chunk", disable=not progress):
        order = np.argsort(keys[c], kind="stable")
        sorted_keys = keys[c][order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        lengths = np.diff(np.r_[starts, n])
        run_end = np.repeat(starts + lengths, lengths)  # first position after each position's run
        active = np.flatnonzero(run_end - np.arange(n) > 1)
        sorted_words = words[order]  # neighbours in a run sit side by side: sequential reads, not gathers
        if sorted_words.shape[1] == 1:
            sorted_words = sorted_words[:, 0]
        d = 1
        while len(active):
            active = active[active + d < run_end[active]]
            if not len(active):
                break
            x = sorted_words[active] ^ sorted_words[active + d]
            dist = np.bitwise_count(x) if x.ndim == 1 else np.bitwise_count(x).sum(axis=1)
            hit = np.flatnonzero(dist <= t)
            a, b, dist = order[active[hit]], order[active[hit] + d], dist[hit].astype(np.int64)
            for earlier in range(c):  # reported by the first chunk the pair agrees on
                first = keys[earlier, a] != keys[earlier, b]
                a, b, dist = a[first], b[first], dist[first]
            out_i.append(np.minimum(a, b))
            out_j.append(np.maximum(a, b))
            out_d.append(dist.astype(np.float64))
            d += 1
    if not out_i:
        return _empty()
    return _sorted_pairs(np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d))


def binary_pairs(codes: np.ndarray, max_distance: float, index=None, progress: bool = False):
    """Pairs of rows within `max_distance` Hamming bits; exact with `index` None. Returns (i, j, d, how)."""
    import faiss

    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, nbytes = codes.shape
    t = math.floor(max_distance + EPS)
    if index is None and n * (n - 1) // 2 > BRUTE_FORCE_PAIRS and t + 1 <= nbytes * 8 // 4:
        keys = chunk_keys(codes, t + 1)
        if join_candidates(keys) * JOIN_COST < n * (n - 1) // 2:
            return (*hamming_join(codes, t, keys, progress), f"hamming-join{t + 1}")
    how = "BFlat"
    if index is None:
        index = faiss.IndexBinaryFlat(nbytes * 8)
        index.add(codes)
    else:
        how = "index"
    i, j, d = _range_blocks(index, codes, t + 1, lambda D: D <= t, progress, "pairs (range search)")
    return (*_sorted_pairs(i, j, d), how)


def brute_force_pairs(features: np.ndarray, binary: bool, max_distance: float):
    """Reference answer: every pair within `max_distance`, from the full n x n distance matrix (small n)."""
    if binary:
        words = _words(np.asarray(features, np.uint8))
        full = np.bitwise_count(words[:, None, :] ^ words[None, :, :]).sum(axis=2).astype(np.float64)
        within = full <= math.floor(max_distance + EPS)
    else:
        x = normalise(features)
        full = np.maximum(1.0 - (x.astype(np.float64) @ x.T.astype(np.float64)), 0.0)
        within = full <= max_distance + EPS
    i, j = np.nonzero(np.triu(within, 1))
    return i.astype(np.int64), j.astype(np.int64), full[i, j]
