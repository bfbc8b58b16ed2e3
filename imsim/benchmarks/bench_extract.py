"""Extraction speed: files -> stored hashes vs an imagehash loop; ResNet-50 files -> store vs model alone / naive loop.

Sizes from env vars (small defaults while the CPU is shared; the issue's full run in brackets):
BENCH_EXTRACT_HASH_N=2000 JPEGs of 500x375, BENCH_EXTRACT_CNN_N=32 [512] for ResNet-50,
BENCH_EXTRACT_WORKERS=2, BENCH_EXTRACT_BATCH=16 (CNN batch), BENCH_EXTRACT_ROUNDS=2 (hashes and their
decode floor timed in interleaved rounds, best of each). Images go to a temporary folder:
procedural pictures with added noise, or with BENCH_EXTRACT_PHOTOS=1 random crops of scikit-image's
colour photographs (smaller files, less entropy to decode).
BENCH_EXTRACT_DEMO_DISTRACTORS=N (default 0: off; ~4 min with 1000) also builds the demo set with N
distractors and prints the recall@1/@10 of each hash, fast vs exact (issue: within 1 point).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from extractor import NeuralExtractor, create_extractor, extract_dataset, load_features
from helpers.images import load_image


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _make_jpegs(folder: Path, n: int, photos: bool = False) -> list[Path]:
    """n distinct ~500x375 JPEGs: procedural pictures plus noise, or crops of real photographs."""
    from PIL import Image

    from helpers.synthetic import synthetic_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sources = _photos() if photos else []
    paths = []
    for i in range(n):
        if photos:
            img = _photo_crop(sources[i % len(sources)], rng)
        else:
            img = np.asarray(synthetic_image(i, (500, 375)), dtype=np.int16)
            img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def _photos() -> list[np.ndarray]:
    import skimage.data as data

    return [data.astronaut(), data.coffee(), data.rocket(), data.chelsea(), data.hubble_deep_field(), data.retina(),
            data.immunohistochemistry()]


def _photo_crop(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 4:3 crop (50-100 % of the height) of `photo`, resized to 500x375."""
    from PIL import Image

    h, w = photo.shape[:2]
    ch = int(h * rng.uniform(0.5, 1.0))
    cw = min(w, int(ch * 4 / 3))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return np.asarray(Image.fromarray(photo[y : y + ch, x : x + cw]).resize((500, 375), Image.Resampling.BICUBIC))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _decode_floor(ext, paths: list[Path], threads: int) -> float:
    """Seconds (best of 3) for the libjpeg-turbo grey decode alone (file read included) of `paths` on
    `threads` threads, at the smallest DCT scale (1/8) for the grid hashes and at the scale it decodes
    for crop-resistant (which needs 300 px): the JPEG entropy decode no hasher that reads the file skips."""
    from concurrent.futures import ThreadPoolExecutor

    from helpers.images import MAX_PIXELS
    from helpers.jpeg import decode_grey

    size = ext.draft if ext.algorithm == "crop_resistant" else (1, 1)

    def decode(path: Path) -> None:
        decode_grey(path.read_bytes(), size, MAX_PIXELS)

    with ThreadPoolExecutor(max(threads, 1)) as pool:
        return min(_timed(lambda: list(pool.map(decode, paths, chunksize=32)))[1] for _ in range(3))


def _hash_row(name: str, reference, paths: list[Path], folder: Path, workers: int, root: Path) -> dict:
    """One row: imagehash loop vs fast (workers, in-process) vs exact, the decode floor (same files and
    threads), and the Hamming distances to imagehash."""
    from PIL import Image

    def run(**kwargs):
        exact = kwargs.pop("exact", False)
        return _timed(lambda: extract_dataset(create_extractor(name, exact=exact), folder, batch_size=32,
                                              progress=False, **kwargs))

    n = len(paths)
    bits, t_loop = _timed(lambda: np.stack([reference(Image.open(p)).reshape(-1) for p in paths]))
    t_fast = t_floor = float("inf")
    for _ in range(_env("BENCH_EXTRACT_ROUNDS", 2)):  # fast and its floor in interleaved rounds, best of each
        fast, t = run(features_root=root, workers=workers, overwrite=True)
        t_fast = min(t_fast, t)
        t_floor = min(t_floor, _decode_floor(create_extractor(name), paths, workers))
    _, t_one = run(features_root=root / "one", workers=0)
    exact, t_exact = run(features_root=root, workers=workers, exact=True)
    fast_bits = np.unpackbits(load_features(fast).features, axis=1)
    exact_bits = np.unpackbits(load_features(exact).features, axis=1)
    per64 = 64 / bits.shape[1]  # crop-resistant: 4 segments of 64 bits, reported per 64
    print(f"  {name}: imagehash loop {n / t_loop:7.0f} img/s | fast {n / t_fast:7.0f} img/s "
          f"({t_loop / t_fast:5.1f}x) | fast in-process {n / t_one:5.0f} img/s ({t_loop / t_one:4.1f}x) | "
          f"exact {n / t_exact:6.0f} img/s ({t_loop / t_exact:4.1f}x) | "
          f"decode floor {n / t_floor:5.0f} img/s ({t_loop / t_floor:4.1f}x; fast reaches "
          f"{t_floor / t_fast:.2f} of it{', goal >= 0.9' if name != 'crop_resistant' else ''}) | "
          f"mean Hamming fast-imagehash {(fast_bits != bits).sum(1).mean() * per64:.2f} bits of 64, "
          f"exact-imagehash {(exact_bits != bits).sum(1).mean() * per64:.2f}")
    return {"images": n, "imagehash_loop_s": t_loop, "fast_s": t_fast, "fast_in_process_s": t_one, "exact_s": t_exact,
            "decode_floor_s": t_floor, "speedup_fast": t_loop / t_fast, "speedup_in_process": t_loop / t_one,
            "floor_vs_imagehash": t_loop / t_floor, "fast_vs_floor": t_floor / t_fast, "mean_hamming_fast_per64": float((fast_bits != bits).sum(1).mean() * per64),
            "mean_hamming_exact_per64": float((exact_bits != bits).sum(1).mean() * per64)}


def bench_hashes(folder: Path, paths: list[Path], workers: int, root: Path, kind: str) -> dict:
    import imagehash

    def crop_resistant(img):
        segments = imagehash.crop_resistant_hash(img, limit_segments=4).segment_hashes
        return np.stack([segments[i % len(segments)].hash for i in range(4)])

    reference = {name: (lambda img, f=f: f(img).hash) for name, f in [
        ("ahash", imagehash.average_hash), ("phash", imagehash.phash), ("dhash", imagehash.dhash),
        ("whash", imagehash.whash)]}
    reference["crop_resistant"] = crop_resistant
    print(f"hashes: {len(paths)} JPEGs of 500x375, {kind} ({sum(p.stat().st_size for p in paths) / len(paths) / 1e3:.0f} KB "
          f"on average), {workers} workers, {os.cpu_count()} CPUs "
          "(targets: >= 10x the imagehash loop for a/p/d/wHash, >= 3x for crop-resistant; >= 0.9 of the decode "
          "floor, the grey libjpeg-turbo decode at 1/8 scale by itself on as many threads; Hamming <= 1.7 bits "
          "of 64)")
    rows = {}
    for name, func in reference.items():
        if name == "crop_resistant":  # imagehash takes ~0.1-0.2 s an image here: a subset
            n_cr = min(len(paths), _env("BENCH_EXTRACT_CR_N", 300))
            sub = root / "cr_subset"
            sub.mkdir(parents=True, exist_ok=True)
            for p in paths[:n_cr]:
                os.link(p, sub / p.name)
            rows[name] = _hash_row(name, func, paths[:n_cr], sub, workers, root / "cr")
        else:
            rows[name] = _hash_row(name, func, paths, folder, workers, root)
    return {"images": kind, "workers": workers, "rows": rows}

def bench_resnet(folder: Path, paths: list[Path], workers: int, batch: int, root: Path) -> dict:
    import torchvision

    n = len(paths)
    torch.manual_seed(0)
    ext = create_extractor("resnet50", weights=None)
    print(f"resnet50 (random init): {n} JPEGs, batch {batch}, {workers} workers, precision auto -> {ext.precision}, "
          f"{torch.get_num_threads()} torch threads")
    ready = ext.collate([ext.transform(load_image(p)) for p in paths[:batch]])
    ext(ready)  # warm-up
    n_batches = len(range(0, n, batch))
    _, t_before = _timed(lambda: [ext(ready) for _ in range(n_batches)])
    _, t_files = _timed(lambda: extract_dataset(ext, folder, features_root=root, batch_size=batch, workers=workers,
                                                progress=False))
    _, t_after = _timed(lambda: [ext(ready) for _ in range(n_batches)])  # before and after: CPU load drifts
    rate_model = n_batches * batch / ((t_before + t_after) / 2)
    rate_files = n / t_files

    naive_model = torchvision.models.resnet50().eval()
    naive_model.fc = torch.nn.Identity()
    preprocess = torchvision.models.ResNet50_Weights.DEFAULT.transforms()
    n_naive = min(n, 8)

    def naive():
        from PIL import Image

        with torch.no_grad():
            for p in paths[:n_naive]:
                naive_model(preprocess(Image.open(p).convert("RGB"))[None])

    _, t_naive = _timed(naive)
    rate_naive = n_naive / t_naive
    print(f"  model alone on ready uint8 tensors: {rate_model:6.1f} img/s")
    print(f"  files -> stored features:           {rate_files:6.1f} img/s  ({rate_files / rate_model:.2f} of model alone,"
          " target >= 0.85)")
    print(f"  naive fp32 single-process loop:     {rate_naive:6.1f} img/s  (pipeline {rate_files / rate_naive:.2f}x,"
          " target >= 3x)")
    small = paths[:8]
    images = [load_image(p) for p in small]
    fp32 = NeuralExtractor("a", ext.model, ext.preprocess, precision="fp32", dim=ext.dim).features(images)
    bf16 = NeuralExtractor("b", ext.model, ext.preprocess, precision="bf16", dim=ext.dim).features(images)
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    print(f"  mean cosine bf16 vs fp32 features: {cos.mean():.5f} (min {cos.min():.5f})")
    return {"images": n, "batch": batch, "workers": workers, "precision": ext.precision, "model_alone_img_s": rate_model,
            "files_to_store_img_s": rate_files, "naive_fp32_img_s": rate_naive, "cosine_bf16_fp32_mean": float(cos.mean()),
            "cosine_bf16_fp32_min": float(cos.min())}


def bench_demo_recall(tmp: Path, n_distractors: int, workers: int) -> dict:
    """Recall of fast vs exact hashes on the demo set (exact BFlat Hamming search, negatives included)."""
    from data_retrieval.demo import build_demo
    from fast_search import run_experiment

    database, queries = ["demo_original", "demo_distractors"], ["demo_attacks", "demo_negatives"]
    counts = build_demo(tmp / "D", n_distractors=n_distractors)
    print(f"demo set {counts}: recall@1 / recall@10, fast vs exact")
    recall = {}
    for name in ["ahash", "phash", "dhash", "whash"]:
        line = []
        for exact in (False, True):
            ext = create_extractor(name, exact=exact)
            for dataset in database + queries:
                extract_dataset(ext, dataset, tmp / "F", tmp / "D", batch_size=64, workers=workers, progress=False)
            res = run_experiment(f"r-{ext.name}", ext.name, database, queries, overwrite=True, metrics=["hamming"],
                                 indexes=["BFlat"], ks=[1, 10], features_root=tmp / "F", results_root=tmp / "R")
            rec = res["runs"][0]["recall_at_k"]
            recall[ext.name] = rec
            line.append(f"{ext.name} {100 * rec['1']:.2f} / {100 * rec['10']:.2f}")
        print("  " + " | ".join(line))
    return {"counts": counts, "recall_at_k": recall}


def bench_bf16_matmul(n: int = 512) -> dict:
    """Is bf16 native here? `precision="auto"` relies on the CPU flags; this shows the speed behind them."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y
        _, times[dtype] = _timed(lambda x=x, y=y: x @ y)
    ratio = times[torch.bfloat16] / times[torch.float32]
    print(f"matmul {n}x{n}: fp32 {times[torch.float32] * 1e3:.2f} ms, bf16 {times[torch.bfloat16] * 1e3:.2f} ms "
          f"(bf16 takes {ratio:.1f}x the fp32 time; cpu capability {torch.backends.cpu.get_cpu_capability()})")
    return {"n": n, "fp32_s": times[torch.float32], "bf16_s": times[torch.bfloat16], "bf16_over_fp32": ratio,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main() -> dict:
    out = {"bf16_matmul": bench_bf16_matmul()}
    n_hash = _env("BENCH_EXTRACT_HASH_N", 2000)
    n_cnn = _env("BENCH_EXTRACT_CNN_N", 32)
    workers = _env("BENCH_EXTRACT_WORKERS", 2)
    batch = _env("BENCH_EXTRACT_BATCH", 16)
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        tmp = Path(tmp)
        photos = bool(_env("BENCH_EXTRACT_PHOTOS", 0))
        paths = _make_jpegs(tmp / "jpegs", max(n_hash, n_cnn), photos=photos)
        if n_hash:
            sub = tmp / "hash_subset"
            sub.mkdir()
            for p in paths[:n_hash]:
                os.link(p, sub / p.name)
            out["hashes"] = bench_hashes(sub, paths[:n_hash], workers, tmp / "F",
                         "crops of photographs" if photos else "noisy procedural pictures")
        if n_cnn:
            sub = tmp / "cnn_subset"
            sub.mkdir()
            for p in paths[:n_cnn]:
                os.link(p, sub / p.name)
            out["resnet50"] = bench_resnet(sub, paths[:n_cnn], workers, batch, tmp / "F")
        n_demo = _env("BENCH_EXTRACT_DEMO_DISTRACTORS", 0)
        if n_demo:
            out["demo_recall"] = bench_demo_recall(tmp / "demo", n_demo, workers)
    return out


if __name__ == "__main__":
    main()
