"""The embedding batcher: concurrent queries share forward passes and get the features they would alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from extractor.base import Extractor
from imsim.app.batcher import EmbeddingBatcher


class Doubler(Extractor):
    """Features = 2 x the sample; the first forward pass waits for `release` so others queue behind it."""

    name, dim = "doubler", 3

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls == 1:
            self.release.wait(10)
        if (batch < 0).any():
            raise ValueError("negative sample")
        return 2 * batch.astype(np.float32)


def test_concurrent_queries_are_batched_and_each_gets_its_own_row():
    ext = Doubler()
    batcher = EmbeddingBatcher(ext, max_batch=32)
    items = [np.full(3, i, np.float32) for i in range(9)]
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(batcher.embed, items[0])
        _until(lambda: ext.calls == 1)  # the worker holds item 0 in its first pass
        rest = [pool.submit(batcher.embed, x) for x in items[1:]]
        _until(lambda: batcher._queue.qsize() == 8)
        ext.release.set()
        out = [first.result()] + [f.result() for f in rest]
    batcher.close()
    for i, row in enumerate(out):
        np.testing.assert_array_equal(row, np.full((1, 3), 2 * i, np.float32))
    assert list(batcher.batch_sizes) == [1, 8]


def test_items_of_different_shapes_run_in_separate_passes():
    ext = Doubler()
    ext.release.set()
    batcher = EmbeddingBatcher(ext)
    batcher._run_batch([(np.ones(3, np.float32), f1 := _future()), (np.ones(2, np.float32), f2 := _future()),
                        (np.zeros(3, np.float32), f3 := _future())])
    assert sorted(batcher.batch_sizes) == [1, 2]
    np.testing.assert_array_equal(f2.result(), [[2, 2]])
    np.testing.assert_array_equal(f3.result(), [[0, 0, 0]])
    assert f1.result().shape == (1, 3)


def test_an_error_reaches_every_request_of_its_batch_and_the_worker_goes_on():
    ext = Doubler()
    ext.release.set()
    batcher = EmbeddingBatcher(ext)
    with pytest.raises(ValueError, match="negative"):
        batcher.embed(np.full(3, -1, np.float32))
    np.testing.assert_array_equal(batcher.embed(np.ones(3, np.float32)), [[2, 2, 2]])
    batcher.close()


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _future():
    from concurrent.futures import Future

    return Future()
