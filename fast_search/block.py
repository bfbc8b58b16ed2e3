# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Exact k-NN over a database streamed in blocks, with a running top-k heap (bounded memory).

As in faiss contrib's ``knn_ground_truth``: each block is searched exhaustively, its ids are
shifted by the block's offset and merged into a `faiss.ResultHeap`; peak memory is one block plus
the (nq, k) heap, so databases larger than memory (a store's chunks, a sharded store) are fine.
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
    # cosine and IP keep the largest scores; faiss heaps keep floats, so Hamming counts are cast
    heap = faiss.ResultHeap(len(xq), k, keep_max=METRICS[metric] == faiss.METRIC_INNER_PRODUCT)
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
        heap.add_result(D.astype(np.float32), I)
        elapsed += time.perf_counter() - start
        offset += len(xb)
        n_blocks += 1
        bar.update(len(xb))
    bar.close()
    if offset < k:
        raise ValueError(f"k={k} is larger than the database ({offset} vectors)")
    heap.finalize()
    D = heap.D.copy()
    if metric == "hamming":
        D = np.rint(D)
    return to_distance(D, metric), heap.I.copy(), {"n": offset, "blocks": n_blocks, "search_time_s": elapsed}
