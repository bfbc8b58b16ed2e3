"""Seeded synthetic features with planted clusters, for tests, benchmarks and demos."""

from __future__ import annotations

import numpy as np


def planted_clusters(
    n_samples: int,
    n_features: int,
    n_clusters: int,
    spread: float = 0.3,
    seed: int = 0,
    imbalance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, d), labels) of `n_clusters` Gaussian blobs around unit-norm random centres.

    Each point is its centre plus isotropic noise of total norm about `spread` (relative to the
    centres' norm 1), so ``spread`` < ~0.5 keeps clusters well apart. ``imbalance`` > 0 draws
    cluster sizes from a Dirichlet with concentration ``1 / imbalance`` (0 = equal sizes).
    """
    if n_clusters < 1 or n_clusters > n_samples:
        raise ValueError(f"n_clusters must be between 1 and n_samples={n_samples}, got {n_clusters}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, n_features)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if imbalance > 0:
        weights = rng.dirichlet(np.full(n_clusters, 1.0 / imbalance))
        sizes = 1 + rng.multinomial(n_samples - n_clusters, weights)
    else:
        sizes = np.full(n_clusters, n_samples // n_clusters)
        sizes[: n_samples - sizes.sum()] += 1
    labels = rng.permutation(np.repeat(np.arange(n_clusters), sizes))
    X = np.empty((n_samples, n_features), dtype=np.float32)
    step = max(1, (64 << 20) // (4 * n_features))
    for start in range(0, n_samples, step):  # bounded temporaries at large sizes
        stop = min(start + step, n_samples)
        noise = rng.standard_normal((stop - start, n_features), dtype=np.float32)
        X[start:stop] = centres[labels[start:stop]] + noise * (spread / np.sqrt(n_features))
    return X, labels
