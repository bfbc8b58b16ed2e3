"""Tar input vs loose files (throughput), and peak memory of a 20,000- vs a 2,000-image extraction.

Both use dhash (decode-bound, cheap) on small generated JPEGs, through `extract_dataset`, so the
numbers measure the input path and the pipeline, not a model. Sizes from env vars:
BENCH_TARS_N=4000 images for throughput (best of BENCH_TARS_REPEAT=2 alternating runs),
BENCH_TARS_MEM_N=20000 (the small run is a tenth of it), BENCH_TARS_WORKERS=2, 1000 images a tar.
Each memory run is its own process: peak RSS of the main process, and of the largest worker when
the extractor decodes in processes (dHash decodes in threads, so the main process holds it all).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from helpers import atomic

PER_TAR = 1000
ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _jpeg(i: int, rng: np.random.Generator) -> bytes:
    from PIL import Image

    y, x = np.mgrid[0:48, 0:64]
    base = (x * (i % 7 + 1) + y * (i % 5 + 1) + i) % 256
    img = np.clip(base[..., None] + rng.integers(-20, 21, (48, 64, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_data(folder: Path, n: int) -> tuple[Path, Path]:
    """n JPEGs as loose files (files/) and as tars of PER_TAR images (tars/), same bytes."""
    files, tars = folder / "files", folder / "tars"
    files.mkdir(parents=True)
    tars.mkdir()
    rng = np.random.default_rng(0)
    images = [_jpeg(i, rng) for i in range(n)]
    for i, data in enumerate(images):
        atomic.write_bytes(files / f"{i}.jpg", data, durable=False)
    for start in range(0, n, PER_TAR):
        with atomic.atomic_path(tars / f"{start // PER_TAR:05d}.tar", durable=False) as tmp, \
                tarfile.open(tmp, "w") as tf:
            for i in range(start, min(start + PER_TAR, n)):
                for name, data in ((f"{i}.jpg", images[i]), (f"{i}.json", b"{}")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    return files, tars


def subset(src_files: Path, src_tars: Path, dst: Path, n: int) -> tuple[Path, Path]:
    """The first n images of a data set, as hard links (files) and symlinks (whole tars)."""
    files, tars = dst / "files", dst / "tars"
    files.mkdir(parents=True)
    tars.mkdir()
    for i in range(n):
        os.link(src_files / f"{i}.jpg", files / f"{i}.jpg")
    for t in range(-(-n // PER_TAR)):
        (tars / f"{t:05d}.tar").symlink_to(src_tars / f"{t:05d}.tar")
    return files, tars


def throughput(files: Path, tars: Path, features: Path, workers: int, repeat: int) -> dict:
    from data_retrieval.tars import load_tar_dataset
    from extractor import create_extractor, extract_dataset

    ext = create_extractor("dhash")
    n = len(os.listdir(files))
    best = {"files": float("inf"), "tars": float("inf")}
    for r in range(repeat):
        for kind in ("files", "tars"):
            start = time.perf_counter()
            source = files if kind == "files" else load_tar_dataset(tars, progress=False)
            extract_dataset(ext, source, features_root=features / f"{kind}{r}", workers=workers, batch_size=256,
                            progress=False)
            best[kind] = min(best[kind], time.perf_counter() - start)
    rate = {k: n / v for k, v in best.items()}
    print(f"throughput, dhash, {n} JPEGs 64x48, {workers} workers, best of {repeat}: "
          f"loose files {rate['files']:.0f} img/s, tars {rate['tars']:.0f} img/s, "
          f"ratio tars/files {rate['tars'] / rate['files']:.2f} (issue: >= 1)")
    return {"images": n, "workers": workers, "repeat": repeat, "best_s": best, "images_per_s": rate,
            "ratio_tars_files": rate["tars"] / rate["files"]}


_CHILD = """
import json, resource, sys
from data_retrieval.tars import load_tar_dataset
from extractor import create_extractor, extract_dataset
kind, source, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = load_tar_dataset(source, progress=False) if kind == "tars" else source
ext = create_extractor("dhash")
extract_dataset(ext, data, features_root=out, workers=workers, batch_size=256, progress=False)
print(json.dumps({"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "threaded": ext.threaded,
                  "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_memory(kind: str, source: Path, out: Path, workers: int) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _CHILD, kind, str(source), str(out), str(workers)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict:
    n, n_mem, workers = _env("BENCH_TARS_N", 4000), _env("BENCH_TARS_MEM_N", 20000), _env("BENCH_TARS_WORKERS", 2)
    repeat = _env("BENCH_TARS_REPEAT", 2)
    print(f"{os.cpu_count()} CPUs (shared with other jobs: compare ratios, not absolute numbers)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        big_files, big_tars = make_data(tmp / "big", max(n, n_mem))
        print(f"made {max(n, n_mem)} JPEGs in {time.perf_counter() - start:.1f} s")
        files, tars = subset(big_files, big_tars, tmp / "speed", n)
        out = {"throughput": throughput(files, tars, tmp / "F", workers, repeat), "peak_memory": {}}
        small_files, small_tars = subset(big_files, big_tars, tmp / "small", n_mem // 10)
        large_files, large_tars = subset(big_files, big_tars, tmp / "large", n_mem)
        for kind, small, large in (("files", small_files, large_files), ("tars", small_tars, large_tars)):
            a = peak_memory(kind, small, tmp / f"M{kind}s", workers)
            b = peak_memory(kind, large, tmp / f"M{kind}l", workers)
            out["peak_memory"][kind] = {"images": [n_mem // 10, n_mem], "maxrss_kib": [a, b]}
            line = (f"peak RSS, {kind}, {workers} {'threads' if a['threaded'] else 'workers'}: {n_mem // 10} images "
                    f"main {a['main'] / 1024:.0f} MiB; {n_mem} images main {b['main'] / 1024:.0f} MiB; ratio "
                    f"{n_mem}/{n_mem // 10}: main {b['main'] / a['main']:.3f} (+{(b['main'] - a['main']) / 1024:.0f} MiB)")
            if not a["threaded"]:
                line += (f"; largest worker {a['workers'] / 1024:.0f} / {b['workers'] / 1024:.0f} MiB, ratio "
                         f"{b['workers'] / max(a['workers'], 1):.3f}")
            print(line + " (issue: <= 1.10)")
    return out


if __name__ == "__main__":
    main()
