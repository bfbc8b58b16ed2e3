"""Attack generator speed: images/s on all cores against one process (same inputs, same run), and the demo build.

Sizes via environment variables: BENCH_ATTACK_IMAGES (default 8 images of 512x384),
BENCH_ATTACK_WORKERS (default: every core), BENCH_DEMO_DISTRACTORS (default 5000; 0 skips the demo build).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from data_retrieval.attacks import ATTACK_IDS, apply_attack
from data_retrieval.demo import build_demo, procedural_image
from data_retrieval.generate_attacks import generate_attacks

N_IMAGES = int(os.environ.get("BENCH_ATTACK_IMAGES", 8))
WORKERS = int(os.environ.get("BENCH_ATTACK_WORKERS", 0)) or os.cpu_count() or 1
DEMO_DISTRACTORS = int(os.environ.get("BENCH_DEMO_DISTRACTORS", 5000))


def photo_like(i: int) -> Image.Image:
    """A 512x384 test picture (procedural, with grain so PNGs do not compress trivially)."""
    img = procedural_image(1000 + i, size=512).resize((512, 384))
    noise = np.random.default_rng(i).normal(0, 6, (384, 512, 1))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8), "RGB")


def time_generator(folder: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    report = generate_attacks(folder, out, workers=workers)
    elapsed = time.perf_counter() - start
    assert report.written == N_IMAGES * len(ATTACK_IDS), report.summary()
    return elapsed


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "in"
        folder.mkdir()
        for i in range(N_IMAGES):
            photo_like(i).save(folder / f"{i}.jpg", quality=92)

        img = photo_like(0)
        for attack_id in ATTACK_IDS:  # warm-up: lazy imports (skimage.filters.rank) and font loading
            apply_attack(img.resize((64, 48)), attack_id)
        per_attack = {}
        for attack_id in ATTACK_IDS:
            start = time.perf_counter()
            apply_attack(img, attack_id)
            per_attack[attack_id] = time.perf_counter() - start
        slowest = sorted(per_attack.items(), key=lambda kv: -kv[1])[:5]
        print(
            f"apply_attack, one 512x384 image: all 58 in {sum(per_attack.values()):.2f} s; slowest: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in slowest)
        )

        one = time_generator(folder, tmp / "one", 1)
        many = time_generator(folder, tmp / "many", WORKERS)
        print(f"generate_attacks, {N_IMAGES} images x 58 attacks (PNG written):")
        print(
            f"  1 process      : {one:6.2f} s  {N_IMAGES / one:6.2f} images/s  {N_IMAGES * 58 / one:7.1f} files/s"
        )
        print(
            f"  {WORKERS:2d} processes   : {many:6.2f} s  {N_IMAGES / many:6.2f} images/s  {N_IMAGES * 58 / many:7.1f} files/s"
        )
        print(f"  speed-up       : {one / many:.2f}x on {WORKERS} workers ({os.cpu_count()} cores)")
        out = {"apply_attack_s": per_attack, "images": N_IMAGES, "workers": WORKERS, "generate_1_process_s": one,
               f"generate_{WORKERS}_processes_s": many, "speedup": one / many}

        if DEMO_DISTRACTORS:
            start = time.perf_counter()
            counts = build_demo(tmp / "datasets", n_distractors=DEMO_DISTRACTORS, workers=WORKERS)
            built = time.perf_counter() - start
            start = time.perf_counter()
            build_demo(tmp / "datasets", n_distractors=DEMO_DISTRACTORS, workers=WORKERS)
            rerun = time.perf_counter() - start
            print(
                f"build_demo ({WORKERS} workers): {built:.1f} s for {counts}; rerun (nothing to do) {rerun:.2f} s"
            )
            out.update(build_demo_s=built, build_demo_rerun_s=rerun, build_demo_counts=counts)
    return out


if __name__ == "__main__":
    main()
