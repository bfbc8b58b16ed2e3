# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Exact k-NN over a database streamed in blocks, with a running top-k heap (bounded memory).

As in faiss contrib's ``knn_ground_truth``: each block is searched exhaustively, its ids are
shifted by the block's offset and merged into the running (nq, k) best; peak memory is one block
plus that, so databases larger than memory (a store's chunks, a sharded store) are fine. The merge
keeps the k smallest (distance, id) pairs, as faiss's flat search does (one uint64 key per result,
selected with `np.partition`: about as fast as `faiss.ResultHeap`, which breaks ties differently),
so ties give the same ids as ``Flat`` whatever the block size; rows come out in `canonical_order`
(distance, then id), as `FaissIndex.search` returns them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import faiss
import numpy as np
from tqdm.auto import tqdm

from fast_search.index import METRICS, canonical_order, check_finite, check_metric, prepare, to_distance


def array_blocks(x: np.ndarray, block_size: int = 65536) -> Iterator[tuple[None, np.ndarray]]:
    """(None, rows) blocks of an in-memory array, the same shape as `extractor.store.iter_chunks` yields."""
    for start in range(0, len(x), block_size):
        yield None, x[start : start + block_size]


def _keys(D: np.ndarray, I: np.ndarray, keep_max: bool) -> np.ndarray:
    """One uint64 per result ordering by (distance, id): float32 bits made monotonic, then the id."""
    d = (-D if keep_max else D).astype(np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    bits = d.view(np.uint32)
    bits = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    ids = np.where(I < 0, np.uint64(0xFFFFFFFF), I.astype(np.uint64))
    return (bits.astype(np.uint64) << np.uint64(32)) | ids


def _unkeys(keys: np.ndarray, keep_max: bool) -> tuple[np.ndarray, np.ndarray]:
    bits = (keys >> np.uint64(32)).astype(np.uint32)
    bits = np.where(bits & np.uint32(0x80000000), bits & np.uint32(0x7FFFFFFF), ~bits)
    d = bits.view(np.float32)
    ids = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return (-d if keep_max else d), np.where(ids == 0xFFFFFFFF, -1, ids)


def _search_block(xq: np.ndarray, xb: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw faiss scores of the k best rows of one block (k <= len(xb)), without copying the block."""
    if metric == "hamming":
        return faiss.knn_hamming(xq, xb, k)
    return faiss.knn(xq, xb, k, metric=METRICS[metric])


def block_search(
    xq: np.ndarray,
    blocks: Iterable[tuple[object, np.ndarray]],
    k: int,
    metric: str = "L2",
    total: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Exact (D, I) of `xq` against the concatenation of `blocks` ((ids, features) pairs).

    D are distances (smaller is closer, see `fast_search.index`), I positions in the concatenated
    database. Block features are checked for NaN/inf before they are searched (the error names the
    ids). Returns also ``{"n": rows seen, "blocks": count, "search_time_s": seconds}``.
    """
    binary = metric == "hamming"
    check_metric(metric, binary)
    xq = prepare(xq, metric)
    keep_max = METRICS[metric] == faiss.METRIC_INNER_PRODUCT  # cosine and IP keep the largest scores
    best = None  # (nq, <= k) uint64 keys of the best results so far, see _keys
    offset, n_blocks, elapsed = 0, 0, 0.0
    bar = tqdm(total=total, desc=f"exact {metric} search", unit="vec", disable=not progress)
    for ids, block in blocks:
        if len(block) == 0:
            continue
        if ids is not None:
            check_finite(np.asarray(block), ids, "database block")
        xb = prepare(block, metric)
        if xb.shape[1] != xq.shape[1]:
            raise ValueError(
                f"database block of width {xb.shape[1]} does not match queries of width {xq.shape[1]}"
            )
        start = time.perf_counter()
        D, I = _search_block(xq, xb, min(k, len(xb)), metric)
        if offset + len(xb) >= 0xFFFFFFFF:
            raise ValueError(
                "block_search keys ids on 32 bits: the database must hold fewer than 4,294,967,295 rows"
            )
        I = np.where(I >= 0, I + offset, -1)
        keys = _keys(D, I, keep_max)
        if best is not None:
            keys = np.concatenate([best, keys], axis=1)
        best = np.partition(keys, k - 1, axis=1)[:, :k] if keys.shape[1] > k else keys
        elapsed += time.perf_counter() - start
        offset += len(xb)
        n_blocks += 1
        bar.update(len(xb))
    bar.close()
    if offset < k:
        raise ValueError(f"k={k} is larger than the database ({offset} vectors)")
    D, I = _unkeys(np.sort(best, axis=1), keep_max)
    D, I = canonical_order(to_distance(D, metric), I)
    return D, I, {"n": offset, "blocks": n_blocks, "search_time_s": elapsed}
