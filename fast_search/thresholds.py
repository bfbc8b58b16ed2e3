"""Duplicate thresholds calibrated on photographs: the default per method, and the one for a target precision.

``duplicate_thresholds.json`` (next to this file) records, for every method that runs offline, the
pair precision and recall at each threshold on a folder of photographs with known edited copies
(`data_retrieval.photo_duplicates`: originals, their quarter tiles as look-alike negatives, 16 edit
types), and the data it came from. The default threshold is the largest whose pair precision there
is at least `DEFAULT_PRECISION`; ``precision=0.99`` picks the largest reaching 0.99 instead.
Precision is a property of the folder too (more unrelated photos, more chances of a false match):
the recorded counts of positive and negative pairs say what it was measured against.

    python -m fast_search.thresholds [--methods phash,dhash,...]   # rebuild the set, rewrite the JSON
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from helpers import cli
from helpers.atomic import write_json

log = logging.getLogger(__name__)

RECORD = Path(__file__).with_name("duplicate_thresholds.json")
#: The precision the default thresholds reach on the calibration photographs.
DEFAULT_PRECISION = 0.95
#: Methods calibrated by `main` (every hash, and the neural model whose weights install offline).
CALIBRATED = ("phash", "dhash", "ahash", "whash", "efficientnet_lite0")
#: Threshold of a neural method without a calibration (cosine distance), with a warning.
UNCALIBRATED_NEURAL = 0.05
#: Cosine-distance grid of the float curves.
FLOAT_GRID = tuple(round(x, 4) for x in np.arange(0, 0.5001, 0.0025))


@functools.lru_cache(maxsize=1)
def load_record(path: str | os.PathLike = RECORD) -> dict:
    """The recorded calibration (``{"data": ..., "methods": {name: {...}}}``); empty if absent."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {"data": {}, "methods": {}}


def _base(method: str) -> str:
    return method.split("_exact")[0]


def threshold_for(method: str, binary: bool, n_bits: int = 64, precision: float | None = None) -> float:
    """The largest recorded threshold of `method` with pair precision >= `precision` (None: the default)."""
    target = DEFAULT_PRECISION if precision is None else precision
    if not 0 < target <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision!r}")
    methods = load_record()["methods"]
    base, scale = _base(method), 1.0
    if base not in methods and binary:  # phash_16: 256 bits -> 4x the 64-bit threshold
        for name in methods:
            if base.startswith(name + "_"):
                base, scale = name, n_bits / methods[name]["bits"]
                break
    if base not in methods:
        if binary:
            raise ValueError(f"no calibrated threshold for {method!r}: pass max_distance (Hamming bits)")
        log.warning("%s has no calibrated duplicate threshold: using cosine distance %s (pass max_distance)",
                    method, UNCALIBRATED_NEURAL)
        return UNCALIBRATED_NEURAL
    curve = methods[base]["curve"]  # [threshold, precision, recall], increasing thresholds
    reaching = [t for t, p, _ in curve if p >= target]
    if not reaching:
        log.warning("%s: no threshold reaches precision %s on the calibration photographs; using %s",
                    method, target, curve[0][0])
        best = curve[0][0]
    else:
        best = max(reaching)
    return round(best * scale) if binary else float(best)


# ---- calibration ---------------------------------------------------------------------------


def pair_curve(dist: np.ndarray, same: np.ndarray, thresholds) -> list[list[float]]:
    """[threshold, precision, recall] of the pairs (upper triangle) at each threshold."""
    iu = np.triu_indices(len(dist), 1)
    d, positive = dist[iu], same[iu]
    order = np.argsort(d, kind="stable")
    d, positive = d[order], positive[order]
    tp_cum = np.cumsum(positive)
    n_pos = int(positive.sum())
    out = []
    for t in thresholds:
        k = int(np.searchsorted(d, t + 1e-9, side="right"))
        tp = int(tp_cum[k - 1]) if k else 0
        precision = tp / k if k else 1.0
        out.append([float(t), round(precision, 4), round(tp / max(n_pos, 1), 4)])
    return out


def distances(features: np.ndarray, binary: bool) -> np.ndarray:
    """Full matrix of Hamming bits or cosine distances (a calibration folder is small)."""
    from fast_search.pairs import _words, normalise

    if binary:
        w = _words(np.asarray(features, np.uint8))
        return np.bitwise_count(w[:, None, :] ^ w[None, :, :]).sum(axis=2).astype(np.float64)
    x = normalise(features).astype(np.float64)
    return np.maximum(1.0 - x @ x.T, 0.0)


def calibrate(folder: str | os.PathLike, methods=CALIBRATED, features_root: str | os.PathLike | None = None) -> dict:
    """Curves of every method on a `data_retrieval.photo_duplicates` folder."""
    from data_retrieval.datasets import load_dataset
    from data_retrieval.photo_duplicates import read_truth
    from extractor import extract_dataset, load_features

    truth = {r["file"]: r["group"] for r in read_truth(folder)}
    listing = load_dataset(folder, name="calibration")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = features_root or tmp
        for method in methods:
            feats = load_features(extract_dataset(method, listing, features_root=root, workers=0, progress=False))
            path_of = dict(zip(listing.ids, listing.paths, strict=True))
            groups = np.array([truth[Path(path_of[str(i)]).name] for i in feats.ids])
            same = groups[:, None] == groups[None, :]
            dist = distances(feats.features, feats.binary)
            grid = range(0, feats.dim // 2 + 1) if feats.binary else FLOAT_GRID
            curve = pair_curve(dist, same, grid)
            iu = np.triu_indices(len(dist), 1)
            out[method] = {"metric": "hamming" if feats.binary else "cosine", "bits": feats.dim if feats.binary else None,
                           "positive_pairs": int(same[iu].sum()), "negative_pairs": int((~same[iu]).sum()),
                           "curve": curve}
            default = max([t for t, p, _ in curve if p >= DEFAULT_PRECISION], default=curve[0][0])
            at = next(c for c in curve if c[0] == default)
            out[method]["default"] = {"threshold": default, "precision": at[1], "recall": at[2]}
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m fast_search.thresholds",
                           description="Calibrate the duplicate thresholds on photographs; rewrite duplicate_thresholds.json.")
    p.add_argument("--methods", default=",".join(CALIBRATED), help="comma-separated extractor names")
    p.add_argument("--seed", type=cli.int_in(0, 2**63 - 1), default=0, help="seed of the photo set")
    p.add_argument("--out", default=str(RECORD), help="JSON to write")
    args = p.parse_args(argv)
    from data_retrieval import photo_duplicates

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        photo_duplicates.build(folder, seed=args.seed)
        rows = photo_duplicates.read_truth(folder)
        methods = calibrate(folder, [m for m in args.methods.split(",") if m])
    data = {
        "builder": f"python -m data_retrieval.photo_duplicates OUT --seed {args.seed}",
        "description": photo_duplicates.__doc__.strip().splitlines()[0],
        "images": len(rows), "originals": sum(r["role"] == "original" for r in rows),
        "copies": sum(r["role"] == "copy" for r in rows), "edits": sorted(photo_duplicates.EDITS),
        "commit": _commit(), "default_precision": DEFAULT_PRECISION,
    }
    write_json(args.out, {"data": data, "methods": methods}, indent=1)
    for name, m in methods.items():
        d = m["default"]
        print(f"{name}: threshold {d['threshold']} precision {d['precision']} recall {d['recall']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    cli.run(main)
