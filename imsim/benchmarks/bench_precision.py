"""bf16 against fp32 on a CPU: how far reduced precision moves EfficientNet-Lite0's features.

The demo's photographs and some of their attacked copies (BENCH_PRECISION_ATTACKS attack ids,
default 5: 23 originals + 115 copies = 138 images) are embedded twice by the same extractor, once
in fp32 and once in bf16; prints the min / mean / percentiles of the per-image cosine and how long
each took. Skipped (with a line saying so) where the CPU has no native bf16 (AVX512-BF16 / AMX).
"""

from __future__ import annotations

import os
import time

import numpy as np

from data_retrieval.attacks import ATTACK_IDS, apply_attack
from data_retrieval.demo import HELD_OUT, available_photos, downscale
from extractor import create_extractor
from extractor.neural import cpu_has_native_bf16
from helpers.images import load_image

N_ATTACKS = int(os.environ.get("BENCH_PRECISION_ATTACKS", 5))
METHOD = os.environ.get("BENCH_PRECISION_METHOD", "efficientnet_lite0")


def demo_images(n_attacks: int = N_ATTACKS) -> list:
    """The demo originals and their first copies under `n_attacks` attack ids spread over the catalogue."""
    ids = ATTACK_IDS[:: max(1, len(ATTACK_IDS) // max(1, n_attacks))][:n_attacks]
    images = []
    for stem, path in available_photos():
        if stem in HELD_OUT:
            continue
        img = downscale(load_image(path))
        images.append(img)
        images += [apply_attack(img, a, seed=0) for a in ids]
    return images


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def main() -> dict:
    if not cpu_has_native_bf16():
        print("this CPU has no native bf16 (avx512_bf16 / amx): nothing to measure")
        return {"native_bf16": False}
    images = demo_images()
    ext = create_extractor(METHOD, precision="fp32")
    feats, seconds = {}, {}
    for precision in ("fp32", "bf16", "fp32"):  # fp32 twice: the second run shows fp32's own repeatability
        ext.to(precision=precision)
        start = time.perf_counter()
        out = np.concatenate([ext.features(images[i : i + 32]) for i in range(0, len(images), 32)])
        seconds.setdefault(precision, round(time.perf_counter() - start, 2))
        print(f"{METHOD} {precision}: {len(images)} images in {time.perf_counter() - start:.1f} s")
        feats.setdefault(precision, []).append(out)
    cos = cosine_rows(feats["fp32"][0], feats["bf16"][0])
    again = cosine_rows(feats["fp32"][0], feats["fp32"][1])
    q = np.percentile(cos, [1, 5, 50])
    print(f"cosine(bf16, fp32) over {len(cos)} demo images: min {cos.min():.4f}, mean {cos.mean():.5f}, "
          f"p1 {q[0]:.4f}, p5 {q[1]:.4f}, median {q[2]:.5f}; fp32 against itself: min {again.min():.6f}")
    return {"native_bf16": True, "method": METHOD, "n_images": len(cos), "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()), "p1": float(q[0]), "median": float(q[2]),
            "fp32_repeat_min_cosine": float(again.min()), "seconds": seconds}


if __name__ == "__main__":
    main()
