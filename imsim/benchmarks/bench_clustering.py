"""Agglomerative clustering at scale: time and peak memory of the kNN-graph path vs the dense path.

Synthetic features (planted clusters, dim 2048 by default) are clustered with average and ward
linkage and cut to 400, 250 and 100 clusters. Printed per run: wall time of the fit, of which the
kNN graph ("graph"), CPU seconds of the whole process (more stable than wall time on a shared
machine), the cuts, the peak RSS, the RSS of the data alone, and the ARI against the planted labels. Each (size, linkage, path) runs in its own
subprocess so that ``ru_maxrss`` (which sees C allocations, unlike tracemalloc) is that run's
peak. The dense path's memory is printed as computed (``n(n-1)/2 * 8`` bytes for the matrix,
and `dense_memory_bytes` with scipy's working copy) and measured where it fits ``DENSE_MAX_GB``.

Environment (defaults kept small while the machine is shared):

- ``BENCH_CLUSTER_SIZES`` (``2000,5000``; the issue's sizes: ``5000,20000,50000``)
- ``BENCH_CLUSTER_DIM`` (``2048``), ``BENCH_CLUSTER_LINKAGES`` (``average,ward``)
- ``BENCH_CLUSTER_DENSE_MAX_GB`` (``3``): largest dense run measured
- ``BENCH_CLUSTER_INDEX`` (``Flat``): faiss index for the kNN graph (e.g. ``PCA256,Flat``)
- ``BENCH_CLUSTER_TIMEOUT`` (``900``): seconds per run
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

CUTS = (400, 250, 100)
N_PLANTED = 250


def _env_list(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def child(n: int, dim: int, linkage: str, path: str, index: str) -> dict:
    """One measured run (in a fresh process): cluster, cut, score against the planted labels."""
    from clustering.agglomerative import Agglomerative
    from clustering.metrics import adjusted_rand_score
    from clustering.synthetic import planted_clusters

    X, y = planted_clusters(n, dim, min(N_PLANTED, n // 4), spread=0.8, seed=0, imbalance=0.5)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out = {"n": n, "dim": dim, "linkage": linkage, "path": path, "data_gb": round(rss_data, 3)}
    if path == "none":
        return out
    start = time.perf_counter()
    model = Agglomerative(linkage=linkage, path=path, index_factory=index, memory_budget_gb=1e9).fit(X)
    out["fit_s"] = round(time.perf_counter() - start, 2)
    out["graph_s"] = round(getattr(model, "graph_time_", 0.0), 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    start = time.perf_counter()
    labels = {k: model.cut(k) for k in CUTS if k <= n}
    out["cuts_s"] = round(time.perf_counter() - start, 3)
    out["ari_at_planted"] = round(adjusted_rand_score(y, model.cut(min(N_PLANTED, n // 4))), 4)
    out["n_cuts"] = len(labels)
    out["maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)
    return out


def _run(n: int, dim: int, linkage: str, path: str, index: str, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "imsim.benchmarks.bench_clustering", "--child", str(n), str(dim), linkage, path, index]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"n": n, "linkage": linkage, "path": path, "error": f"timeout after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"n": n, "linkage": linkage, "path": path, "error": proc.stderr.strip().splitlines()[-1:] or proc.returncode}
    return json.loads(lines[-1])


def main() -> dict:
    from clustering.agglomerative import dense_memory_bytes

    sizes = [int(v) for v in _env_list("BENCH_CLUSTER_SIZES", "2000,5000")]
    dim = int(os.environ.get("BENCH_CLUSTER_DIM", "2048"))
    linkages = _env_list("BENCH_CLUSTER_LINKAGES", "average,ward")
    dense_max = float(os.environ.get("BENCH_CLUSTER_DENSE_MAX_GB", "3"))
    index = os.environ.get("BENCH_CLUSTER_INDEX", "Flat")
    timeout = float(os.environ.get("BENCH_CLUSTER_TIMEOUT", "900"))
    print(f"planted clusters: {N_PLANTED}, dim {dim}, cuts {CUTS}, kNN k=15 ({index}), cores {os.cpu_count()}", flush=True)
    print(f"{'n':>7} {'linkage':>8} {'path':>10} {'fit s':>8} {'(graph)':>8} {'cpu s':>7} {'cuts s':>7} {'peak GB':>8} "
          f"{'data GB':>8} {'ARI':>6}", flush=True)  # fmt: skip
    out = {"planted": N_PLANTED, "dim": dim, "cuts": CUTS, "index": index, "baselines": [], "runs": []}
    for n in sizes:
        base = _run(n, dim, "average", "none", index, timeout)
        matrix_gb = n * (n - 1) / 2 * 8 / 1e9
        out["baselines"].append(base)
        for linkage in linkages:
            dense_gb = dense_memory_bytes(n, dim, linkage) / 1e9
            runs = [_run(n, dim, linkage, "knn-graph", index, timeout)]
            if dense_gb <= dense_max:
                runs.append(_run(n, dim, linkage, "dense", index, timeout))
            out["runs"] += [{**r, "dense_estimate_gb": dense_gb} for r in runs]
            for r in runs:
                if "error" in r:
                    print(f"{n:>7} {linkage:>8} {r['path']:>10}  failed: {r['error']}", flush=True)
                    continue
                print(f"{n:>7} {linkage:>8} {r['path']:>10} {r['fit_s']:>8.1f} {r['graph_s']:>8.1f} {r['cpu_s']:>7.0f} "
                      f"{r['cuts_s']:>7.2f} {r['maxrss_gb']:>8.2f} {base.get('data_gb', float('nan')):>8.2f} "
                      f"{r['ari_at_planted']:>6.3f}", flush=True)  # fmt: skip
            measured = [r for r in runs if r.get("path") == "dense" and "error" not in r]
            sparse = runs[0]
            note = f"measured peak {measured[0]['maxrss_gb']:.2f} GB" if measured else f"not run (> {dense_max:g} GB)"
            ratio = ""
            if measured and "error" not in sparse:
                ratio = f"; dense/sparse time {measured[0]['fit_s'] / max(sparse['fit_s'], 1e-9):.2f}x"
            print(f"{'':>7} {'':>8} dense path: matrix {matrix_gb:.2f} GB, with scipy's copy {dense_gb:.2f} GB, {note}{ratio}", flush=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        n, dim, linkage, path, index = sys.argv[2:7]
        print(json.dumps(child(int(n), int(dim), linkage, path, index)), flush=True)
    else:
        main()
