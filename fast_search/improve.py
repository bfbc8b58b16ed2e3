# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Search-time improvements, each reported as its own row: alpha-QE, DBA, score normalisation, adaptation.

- **alpha-QE** (Radenović et al.): a query becomes ``normalise(q + sum_i s_i^alpha x_i)`` over its
  n nearest database vectors ``x_i`` (similarities ``s_i`` clipped at 0), then is searched again.
- **DBA**: the same weighted average applied to every database vector with its own neighbours.
- **Score normalisation** (SSCD): ``score - beta * mean similarity of the query to its n nearest
  images of a background set`` (SSCD: beta = 1, n = 3). In distances (smaller is closer) this is
  ``d + beta * mean background similarity``: a per-query shift, so rankings stay and pooled
  measures (micro-AP, thresholds) change. Hamming distances (hashes) are normalised the same way,
  their similarity being ``bits - d``: ``d - beta * mean background distance`` (equal up to a
  constant, which no measure sees). L2 and L1 distances are refused (`check_normalisable`).
- **Linear adaptation**: ``normalise(x W^T + b)`` for queries and database, with W (and b) from a
  ``.npy`` (W) or ``.npz`` (``weight``, optional ``bias``) file: the ``finetuning`` adaptation's
  linear layer or any learned matrix (ILIAS's linear adaptation is the same map).

QE and DBA need similarities: they apply to the ``cosine`` and ``IP`` metrics; score normalisation
also applies to ``hamming``. This is the one implementation: `finetuning.copy_eval` uses it too.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

SIMILARITY_METRICS = ("cosine", "IP")
NORMALISABLE_METRICS = (*SIMILARITY_METRICS, "hamming")


def check_normalisable(metric: str) -> None:
    """Refuse score normalisation for a metric it is not defined for, naming the ones it is."""
    if metric not in NORMALISABLE_METRICS:
        raise ValueError(
            f"score normalisation (--background) is defined for the metrics {NORMALISABLE_METRICS}, "
            f"not {metric!r}: drop --background or search with one of those metrics"
        )


def similarities(D: np.ndarray, metric: str) -> np.ndarray:
    """Distances of `fast_search.index` back to similarities (cosine: 1 - d, IP: -d)."""
    if metric == "cosine":
        return 1.0 - np.asarray(D, dtype=np.float32)
    if metric == "IP":
        return -np.asarray(D, dtype=np.float32)
    raise ValueError(
        f"query expansion and score normalisation need a similarity metric {SIMILARITY_METRICS}, got {metric!r}"
    )


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def alpha_qe(
    x: np.ndarray, xb: np.ndarray, D: np.ndarray, I: np.ndarray, metric: str, n: int = 2, alpha: float = 3.0
):
    """alpha-QE of the rows `x` from their first n results (D, I) into the database `xb`."""
    if n < 1:
        raise ValueError(f"query expansion needs n >= 1 neighbours, got {n}")
    n = min(n, I.shape[1])
    w = np.clip(similarities(D[:, :n], metric), 0, None) ** alpha
    w = np.where(I[:, :n] >= 0, w, 0.0)
    base = _normalise(np.asarray(x, dtype=np.float32)) if metric == "cosine" else np.asarray(x, np.float32)
    nb = np.asarray(xb, dtype=np.float32)[np.maximum(I[:, :n], 0)]
    if metric == "cosine":
        nb = _normalise(nb.reshape(-1, nb.shape[-1])).reshape(nb.shape)
    return _normalise(base + (w[:, :, None] * nb).sum(axis=1))


def score_normalise(D: np.ndarray, D_background: np.ndarray, metric: str, beta: float = 1.0, n: int = 3):
    """SSCD's normalisation in distances: ``D + beta * mean(similarity to the n nearest background items)``.

    Hamming: ``D - beta * mean(background distance)`` (similarity = bits - d, up to a constant).
    """
    check_normalisable(metric)
    D_background = np.asarray(D_background)
    if D_background.shape[0] != np.shape(D)[0] or D_background.shape[1] < n:
        raise ValueError(
            f"score normalisation needs >= {n} background distances for each of {np.shape(D)[0]} queries, "
            f"got {D_background.shape}"
        )
    if metric == "hamming":
        shift = -beta * D_background[:, :n].astype(np.float32).mean(axis=1, keepdims=True)
    else:
        shift = beta * similarities(D_background[:, :n], metric).mean(axis=1, keepdims=True)
    return (np.asarray(D, np.float32) + shift).astype(np.float32)


def load_adaptation(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (out, in), b or None) from ``.npy`` or ``.npz`` (keys ``weight``, optional ``bias``); no pickle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adaptation file {path} does not exist")
    try:
        if path.suffix == ".npy":
            W, b = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):  # an .npy under another name
                    raise ValueError("an array, not an .npz archive")
                if "weight" not in z:
                    raise ValueError(
                        f"{path}: an adaptation .npz needs a 'weight' array (out, in), has {list(z)}"
                    )
                W, b = z["weight"], z["bias"] if "bias" in z else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path} is not an adaptation file (a .npy array W, or an .npz with 'weight' and "
                         f"optional 'bias', written without pickle): {' '.join(str(e).split()) or type(e).__name__}"
                         ) from None
    if W.ndim != 2 or (b is not None and b.shape != (W.shape[0],)):
        raise ValueError(
            f"{path}: weight must be (out, in) and bias (out,), got {W.shape} and {getattr(b, 'shape', None)}"
        )
    return W.astype(np.float32), None if b is None else b.astype(np.float32)


def adapt(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``normalise(x W^T + b)``; the error names both widths when they do not match."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] != W.shape[1]:
        raise ValueError(f"the adaptation expects {W.shape[1]}-d features, the store holds {x.shape[1]}-d")
    y = x @ W.T
    return _normalise(y if b is None else y + b)
