# ruff: noqa: E741
"""Scale: an on-disk IVF-PQ over synthetic stores of 1M, 3M and 10M vectors, in bounded memory.

For each size N (one subprocess each, so peak memory is measured per size), in blocks:
  1. N clustered, seeded 256-d vectors written as float16 HDF5 store shards of 1M rows
     (the format extraction writes; block k's vectors depend only on the seed and k);
  2. IVF-PQ trained on a uniform sample, added block by block to 1M-vector shard indexes,
     merged on disk (`fast_search.ondisk`), searched memory-mapped;
  3. printed: generation and build time, disk, peak memory (anonymous = heap; RSS also counts
     pages of memory-mapped files, which the kernel can drop), queries/s, recall vs exact search.
Then a linear extrapolation to 100M and 1B vectors, with its assumptions.

  make bench BENCH=scale                          # 1M, 3M, 10M (~25 min on a busy 2-core machine)
  BENCH_SCALE_SIZES=200000,600000 make bench BENCH=scale     # a quick look
Knobs: BENCH_SCALE_SIZES, _DIM (256), _FACTORY (IVF4096_HNSW32,PQ32), _TRAIN (100000), _BLOCK
(100000), _SHARD_ROWS (1000000), _NQ (1000), _RECALL_NQ (100), _NPROBE (16), _DIR (Features/_bench_scale).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from helpers.paths import FEATURES_DIR

SEED = 0
CENTRES = 1000
LATENT = 16  # intrinsic dimensions of the spread around each centre
K = 10


def _env(name: str, default):
    value = os.environ.get(f"BENCH_SCALE_{name}")
    return type(default)(value) if value is not None else default


class PeakMemory:
    """Samples /proc/self/status every 50 ms: peak VmRSS and peak RssAnon (bytes)."""

    def __init__(self) -> None:
        self.rss = self.anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                fields[key] = int(value.split()[0]) * 1024
        self.rss = max(self.rss, fields.get("VmRSS", 0))
        self.anon = max(self.anon, fields.get("RssAnon", 0))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _centres(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded cluster centres, and the low-rank basis the within-cluster spread lives in."""
    rng = np.random.default_rng([SEED, 0])
    centres = rng.normal(size=(CENTRES, dim)).astype(np.float32)
    basis = (rng.normal(size=(LATENT, dim)) / np.sqrt(LATENT)).astype(np.float32)
    return centres, basis


def synthetic_block(k: int, rows: int, dim: int, model: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Block k: `rows` clustered vectors (float32); depends only on (SEED, k).

    Centre + a spread of LATENT intrinsic dimensions + small isotropic noise: image descriptors
    have a low intrinsic dimension, and isotropic 256-d noise would make every neighbour
    equidistant (and any quantizer look worse than on real features).
    """
    centres, basis = model
    rng = np.random.default_rng([SEED, 1, k])
    x = centres[rng.integers(0, len(centres), rows)]
    x += rng.standard_normal((rows, LATENT), dtype=np.float32) @ basis
    x += 0.05 * rng.standard_normal((rows, dim), dtype=np.float32)
    return x


def write_shards(root: Path, n: int, dim: int, block: int, shard_rows: int) -> list[Path]:
    """N vectors as store shards ``synth.shard-K-of-S.h5`` of dataset ``scale``, block by block."""
    from extractor.store import FeatureWriter, store_path

    centres = _centres(dim)
    n_shards = -(-n // shard_rows)
    paths = []
    for s in range(n_shards):
        start, stop = s * shard_rows, min(n, (s + 1) * shard_rows)
        path = store_path("scale", "synth", root, (s, n_shards))
        with FeatureWriter(path, method="synth", dim=dim, dtype="float16", dataset="scale", n_total=stop - start,
                           shard=f"{s}/{n_shards}", chunk_rows=4096) as w:
            for b in range(start, stop, block):
                rows = min(block, stop - b)
                x = synthetic_block(b // block, rows, dim, centres)
                w.append([f"scale/{i}" for i in range(b, b + rows)], x.astype(np.float16))
            paths.append(w.finish())
    return paths


def _blocks(root: Path, block: int):
    from extractor.store import iter_chunks

    for _, x in iter_chunks("scale", "synth", root, chunk_size=block):
        yield None, x.astype(np.float32)


def run_point(n: int, workdir: Path) -> dict:
    """One size, in this process: generate, build on disk, search; a dict of measurements."""
    import faiss

    from fast_search.block import block_search
    from fast_search.index import set_search_param
    from fast_search.ondisk import OnDiskIVF, open_ondisk, sample_rows

    dim, factory = _env("DIM", 256), _env("FACTORY", "IVF4096_HNSW32,PQ32")
    block, shard_rows = _env("BLOCK", 100_000), _env("SHARD_ROWS", 1_000_000)
    n_train, nq, nq_recall, nprobe = _env("TRAIN", 100_000), _env("NQ", 1000), _env("RECALL_NQ", 100), _env("NPROBE", 16)
    shutil.rmtree(workdir, ignore_errors=True)
    root, index_dir = workdir / "Features", workdir / "index"
    out = {"n": n, "dim": dim, "factory": factory, "shards": -(-n // shard_rows), "threads": faiss.omp_get_max_threads()}
    with PeakMemory() as mem:
        t = time.perf_counter()
        write_shards(root, n, dim, block, shard_rows)
        out["generate_s"] = time.perf_counter() - t
        out["store_bytes"] = sum(p.stat().st_size for p in (root / "scale").glob("*.h5"))
        gen_anon = mem.anon

        t = time.perf_counter()
        train = sample_rows(_blocks(root, block), n, min(n, n_train))
        out["sample_s"] = time.perf_counter() - t
        index = OnDiskIVF(factory, "L2", index_dir, shard_rows=shard_rows).fit(train)
        out["train_s"] = index.train_time_
        del train
        t = time.perf_counter()
        for _, x in _blocks(root, block):
            index.add(x)
        out["add_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index.merge()
        out["merge_s"] = time.perf_counter() - t
        out["build_s"] = out["sample_s"] + out["train_s"] + out["add_s"] + out["merge_s"]
        out["index_disk_bytes"] = index.memory_bytes()
        del index

        xq = synthetic_block(10**9, nq, dim, _centres(dim))  # held-out queries from the same clusters
        mapped = open_ondisk(index_dir)
        set_search_param(mapped, "nprobe", nprobe)
        if "_HNSW" in factory:
            set_search_param(mapped, "quantizer_efSearch", max(16, 2 * nprobe))
        mapped.search(xq[:10], K)  # warm the quantizer
        t = time.perf_counter()
        _, I = mapped.search(xq, K)
        out["search_s"] = time.perf_counter() - t
        out["qps"] = nq / out["search_s"]
        t = time.perf_counter()
        _, I_exact, _ = block_search(xq[:nq_recall], _blocks(root, block), K, "L2")
        out["exact_s"] = time.perf_counter() - t
        out["recall_at_10_vs_exact"] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(I[:nq_recall], I_exact, strict=True)]))
        out["recall_at_1_vs_exact"] = float(np.mean(I[:nq_recall, 0] == I_exact[:, 0]))
    out["peak_anon_bytes"], out["peak_rss_bytes"], out["generate_peak_anon_bytes"] = mem.anon, mem.rss, gen_anon
    out["nprobe"] = nprobe
    if not _env("KEEP", 0):
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _gb(b: float) -> str:
    return f"{b / 1e9:.2f} GB"


def extrapolate(points: list[dict]) -> list[dict]:
    """Linear extrapolation from the two largest points (per-vector slope, fixed intercept)."""
    a, b = (points[-2], points[-1]) if len(points) > 1 else (points[-1], points[-1])
    span = max(1, b["n"] - a["n"])

    def slope(key: str) -> float:  # disk: exactly linear; times: the largest point's rate (an upper bound)
        if key.endswith("_bytes") and b["n"] != a["n"]:
            return (b[key] - a[key]) / span
        return b[key] / b["n"]

    d = b["dim"]
    print("\nlinear extrapolation (disk: slope of the two largest points; times: the largest point's rate):")
    print(f"  {'N':>14} {'build':>10} {'generate':>10} {'index disk':>11} {'store f16':>10} {'peak anon':>10}")
    rows = []
    for n in (100_000_000, 1_000_000_000):
        build = b["build_s"] + slope("build_s") * (n - b["n"])
        gen = b["generate_s"] + slope("generate_s") * (n - b["n"])
        disk = b["index_disk_bytes"] + slope("index_disk_bytes") * (n - b["n"])
        store = n * d * 2
        k = 65_536 if n < 300_000_000 else 131_072
        anon = b["peak_anon_bytes"] + (k - 4096) * d * 4 * 2  # centroids + their HNSW graph grow with k
        print(f"  {n:>14,} {build / 3600:>8.1f} h {gen / 3600:>8.1f} h {_gb(disk):>11} {_gb(store):>10} {_gb(anon):>10}")
        rows.append({"n": n, "build_s": build, "generate_s": gen, "index_disk_bytes": disk, "store_bytes": store,
                     "peak_anon_bytes": anon})
    print("  assumptions: add time and disk grow linearly in N (fixed code size, 1M-vector shards); training on a")
    print("  fixed-size sample; memory is one block + one shard index + the training sample + the coarse quantizer,")
    print("  which grows with the number of lists (65,536 at 100M, 131,072 at 1B, autofaiss's choice) not with N;")
    print("  the merged lists are memory-mapped, so search needs the quantizer plus the lists probed (page cache).")
    print("  Search time per query grows with N / lists x nprobe: at fixed lists and nprobe, linearly in N.")
    return rows


def main() -> dict | None:
    if len(sys.argv) > 2 and sys.argv[1] == "--point":  # the child: one size
        print("POINT " + json.dumps(run_point(int(sys.argv[2]), Path(sys.argv[3]))), flush=True)
        return
    sizes = [int(s) for s in str(_env("SIZES", "1000000,3000000,10000000")).split(",") if s]
    workdir = Path(_env("DIR", str(FEATURES_DIR / "_bench_scale")))
    print(f"scale: on-disk {_env('FACTORY', 'IVF4096_HNSW32,PQ32')} over {_env('DIM', 256)}-d vectors at N = "
          f"{', '.join(f'{s:,}' for s in sizes)}; {os.cpu_count()} cores (shared machine: times are upper bounds)")
    points = []
    header = (f"{'N':>11} {'shards':>6} {'generate':>9} {'train':>7} {'add':>8} {'merge':>7} {'build':>8} {'index':>9} "
              f"{'peak anon':>10} {'peak RSS':>9} {'q/s':>7} {'R@10':>5} {'R@1':>5}")
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "imsim.benchmarks.bench_scale", "--point", str(n), str(workdir / str(n))],
                              capture_output=True, text=True, check=False)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("POINT ")), None)
        if proc.returncode or line is None:
            print(f"N={n:,} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            break
        p = json.loads(line[6:])
        points.append(p)
        if len(points) == 1:
            print(header)
        print(f"{p['n']:>11,} {p['shards']:>6} {p['generate_s']:>8.0f}s {p['train_s']:>6.0f}s {p['add_s']:>7.0f}s "
              f"{p['merge_s']:>6.1f}s {p['build_s']:>7.0f}s {_gb(p['index_disk_bytes']):>9} {_gb(p['peak_anon_bytes']):>10} "
              f"{_gb(p['peak_rss_bytes']):>9} {p['qps']:>7.0f} {p['recall_at_10_vs_exact']:>5.2f} "
              f"{p['recall_at_1_vs_exact']:>5.2f}", flush=True)
    if points:
        print(f"(nprobe={points[0]['nprobe']}, k={K}, {points[0]['threads']} threads; build = sample + train + add + "
              "merge; q/s: one batch of held-out queries on the memory-mapped index; R@k vs exact search on "
              f"{_env('RECALL_NQ', 100)} queries)")
        print("peak anonymous memory by N: " + ", ".join(f"{p['n']:,}: {_gb(p['peak_anon_bytes'])}" for p in points))
        extrapolated = extrapolate(points)
        print("POINTS " + json.dumps(points))
        return {"points": points, "extrapolated": extrapolated}
    return {"points": points}


if __name__ == "__main__":
    main()
