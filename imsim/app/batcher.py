"""Batched embedding of concurrent queries: one worker runs the extractor on whatever requests are waiting.

Each request decodes and transforms its image in its own thread (JPEG decoding releases the GIL),
then hands the prepared item to the worker. While the worker runs a batch, new items queue up and
form the next batch (natural batching: a lone query waits for nothing, 50 concurrent ones share a
few forward passes instead of 50). Items of different shapes run in separate forward passes.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

import numpy as np

from extractor.base import Extractor


class EmbeddingBatcher:
    """Runs `extractor` on prepared items (its `transform` output) in batches of at most `max_batch`."""

    def __init__(self, extractor: Extractor, max_batch: int = 32) -> None:
        self.extractor = extractor
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Any, Future] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        #: sizes of the last 10,000 forward passes (what /api/info, the tests and the benchmark read)
        self.batch_sizes: deque[int] = deque(maxlen=10_000)

    def embed(self, item: Any) -> np.ndarray:
        """(1, width) features of one prepared item; blocks until its batch has run."""
        future: Future = Future()
        self._start()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker (items already queued are run first)."""
        with self._lock:
            if self._worker is not None:
                self._queue.put(None)
                self._worker.join()
                self._worker = None

    def _start(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="embedding-batcher", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending = [first]
            stop = False
            while len(pending) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                pending.append(nxt)
            self._run_batch(pending)
            if stop:
                return

    def _run_batch(self, pending: list[tuple[Any, Future]]) -> None:
        groups: dict[tuple, list[tuple[Any, Future]]] = {}
        for item, future in pending:
            groups.setdefault(tuple(getattr(item, "shape", ())), []).append((item, future))
        for group in groups.values():
            self.batch_sizes.append(len(group))
            try:
                out = np.asarray(self.extractor(self.extractor.collate([item for item, _ in group])))
            except Exception as err:  # handed to each waiting request, which reports it
                for _, future in group:
                    future.set_exception(err)
                continue
            for row, (_, future) in enumerate(group):
                future.set_result(out[row : row + 1])
