# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Block search with a running heap equals one flat search."""

from __future__ import annotations

import numpy as np
import pytest

from extractor.store import store_path, write_features
from fast_search.block import array_blocks, block_search
from fast_search.data import database_blocks
from fast_search.index import FaissIndex


@pytest.mark.parametrize("metric", ["L2", "cosine", "IP", "L1"])
@pytest.mark.parametrize("block_size", [7, 64, 1000])
def test_block_equals_flat(metric, block_size):
    rng = np.random.default_rng(3)
    xb, xq = rng.normal(size=(300, 12)).astype("f4"), rng.normal(size=(25, 12)).astype("f4")
    D, I = FaissIndex("Flat", metric).fit(xb).add(xb).search(xq, 10)
    Db, Ib, stats = block_search(xq, array_blocks(xb, block_size), 10, metric)
    np.testing.assert_array_equal(Ib, I)
    np.testing.assert_allclose(Db, D, rtol=1e-5, atol=1e-5)
    assert stats["n"] == 300 and stats["blocks"] == -(-300 // block_size)


def test_binary_block_equals_flat():
    rng = np.random.default_rng(4)
    xb, xq = rng.integers(0, 256, (500, 8), dtype=np.uint8), rng.integers(0, 256, (30, 8), dtype=np.uint8)
    D, _ = FaissIndex("BFlat", "hamming", binary=True).fit(xb).add(xb).search(xq, 5)
    Db, Ib, _ = block_search(xq, array_blocks(xb, 33), 5, "hamming")
    np.testing.assert_array_equal(Db, D)  # ids may differ among equal distances
    bits = np.unpackbits(xq, axis=1)[:, None] != np.unpackbits(xb, axis=1)[None]
    np.testing.assert_array_equal(bits.sum(-1)[np.arange(30)[:, None], Ib], Db)


def test_block_search_over_sharded_store(tmp_path):
    rng = np.random.default_rng(5)
    xb, xq = rng.normal(size=(90, 6)).astype("f4"), rng.normal(size=(4, 6)).astype("f4")
    for k, part in enumerate(np.array_split(np.arange(90), 3)):
        write_features(
            store_path("big", "m", tmp_path, shard=(k, 3)), [f"big/{i}" for i in part], xb[part], method="m"
        )
    D, I = FaissIndex("Flat", "L2").fit(xb).add(xb).search(xq, 4)
    Db, Ib, stats = block_search(xq, database_blocks(["big"], "m", tmp_path, block_size=8), 4, "L2")
    np.testing.assert_array_equal(Ib, I)
    assert stats["blocks"] == 12  # 3 shards of 30 rows in blocks of 8


def test_block_k_larger_than_database_and_nan():
    xb = np.zeros((5, 2), "f4")
    with pytest.raises(ValueError, match="k=6 is larger than the database"):
        block_search(xb, array_blocks(xb, 2), 6, "L2")
    bad = xb.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="db/3"):
        block_search(xb, [(np.array(["db/0", "db/1", "db/2", "db/3", "db/4"]), bad)], 1, "L2")


@pytest.mark.parametrize("metric", ["IP", "cosine", "L2"])
@pytest.mark.parametrize("block_size", [64, 333])
def test_block_equals_flat_on_ties(metric, block_size):
    """Duplicated database rows tie everywhere: blocks must keep Flat's ids (smallest id first)."""
    rng = np.random.default_rng(0)
    base = rng.integers(-2, 3, (50, 8)).astype("f4")
    xb = base[rng.integers(0, 50, 1000)]
    xq = rng.integers(-2, 3, (200, 8)).astype("f4")
    D, I = FaissIndex("Flat", metric).fit(xb).add(xb).search(xq, 10)
    Db, Ib, _ = block_search(xq, array_blocks(xb, block_size), 10, metric)
    np.testing.assert_array_equal(Ib, I)
    np.testing.assert_array_equal(Db, D)
    # and the order within ties is canonical: by distance, then id
    for q in range(len(xq)):
        assert (np.lexsort((I[q], D[q])) == np.arange(10)).all()


def test_binary_block_equals_flat_on_ties():
    rng = np.random.default_rng(1)
    xb = rng.integers(0, 256, (40, 2), dtype=np.uint8)[rng.integers(0, 40, 3000)]
    xq = rng.integers(0, 256, (100, 2), dtype=np.uint8)
    D, I = FaissIndex("BFlat", "hamming", binary=True).fit(xb).add(xb).search(xq, 10)
    Db, Ib, _ = block_search(xq, array_blocks(xb, 250), 10, "hamming")
    np.testing.assert_array_equal(Ib, I)
    np.testing.assert_array_equal(Db, D)
