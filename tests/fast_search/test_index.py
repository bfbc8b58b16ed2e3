# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Indexes, metrics and the distance convention, against numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest

from fast_search.index import FaissIndex, check_finite, make_index, prepare, sweep_param


def _brute(xq, xb, metric):
    if metric == "L2":
        return np.sqrt(((xq[:, None] - xb[None]) ** 2).sum(-1))
    if metric == "L1":
        return np.abs(xq[:, None] - xb[None]).sum(-1)
    if metric == "IP":
        return -(xq @ xb.T)
    if metric == "cosine":
        q = xq / np.linalg.norm(xq, axis=1, keepdims=True)
        b = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        return 1 - q @ b.T
    bits_q, bits_b = np.unpackbits(xq, axis=1), np.unpackbits(xb, axis=1)
    return (bits_q[:, None] != bits_b[None]).sum(-1)


@pytest.mark.parametrize("metric", ["L2", "L1", "IP", "cosine"])
def test_flat_matches_brute_force(metric):
    rng = np.random.default_rng(0)
    xb, xq = rng.normal(size=(50, 8)).astype("f4"), rng.normal(size=(7, 8)).astype("f4")
    D, I = FaissIndex("Flat", metric).fit(xb).add(xb).search(xq, 5)
    ref = _brute(xq.astype("f8"), xb.astype("f8"), metric)
    np.testing.assert_array_equal(I, np.argsort(ref, axis=1)[:, :5])
    np.testing.assert_allclose(D, np.sort(ref, axis=1)[:, :5], rtol=1e-4, atol=1e-4)
    assert (np.diff(D, axis=1) >= -1e-6).all()  # smaller is closer for every metric


def test_hamming_matches_popcount():
    rng = np.random.default_rng(1)
    xb, xq = rng.integers(0, 256, (40, 8), dtype=np.uint8), rng.integers(0, 256, (5, 8), dtype=np.uint8)
    D, I = FaissIndex("BFlat", "hamming", binary=True).fit(xb).add(xb).search(xq, 3)
    ref = _brute(xq, xb, "hamming")
    np.testing.assert_array_equal(D, np.sort(ref, axis=1)[:, :3])
    np.testing.assert_array_equal(ref[np.arange(5)[:, None], I], D)


def test_cosine_zero_norm_stays_zero():
    x = np.array([[0, 0], [3, 4]], dtype="f4")
    np.testing.assert_allclose(prepare(x, "cosine"), [[0, 0], [0.6, 0.8]])


@pytest.mark.parametrize(
    "factory,metric,binary,match",
    [
        ("Bogus12", "L2", False, "cannot build index 'Bogus12'.*valid examples"),
        ("Flat", "euclid", False, "unknown metric 'euclid'.*L2, cosine, IP, L1"),
        ("Flat", "hamming", False, "does not apply to float"),
        ("BFlat", "L2", True, "valid: hamming"),
        ("BFlat", "L2", False, "binary index"),
        ("Flat", "hamming", True, "float index"),
        ("IVF4,PQ4", "L1", False, "METRIC_L1 only on Flat"),
        ("BNope", "hamming", True, "cannot build binary index"),
    ],
)
def test_bad_factory_or_metric(factory, metric, binary, match):
    with pytest.raises(ValueError, match=match):
        make_index(factory, 64 if binary else 16, metric, binary)


def test_l1_is_supported_on_ivf_and_hnsw():
    """L1 indexes build, search with METRIC_L1 and return true L1 distances (exact for Flat)."""
    rng = np.random.default_rng(5)
    xb = rng.normal(size=(200, 16)).astype("f4")
    xq = rng.normal(size=(10, 16)).astype("f4")
    truth = _brute(xq, xb, "L1")
    for factory in ("Flat", "IVF4,Flat", "HNSW8"):
        import faiss

        assert make_index(factory, 16, "L1", False).metric_type == faiss.METRIC_L1
        index = FaissIndex(factory, "L1").fit(xb).add(xb)
        if factory.startswith("IVF"):
            index.set_param("nprobe", 4)  # every list: exact
        D, I = index.search(xq, 5)
        np.testing.assert_allclose(D, np.take_along_axis(truth, I, axis=1), rtol=1e-4, atol=1e-4)
        if factory != "HNSW8":  # HNSW is approximate
            np.testing.assert_allclose(D, np.sort(truth, axis=1)[:, :5], rtol=1e-4, atol=1e-4)


def test_sweeps_set_parameters():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 8)).astype("f4")
    ivf = FaissIndex("IVF8,Flat", "L2").fit(x).add(x).set_param("nprobe", 8)
    import faiss

    assert faiss.extract_index_ivf(ivf.index_).nprobe == 8
    D, I = ivf.search(x[:5], 1)  # nprobe = nlist: exact
    np.testing.assert_array_equal(I[:, 0], np.arange(5))
    hnsw = FaissIndex("HNSW8", "L2").fit(x).add(x).set_param("efSearch", 77)
    assert hnsw.index_.hnsw.efSearch == 77
    b = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    bivf = FaissIndex("BIVF4", "hamming", binary=True).fit(b).add(b).set_param("nprobe", 3)
    assert bivf.index_.nprobe == 3
    assert sweep_param("IVF64,PQ8") == "nprobe" and sweep_param("HNSW32") == "efSearch"
    assert sweep_param("BIVF8") == "nprobe" and sweep_param("Flat") is None


def test_search_errors_and_memory():
    x = np.ones((4, 4), "f4")
    with pytest.raises(RuntimeError, match="fit"):
        FaissIndex().search(x, 1)
    index = FaissIndex().fit(x).add(x)
    with pytest.raises(ValueError, match="k=5 is larger than the database"):
        index.search(x, 5)
    assert index.memory_bytes() >= 4 * 4 * 4


def test_nan_rows_are_named():
    x = np.zeros((3, 2), "f4")
    x[1, 0] = np.nan
    x[2, 1] = np.inf
    with pytest.raises(ValueError, match="2 feature rows.*b, c"):
        check_finite(x, ["a", "b", "c"], "queries")


@pytest.mark.parametrize("factory,metric,binary", [("Flat", "L2", False), ("Flat", "L1", False),
                                                   ("Flat", "cosine", False), ("BFlat", "hamming", True),
                                                   ("IVF4,Flat", "L2", False)])  # fmt: skip
def test_index_bytes_is_the_serialised_size(factory, metric, binary):
    import faiss

    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (300, 8), dtype=np.uint8) if binary else rng.normal(size=(300, 8)).astype("f4")
    index = FaissIndex(factory, metric, binary).fit(x).add(x)
    serialize = faiss.serialize_index_binary if binary else faiss.serialize_index
    assert index.memory_bytes() == serialize(index.index_).size
