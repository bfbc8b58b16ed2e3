# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Exact k-NN over a database streamed in blocks, with a running top-k heap (bounded memory).

As in faiss contrib's ``knn_ground_truth``: each block is searched exhaustively, its ids are
shifted by the block's offset and merged into the running (nq, k) best; peak memory is one block
plus that, so databases larger than memory (a store's chunks, a sharded store) are fine. The merge
keeps the k smallest (distance, id) pairs, as faiss's flat search does, so ties give the same ids
as ``Flat`` whatever the block size; rows come out in `canonical_order`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import faiss
import numpy as np
from tqdm.auto import tqdm

from fast_search.index import METRICS, check_finite, check_metric, prepare, to_distance


def array_blocks(x: np.ndarray, block_size: int = 65536) -> Iterator[tuple[None, np.ndarray]]:
    """(None, rows) blocks of an in-memory array, the same shape as `extractor.store.iter_chunks` yields."""
    for start in range(0, len(x), block_size):
        yield None, x[start : start + block_size]


def canonical_order(D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (distance, id), ``-1`` results last: one order for tied results everywhere."""
    key_i = np.where(I < 0, np.iinfo(np.int64).max, I)
    order = np.lexsort((key_i, D), axis=-1)
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def _merge(best, D: np.ndarray, I: np.ndarray, k: int, keep_max: bool):
    """The k best (score, id) pairs of `best` and a block's (D, I); ties keep the smaller id."""
    if best is not None:
        D, I = np.concatenate([best[0], D], axis=1), np.concatenate([best[1], I], axis=1)
    key_d = -D if keep_max else D
    key_i = np.where(I < 0, np.iinfo(np.int64).max, I)
    order = np.lexsort((key_i, key_d), axis=-1)[:, :k]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


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
    best = None
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
        I = np.where(I >= 0, I + offset, -1)
        best = _merge(best, D.astype(np.float32), I.astype(np.int64), k, keep_max)
        elapsed += time.perf_counter() - start
        offset += len(xb)
        n_blocks += 1
        bar.update(len(xb))
    bar.close()
    if offset < k:
        raise ValueError(f"k={k} is larger than the database ({offset} vectors)")
    D, I = canonical_order(to_distance(best[0], metric), best[1])
    return D, I, {"n": offset, "blocks": n_blocks, "search_time_s": elapsed}
