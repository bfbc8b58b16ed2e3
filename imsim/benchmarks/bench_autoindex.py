# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""``--indexes auto``: the index chosen for a budget, its tuning time, and its latency against exact search.

Data: BENCH_AUTO_N (default 5,023, the issue's demo size) clustered BENCH_AUTO_DIM (1,280)-d vectors,
L2-normalised, and BENCH_AUTO_NQ (1,000) held-out queries near them. The index is chosen for
BENCH_AUTO_BUDGET (4GB) and tuned to BENCH_AUTO_MS (10) ms per query, as the experiment does
(`fast_search.autoindex.tune_index`: one query per search call, exact search's latency as a bound).
Printed: the choice and why, tuning seconds (goal: under 10 s below 100k vectors), then, measured
in the same run in BENCH_AUTO_ROUNDS (3) interleaved rounds (best of each), the latency of one query
per call and of a batch of all queries (divided), for the tuned index and exact Flat search, and
the tuned index's 10-NN recall against exact search.
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np

from fast_search.autoindex import choose_index, measure_ms, tune_index
from fast_search.index import FaissIndex, prepare


def _env(name: str, default):
    return type(default)(os.environ.get(f"BENCH_AUTO_{name}", default))


def main() -> dict:
    n, d, nq = _env("N", 5023), _env("DIM", 1280), _env("NQ", 1000)
    budget, max_ms, rounds, k = _env("BUDGET", "4GB"), _env("MS", 10.0), _env("ROUNDS", 3), 10
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(1, n // 25), d)).astype(np.float32)
    xb = prepare(centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32), "L2")
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xb[rng.integers(0, n, nq)] + 0.05 * rng.normal(size=(nq, d)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    print(f"{n:,} x {d} vectors, {nq:,} queries, budget {budget}, max {max_ms} ms per query, "
          f"{faiss.omp_get_max_threads()} faiss threads")

    choice = choose_index(n, d, budget)
    print(f"chosen: {choice.factory} ({choice.reason})")
    start = time.perf_counter()
    index = FaissIndex(choice.factory, "L2").fit(xb).add(xb)
    build_s = time.perf_counter() - start
    sample = xb[rng.choice(n, min(n, 1000), replace=False)]
    start = time.perf_counter()
    tune_index(choice, index, sample, k, max_ms, "L2", xb)
    tune_s = time.perf_counter() - start
    value = f"{choice.param}={choice.value}" if choice.param else "no parameter"
    print(f"tuned in {tune_s:.1f} s (build {build_s:.1f} s; goal: tuning < 10 s below 100k vectors): {choice.factory}, "
          f"{value}, {choice.query_ms:.3f} ms per query vs exact {choice.exact_ms or float('nan'):.3f} ms"
          + (f"; replaced {choice.replaced}" if choice.replaced else ""))
    if choice.factory != index.factory:
        index = FaissIndex(choice.factory, "L2").fit(xb).add(xb)
    flat = FaissIndex("Flat", "L2").fit(xb).add(xb)
    rows = {"tuned " + choice.factory: index.index_, "exact Flat": flat.index_}
    one = dict.fromkeys(rows, float("inf"))
    batch = dict.fromkeys(rows, float("inf"))
    for _ in range(rounds):  # interleaved rounds, best of each
        for name, raw in rows.items():
            one[name] = min(one[name], measure_ms(lambda q, raw=raw: raw.search(q, k), xq, timeout_s=2.0))
            t = time.perf_counter()
            raw.search(xq, k)
            batch[name] = min(batch[name], 1000 * (time.perf_counter() - t) / nq)
    _, I_exact = flat.index_.search(xq, k)
    _, I = index.index_.search(xq, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(I, I_exact, strict=True)]))
    print(f"{'index':<34} {'ms/query (1 per call)':>22} {'ms/query (batch)':>17} {'vs exact (1 per call)':>22}")
    base = one["exact Flat"]
    for name in rows:
        print(f"{name:<34} {one[name]:>22.3f} {batch[name]:>17.4f} {base / one[name]:>21.2f}x")
    print(f"10-NN recall of the tuned index vs exact: {recall:.4f}")
    return {"n": n, "dim": d, "queries": nq, "budget": budget, "max_ms": max_ms, "factory": choice.factory,
            "reason": choice.reason, "param": choice.param, "value": choice.value, "build_s": build_s, "tune_s": tune_s,
            "query_ms_tuned": choice.query_ms, "exact_ms": choice.exact_ms, "recall_at_10_vs_exact": recall,
            "rows": [{"index": name, "ms_per_query_one": one[name], "ms_per_query_batch": batch[name]} for name in rows]}


if __name__ == "__main__":
    main()
