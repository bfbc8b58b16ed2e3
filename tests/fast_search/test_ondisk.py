# ruff: noqa: E741
"""On-disk IVF: merged shards equal one in-memory IVF index; sampling; refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fast_search.block import array_blocks
from fast_search.index import FaissIndex
from fast_search.ondisk import OnDiskIVF, build_ondisk, check_ondisk, open_ondisk, sample_rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32)).astype(np.float32) * 4
    xb = (centres[rng.integers(0, 20, 3000)] + rng.normal(size=(3000, 32))).astype(np.float32)
    xq = (xb[rng.choice(3000, 50, replace=False)] + 0.1 * rng.normal(size=(50, 32))).astype(np.float32)
    return xb, xq


@pytest.mark.parametrize("factory,metric", [("IVF16,PQ8", "L2"), ("IVF16,SQ8", "cosine"), ("IVF16,Flat", "IP")])
def test_merged_on_disk_equals_one_in_memory_index(data, tmp_path, factory, metric):
    xb, xq = data
    train = xb[::3]
    ref = FaissIndex(factory, metric).fit(train).add(xb).set_param("nprobe", 4)
    D_ref, I_ref = ref.search(xq, 10)
    # 3000 vectors in blocks of 700 into shards of 1000: shard boundaries cut blocks
    disk = build_ondisk(factory, metric, array_blocks(xb, 700), train, tmp_path / "ivf", shard_rows=1000)
    assert sorted(p.name for p in (tmp_path / "ivf").iterdir()) == ["checksums.json", "merged.index", "merged.ivfdata", "trained.index"]
    assert disk.ntotal_ == disk.index_.ntotal == 3000
    disk.set_param("nprobe", 4)
    D, I = disk.search(xq, 10)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5, atol=1e-5)
    # reopened from disk (memory-mapped lists), same answers
    again = open_ondisk(tmp_path / "ivf")
    again.nprobe = 4
    from fast_search.index import prepare

    _, I2 = again.search(prepare(xq, metric), 10)
    np.testing.assert_array_equal(I2, I_ref)
    assert disk.memory_bytes() > 0


def test_sample_rows_is_uniform_over_blocks_and_seeded(data):
    xb, _ = data
    s1 = sample_rows(array_blocks(xb, 256), len(xb), 500, seed=3)
    s2 = sample_rows(array_blocks(xb, 999), len(xb), 500, seed=3)
    np.testing.assert_array_equal(s1, s2)  # block size does not change the sample
    rows = {r.tobytes() for r in s1}
    tail = {r.tobytes() for r in xb[2000:]}
    assert len(rows & tail) > 100  # drawn from the whole database, not its head
    with pytest.raises(ValueError, match="fewer"):
        sample_rows(array_blocks(xb[:10]), 100, 5)


@pytest.mark.parametrize("factory", ["HNSW32", "Flat", "PCA16,Flat"])
def test_only_ivf_goes_on_disk(factory, tmp_path):
    with pytest.raises(ValueError, match="IVF"):
        check_ondisk(factory, False)
    with pytest.raises(ValueError, match="float"):
        check_ondisk("BIVF16", True)
    with pytest.raises(ValueError, match="IVF"):
        OnDiskIVF(factory, "L2", tmp_path)


def test_experiment_ondisk_equals_in_memory(tmp_path):
    import search_experiment
    from fast_search import run_experiment
    from fast_search.report import load_results
    from tests.fast_search.conftest import DATABASE, QUERIES, make_stores

    root = make_stores(tmp_path / "Features")
    common = {"indexes": ["IVF4,SQ8"], "metrics": ["L2"], "nprobes": [2], "ks": [1, 5],
              "features_root": root, "results_root": tmp_path / "R"}
    mem = run_experiment("mem", "feat", DATABASE, QUERIES, **common)
    rc = search_experiment.main(["disk", "--method", "feat", "--database", *DATABASE, "--queries", *QUERIES,
                                 "--indexes", "IVF4,SQ8", "--metrics", "L2", "--nprobe", "2", "--k", "1,5",
                                 "--block-size", "16", "--ondisk", "--features-root", str(root),
                                 "--results-root", str(tmp_path / "R")])
    assert rc == 0
    disk = load_results("disk", tmp_path / "R")
    assert disk["params"]["ondisk"] is True
    a = np.load(tmp_path / "R" / "mem" / mem["runs"][0]["file"])
    b = np.load(tmp_path / "R" / "disk" / disk["runs"][0]["file"])
    np.testing.assert_array_equal(a["I"], b["I"])
    assert (tmp_path / "R" / "disk" / "ondisk" / "IVF4,SQ8--L2" / "merged.ivfdata").exists()
    with pytest.raises(ValueError, match="IVF"):
        run_experiment("bad", "feat", DATABASE, QUERIES, indexes=["HNSW8"], ondisk=True, features_root=root,
                       results_root=tmp_path / "R")


@pytest.mark.parametrize("field", ["dim", "method"])
def test_shards_of_mixed_method_or_dimension_are_refused_before_any_work(tmp_path, field):
    from extractor.store import StoreError, store_path, write_features
    from fast_search import run_experiment
    from tests.fast_search.conftest import make_stores

    root = make_stores(tmp_path / "Features")
    rng = np.random.default_rng(0)
    big = "demo_big"
    write_features(store_path(big, "feat", root, (0, 2)), [f"{big}/{i}" for i in range(50)],
                   rng.normal(size=(50, 16)).astype(np.float32), method="feat")
    other = {"dim": {"method": "feat", "width": 8}, "method": {"method": "other", "width": 16}}[field]
    write_features(store_path(big, "feat", root, (1, 2)), [f"{big}/{i}" for i in range(50, 100)],
                   rng.normal(size=(50, other["width"])).astype(np.float32), method=other["method"])
    with pytest.raises(StoreError, match=field):
        run_experiment("mixed", "feat", [big], ["demo_attacks"], indexes=["IVF4,PQ4"], ondisk=True, block_size=16,
                       features_root=root, results_root=tmp_path / "R")
    assert not (tmp_path / "R").exists()
