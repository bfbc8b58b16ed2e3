"""Small feature stores for the fast_search tests, written with extractor.store.write_features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extractor.store import store_path, write_features

DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]


def make_stores(
    root: Path,
    method: str = "feat",
    dim: int = 16,
    n_orig: int = 20,
    n_distractors: int = 100,
    copies: int = 2,
    n_negatives: int = 6,
    binary: bool = False,
    seed: int = 0,
) -> Path:
    """Write demo_* stores: originals, distractors, noisy copies of the originals, unrelated negatives."""
    rng = np.random.default_rng(seed)
    if binary:
        orig = rng.integers(0, 256, (n_orig, dim // 8), dtype=np.uint8)
        dist = rng.integers(0, 256, (n_distractors, dim // 8), dtype=np.uint8)
        flips = rng.random((n_orig * copies, dim)) < 0.05
        att = np.packbits(np.unpackbits(np.repeat(orig, copies, 0), axis=1) ^ flips, axis=1)
        neg = rng.integers(0, 256, (n_negatives, dim // 8), dtype=np.uint8)
    else:
        orig = rng.normal(size=(n_orig, dim)).astype(np.float32)
        dist = rng.normal(size=(n_distractors, dim)).astype(np.float32)
        att = np.repeat(orig, copies, 0) + 0.4 * rng.normal(size=(n_orig * copies, dim)).astype(np.float32)
        neg = rng.normal(size=(n_negatives, dim)).astype(np.float32)
    kw = {"method": method, "binary": binary}
    if binary:
        kw["dim"] = dim
    write_features(
        store_path("demo_original", method, root), [f"demo_original/{i}" for i in range(n_orig)], orig, **kw
    )
    write_features(
        store_path("demo_distractors", method, root),
        [f"demo_distractors/{i}" for i in range(n_distractors)],
        dist,
        **kw,
    )
    ids = [f"demo_attacks/{i // copies}_attack{i % copies}" for i in range(n_orig * copies)]
    write_features(store_path("demo_attacks", method, root), ids, att, **kw)
    ids = [f"demo_negatives/{1000 + i}_attack0" for i in range(n_negatives)]
    write_features(store_path("demo_negatives", method, root), ids, neg, **kw)
    return root


@pytest.fixture
def stores(tmp_path: Path) -> Path:
    """Float stores (dim 16) under tmp_path/Features."""
    return make_stores(tmp_path / "Features")


@pytest.fixture
def binary_stores(tmp_path: Path) -> Path:
    """64-bit hash stores under tmp_path/Features."""
    return make_stores(tmp_path / "Features", method="hash", dim=64, binary=True)
