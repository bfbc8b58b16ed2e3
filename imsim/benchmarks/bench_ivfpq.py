# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The from-scratch IVF-PQ (fast_search/ivfpq.py) against faiss.IndexIVFPQ: train/add/search time and recall.

Data: the demo's float features (database demo_original + demo_distractors, queries demo_attacks +
demo_negatives) of BENCH_IVFPQ_METHOD (default efficientnet_lite0; run `make demo` first), or, when
that store is missing, clustered synthetic vectors of the same shape. Both indexes get the same
nlist/m/nbits/nprobe (BENCH_IVFPQ_NLIST, _M, _NBITS, _NPROBE); faiss's polysemous training (a code
permutation for Hamming filtering, not used by this search) is off so training times compare the same
work. Search is timed in BENCH_IVFPQ_ROUNDS (3) interleaved rounds, best of each. Recall@10 is against exact search (10-NN recall) and, on the demo, the share of positive
queries whose original is in the top 10.
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from fast_search.index import prepare
from fast_search.ivfpq import IVFPQ
from helpers.paths import FEATURES_DIR


def _env(name: str, default):
    return type(default)(os.environ.get(name, default))


def _data(method: str):
    from fast_search import load_search_data

    try:
        data = load_search_data(method, ["demo_original", "demo_distractors"], ["demo_attacks", "demo_negatives"],
                                FEATURES_DIR)
        return prepare(data.database, "cosine"), prepare(data.queries, "cosine"), data.targets, f"demo {method}"
    except (ValueError, OSError) as err:
        print(f"demo features of {method} not found ({err}); using synthetic clustered vectors")
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(200, 1280)).astype("float32")
    xb = centers[rng.integers(0, 200, 5023)] + 0.5 * rng.normal(size=(5023, 1280)).astype("float32")
    xq = xb[:1914] + 0.2 * rng.normal(size=(1914, 1280)).astype("float32")
    return prepare(xb, "cosine"), prepare(xq, "cosine"), None, "synthetic 5023 x 1280"


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> dict:
    method = _env("BENCH_IVFPQ_METHOD", "efficientnet_lite0")
    nlist, m, nbits, nprobe = (_env("BENCH_IVFPQ_NLIST", 100), _env("BENCH_IVFPQ_M", 32),
                               _env("BENCH_IVFPQ_NBITS", 8), _env("BENCH_IVFPQ_NPROBE", 8))
    threads = _env("BENCH_IVFPQ_THREADS", 1)
    faiss.omp_set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")  # numpy's BLAS on as many threads as faiss
    xb, xq, targets, what = _data(method)
    d = xb.shape[1]
    m = m if d % m == 0 else next(v for v in (64, 32, 16, 8, 4) if d % v == 0)
    print(f"{what}: {len(xb)} database, {len(xq)} queries, d={d}; IVF{nlist},PQ{m}x{nbits}, nprobe={nprobe}, "
          f"L2 on L2-normalised vectors, threads={threads} (faiss and numpy's BLAS)")
    _, gt = faiss.knn(xq, xb, 10)

    ref = faiss.index_factory(d, f"IVF{nlist},PQ{m}x{nbits}")
    faiss.downcast_index(faiss.extract_index_ivf(ref)).do_polysemous_training = False
    mine = IVFPQ(nlist, m, nbits, nprobe=nprobe)
    rounds = _env("BENCH_IVFPQ_ROUNDS", 3)
    ref.nprobe = nprobe
    entries = [
        ("faiss IndexIVFPQ", lambda: ref.train(xb), lambda: ref.add(xb), lambda: ref.search(xq, 10)),
        ("numpy IVFPQ", lambda: mine.fit(xb), lambda: mine.add(xb), lambda: mine.search(xq, 10)),
    ]
    times = {name: [_timed(train)[0], _timed(add)[0], float("inf")] for name, train, add, _ in entries}
    found_I = {}
    for _ in range(rounds):  # interleaved search rounds, best of each (a loaded machine)
        for name, _, _, search in entries:
            t, (_, I) = _timed(search)
            times[name][2] = min(times[name][2], t)
            found_I[name] = I
    rows = []
    for name, *_ in entries:
        I = found_I[name]
        knn = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt, strict=True)]))
        found = None
        if targets is not None:
            pos = targets >= 0
            found = float((I[pos] == targets[pos, None]).any(1).mean())
        rows.append((name, *times[name], knn, found))
    print("| index | train s | add s | search s | queries/s | 10-NN recall@10 | originals in top 10 |")
    print("|---|---|---|---|---|---|---|")
    for name, tt, ta, ts, knn, found in rows:
        f = "n/a" if found is None else f"{found:.4f}"
        print(f"| {name} | {tt:.2f} | {ta:.2f} | {ts:.3f} | {len(xq) / ts:,.0f} | {knn:.4f} | {f} |")
    (_, *a), (_, *b) = rows
    print(f"numpy / faiss time: train {b[0] / a[0]:.1f}x (goal <= 4x), add {b[1] / a[1]:.1f}x, search "
          f"{b[2] / a[2]:.1f}x (goal <= 3x; best of {rounds} interleaved rounds); recall difference "
          f"{100 * (b[3] - a[3]):+.2f} points")
    keys = ("index", "train_s", "add_s", "search_s", "knn_recall_at_10", "originals_in_top10")
    return {"data": what, "database": len(xb), "queries": len(xq), "dim": d, "factory": f"IVF{nlist},PQ{m}x{nbits}",
            "nprobe": nprobe, "threads": threads, "rounds": rounds,
            "rows": [dict(zip(keys, row, strict=True)) for row in rows]}


if __name__ == "__main__":
    main()
