# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The from-scratch IVF-PQ against faiss.IndexIVFPQ: same codes and neighbours with faiss's quantisers,
recall within 2 points when trained alone; and as a `custom:` index in run_experiment."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from faiss.contrib.inspect_tools import get_invlist

from fast_search.ivfpq import IVFPQ, CustomIndex, kmeans, parse_custom


@pytest.fixture(scope="module")
def data():
    """Clustered vectors (like image features: many near-duplicates around a few modes) and queries."""
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    d, n = 32, 3000
    centers = rng.normal(size=(40, d)).astype("float32")
    x = (centers[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, d))).astype("float32")
    xq = (x[:200] + 0.05 * rng.normal(size=(200, d))).astype("float32")
    return x, xq


def faiss_ivfpq(d: int, factory: str, metric=faiss.METRIC_L2):
    """faiss's IndexIVFPQ without polysemous training (a code permutation for Hamming filtering
    that costs most of the training time and changes neither codewords nor distances)."""
    index = faiss.index_factory(d, factory, metric)
    faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training = False
    return index


def tied(D: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Positions whose distance equals a neighbour's in the same row (their order is arbitrary)."""
    close = np.isclose(D[:, 1:], D[:, :-1], rtol=tol, atol=tol)
    out = np.zeros(D.shape, bool)
    out[:, 1:] |= close
    out[:, :-1] |= close
    return out


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_same_codes_and_neighbours_as_faiss_with_its_quantisers(data, metric):
    x, xq = data
    ref = faiss_ivfpq(x.shape[1], "IVF16,PQ8", metric)
    ref.train(x)
    ref.add(x)
    ref.nprobe = 4
    mine = IVFPQ.from_faiss(ref).add(x)
    ivf = faiss.extract_index_ivf(ref)
    for l in range(ivf.nlist):
        ids, codes = get_invlist(ivf.invlists, l)
        a, b = np.argsort(ids), np.argsort(mine.ids_[l])
        np.testing.assert_array_equal(ids[a], mine.ids_[l][b])
        np.testing.assert_array_equal(codes[a], mine.codes_[l][b])
    D_ref, I_ref = ref.search(xq, 10)
    D, I = mine.search(xq, 10)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-4)
    untied = ~tied(D_ref)
    np.testing.assert_array_equal(I[untied], I_ref[untied])
    if metric == faiss.METRIC_L2:
        assert (I == I_ref).mean() > 0.95


def recall_at_10(I: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt, strict=True)]))


@pytest.mark.slow
def test_recall_within_two_points_of_faiss_trained_alone(data):
    x, xq = data
    _, gt = faiss.knn(xq, x, 10)
    ref = faiss_ivfpq(x.shape[1], "IVF16,PQ8x6")
    ref.train(x)
    ref.add(x)
    ref.nprobe = 4
    mine = IVFPQ(16, 8, 6, nprobe=4).fit(x).add(x)
    r_ref, r_mine = recall_at_10(ref.search(xq, 10)[1], gt), recall_at_10(mine.search(xq, 10)[1], gt)
    assert r_mine >= r_ref - 0.02, (r_mine, r_ref)


def test_decode_is_close_and_fewer_lists_than_k_pad_with_minus_one(data):
    x, _ = data
    index = IVFPQ(8, 4, 4, nprobe=1, niter=5).fit(x[:1000]).add(x[:1000])
    lists = index.assign(x[:50])
    err = np.linalg.norm(index.decode(index.encode(x[:50], lists), lists) - x[:50], axis=1)
    assert (err < np.linalg.norm(x[:50], axis=1)).all()
    D, I = index.search(x[:3], 999)
    assert (I[:, -1] == -1).any() and np.isinf(D[I == -1]).all()


def test_kmeans_keeps_every_centroid_distinct():
    x = np.repeat(np.eye(4, dtype=np.float32), 10, axis=0)
    c = kmeans(x, 6, niter=5)
    assert len(np.unique(c.round(6), axis=0)) == 6


def test_factory_names_and_errors():
    assert parse_custom("custom:IVF100,PQ8") == (100, 8, 8)
    assert parse_custom("custom:IVF64,PQ16x4") == (64, 16, 4)
    for bad in ("IVF100,PQ8", "custom:HNSW32", "custom:IVF10,PQ"):
        with pytest.raises(ValueError, match="custom"):
            parse_custom(bad)
    with pytest.raises(ValueError, match="binary"):
        CustomIndex("custom:IVF4,PQ2", "hamming", binary=True)
    with pytest.raises(ValueError, match="multiple of m"):
        CustomIndex("custom:IVF4,PQ3").fit(np.zeros((10, 8), np.float32))
    with pytest.raises(RuntimeError, match="not trained"):
        IVFPQ().search(np.zeros((1, 8), np.float32), 1)


def test_custom_index_in_run_experiment(tmp_path):
    from extractor.store import write_features
    from fast_search import run_experiment

    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 16)).astype("float32")
    feats = tmp_path / "Features"
    write_features(feats / "db" / "m.h5", [f"db/{i}" for i in range(300)], base, method="m")
    queries = base[:20] + 0.01 * rng.normal(size=(20, 16)).astype("float32")
    write_features(feats / "q" / "m.h5", [f"q/{i}_x" for i in range(20)], queries, method="m")
    result = run_experiment(
        "custom", "m", ["db"], ["q"], indexes=["Flat", "custom:IVF8,PQ4"], metrics=["L2"], ks=[1, 10],
        nprobes=[1, 8], features_root=feats, results_root=tmp_path / "Results",
    )
    runs = {r["key"]: r for r in result["runs"]}
    assert set(runs) == {"Flat--L2", "custom:IVF8,PQ4--L2--nprobe=1", "custom:IVF8,PQ4--L2--nprobe=8"}
    assert runs["custom:IVF8,PQ4--L2--nprobe=8"]["recall_vs_exact"] > 0.5
    assert runs["custom:IVF8,PQ4--L2--nprobe=8"]["index_bytes"] > 0


def _reference_search(index: IVFPQ, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over the decoded vectors of each query's probed lists (ties: smaller id first)."""
    ip = index.metric == "IP"
    coarse = xq @ index.coarse_centroids_.T if ip else ((xq[:, None] - index.coarse_centroids_[None]) ** 2).sum(2)
    D = np.full((len(xq), k), -np.inf if ip else np.inf, np.float32)
    I = np.full((len(xq), k), -1, np.int64)
    for q in range(len(xq)):
        probe = np.argsort(-coarse[q] if ip else coarse[q], kind="stable")[: index.nprobe]
        ids = np.concatenate([index.ids_[l] for l in probe])
        lists = np.concatenate([np.full(len(index.ids_[l]), l) for l in probe])
        x = index.decode(np.concatenate([index.codes_[l] for l in probe]), lists)
        d = x @ xq[q] if ip else ((x - xq[q]) ** 2).sum(1)
        top = np.lexsort((ids, -d if ip else d))[:k]
        D[q, : len(top)], I[q, : len(top)] = d[top], ids[top]
    return D, I


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_batched_search_equals_brute_force_over_probed_lists(data, metric):
    """One table per query, m gathers over all candidates, blocks of queries: the same top k as scanning
    each probed list's decoded vectors, also with duplicate vectors (exact ties, smaller id first)."""
    x, xq = data
    x = np.concatenate([x[:1500], x[:300]])  # rows 1500.. repeat rows 0..299: identical codes, tied scores
    index = IVFPQ(16, 8, 6, nprobe=3, metric=metric, niter=4, coarse_niter=4).fit(x).add(x[:1000]).add(x[1000:])
    D_ref, I_ref = _reference_search(index, xq[:60], 10)
    for max_candidates in (1 << 17, 500):  # one block, and one query per block
        D, I = index.search(xq[:60], 10, max_candidates=max_candidates)
        np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-3)
        untied = ~tied(D_ref, 1e-5)
        np.testing.assert_array_equal(I[untied], I_ref[untied])
    D, I = index.search(x[:20], 10)  # rows q and 1500 + q have equal scores: q always comes first
    for q in range(20):
        row = I[q].tolist()
        if 1500 + q in row:
            at = row.index(1500 + q)
            assert q in row[:at] and D[q, row.index(q)] == D[q, at]
    assert index.codes_[0].shape[1] == 8 and sum(len(i) for i in index.ids_) == index.ntotal == len(x)
