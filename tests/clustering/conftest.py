"""A tiny feature store: demo originals, their attacks, negatives and distractors, plus memes."""

import numpy as np
import pytest

from clustering.synthetic import planted_clusters
from extractor.store import store_path, write_features


@pytest.fixture
def feature_store(tmp_path):
    """Features of 12 originals x 9 attacks (planted clusters), 6 negatives, 6 distractors."""
    root = tmp_path / "Features"
    X, y = planted_clusters(12 * 10, 16, 12, spread=0.4, seed=5)
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    first = np.r_[True, y[1:] != y[:-1]]
    originals = [f"demo_original/{c}" for c in y[first]]
    attacks = [f"demo_attacks/{c}_attack_{i}" for i, c in enumerate(y) if not first[i]]
    rng = np.random.default_rng(0)
    write_features(store_path("demo_original", "m", root), originals, X[first], method="m")
    write_features(store_path("demo_attacks", "m", root), attacks, X[~first], method="m")
    write_features(store_path("demo_negatives", "m", root), [f"demo_negatives/x{i}_blur" for i in range(6)],
                   rng.standard_normal((6, 16)).astype(np.float32), method="m")  # fmt: skip
    write_features(store_path("demo_distractors", "m", root), [f"demo_distractors/d{i}" for i in range(6)],
                   rng.standard_normal((6, 16)).astype(np.float32), method="m")  # fmt: skip
    memes = ["Kaggle_memes/harold_a", "Kaggle_memes/harold_b", "Kaggle_memes/shrek_a", "Kaggle_memes/doge_a",
             "Kaggle_memes/doge_b", "Kaggle_memes/doge_c"]  # fmt: skip
    write_features(store_path("Kaggle_memes", "m", root), memes, rng.standard_normal((6, 16)).astype(np.float32), method="m")
    write_features(store_path("Kaggle_templates", "m", root), ["Kaggle_templates/harold", "Kaggle_templates/doge"],
                   rng.standard_normal((2, 16)).astype(np.float32), method="m")  # fmt: skip
    bits = np.packbits(rng.integers(0, 2, (6, 64)).astype(np.uint8), axis=1)
    write_features(store_path("demo_original", "h", root), originals[:6], bits, method="h", binary=True)
    return root
