# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The experiment folder and its formats: names, run keys, scores as JSON, machine facts, exact cache.

``Results/<name>/results.json`` (schema ``fast_search.results/1``, documented in docs/fast_search.md),
``runs/<key>.npz`` (D, I), ``ids.npz`` and ``cache/exact_<metric>.npz`` (exact D, I plus a
fingerprint of the inputs, reused only when it matches). Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import sys
import zipfile
from pathlib import Path

import faiss
import numpy as np

from fast_search import metrics as M
from fast_search.metric_table import score_all
from helpers.atomic import save_npz
from helpers.cli import check_name
from helpers.digest import load_npz
from helpers.paths import RESULTS_DIR

log = logging.getLogger(__name__)

SCHEMA = "fast_search.results/1"


def experiment_dir(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> Path:
    """``results_root/name``; names must be plain folder names (no '/')."""
    return Path(results_root) / check_name(name, "experiment name")


def machine_info() -> dict:
    """CPU model, core count and platform, recorded with every experiment."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions() -> dict:
    import h5py
    import sklearn

    return {
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "sklearn": sklearn.__version__,
    }


def run_key(index: str, metric: str, param: str | None, value: int | None) -> str:
    """``"IVF64,Flat--cosine--nprobe=4"`` (the seed's ``factory--metric``, plus the sweep value)."""
    key = f"{index}--{metric}"
    return key if param is None else f"{key}--{param}={value}"


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=-]", "_", key) + ".npz"


def score(
    D: np.ndarray,
    I: np.ndarray,
    positives: np.ndarray,
    ks: list[int],
    categories: np.ndarray | None = None,
    instances: np.ndarray | None = None,
    attacks: np.ndarray | None = None,
) -> dict:
    """Every quality measure of one run's (D, I) (``max(ks) + 1`` columns), plain floats (None: undefined).

    The measures are those of `fast_search.metric_table.MEASURES`. `positives` is (nq,) targets or
    (nq, m) positives (`fast_search.metrics`); with `categories` (one label per query, "" for none)
    recall@k and mAP@k are also given per category (`per_category`; with `instances`, ILIAS's
    instance-first average); with `attacks` (the attack id that made each query, "" for none), the
    per-attack breakdown (`per_attack`).
    """
    out = score_all(D, I, positives, ks)
    if categories is not None:
        out["categories"] = per_category(D, I, positives, ks, categories, instances)
    if attacks is not None and any(str(a) for a in attacks):
        out["attacks"] = per_attack(D, I, positives, ks, attacks, out["threshold_at_fpr_1pct"])
    return _clean(out)


def _attack_scores(D, I, pos, ks, rows: np.ndarray, correct: np.ndarray, accepted: np.ndarray) -> dict:
    positive = (pos[rows] >= 0).any(axis=1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return {
        "n_positive": n_pos,
        "n_negative": n_neg,
        "recall_at_k": {str(k): M.recall_at_k(D[rows], I[rows], pos[rows], k) for k in ks},
        "recall_at_fpr_1pct": float((correct & accepted)[rows][positive].mean()) if n_pos else math.nan,
        "fpr_at_threshold_1pct": float(accepted[rows][~positive].mean()) if n_neg else math.nan,
    }


def per_attack(
    D: np.ndarray, I: np.ndarray, positives: np.ndarray, ks: list[int], attacks, threshold: float | None
) -> dict:
    """Per attack family and per attack id: recall@k and recall at the run's 1 % FPR threshold.

    ``{"threshold_at_fpr_1pct", "families": {family: scores}, "ids": {attack id: scores}}`` where
    scores are ``n_positive``, ``n_negative``, ``recall_at_k`` and ``recall_at_fpr_1pct``: the
    fraction of the family's positive queries whose top-1 is right and accepted at the threshold
    that gives 1 % FPR over *all* negative queries (one operating point for every family), plus
    ``fpr_at_threshold_1pct``: the fraction of the family's negative queries accepted there.
    Queries made by no known attack are left out.
    """
    from data_retrieval.attacks import attack_family

    attacks = np.array([str(a) for a in attacks], dtype=object)
    pos = M.as_positives(positives, len(I))
    correct = M.first_positive_rank(D, I, pos) == 1
    t = -math.inf if threshold is None or not np.isfinite(threshold) else float(threshold)
    accepted = np.asarray(D)[:, 0] <= t
    families = np.array([attack_family(a) if a else "" for a in attacks], dtype=object)
    out = {"threshold_at_fpr_1pct": threshold, "families": {}, "ids": {}}
    for part, labels in (("families", families), ("ids", attacks)):
        for name in sorted({str(v) for v in labels if v}):
            out[part][name] = _attack_scores(D, I, pos, ks, labels == name, correct, accepted)
    return out


def per_category(
    D: np.ndarray, I: np.ndarray, positives: np.ndarray, ks: list[int], categories, instances=None
) -> dict:
    """``{category: {"n_queries", "recall_at_k", "map_at_k", "map_at_k_per_query", ...}}`` per category.

    With `instances` (one per query, ILIAS's ground truth) ``map_at_k`` averages each instance's
    queries first, then the instances, as ILIAS does (``map_average: "instances"``); without, it is
    the mean over queries. ``map_at_k_per_query`` is always the mean over the category's queries.
    """
    categories = np.asarray(categories, dtype=object)
    pos = M.as_positives(positives, len(I))
    by_instance = instances is not None and any(str(i) for i in instances)
    out = {}
    for cat in sorted({str(c) for c in categories if c}):
        rows = categories == cat
        per_query = {str(k): M.map_at_k(D[rows], I[rows], pos[rows], k) for k in ks}
        entry = {
            "n_queries": int(rows.sum()),
            "recall_at_k": {str(k): M.recall_at_k(D[rows], I[rows], pos[rows], k) for k in ks},
            "map_at_k": per_query,
            "map_at_k_per_query": per_query,
            "map_average": "queries",
        }
        if by_instance:
            inst = np.asarray(instances, dtype=object)[rows]
            names = sorted({str(i) for i in inst})
            aps = {k: M.average_precision_at_k(D[rows], I[rows], pos[rows], k) for k in ks}
            means = {k: [np.nanmean(aps[k][inst == n]) for n in names if not np.isnan(aps[k][inst == n]).all()]
                     for k in ks}
            entry["map_at_k"] = {str(k): float(np.mean(v)) if v else math.nan for k, v in means.items()}
            entry["n_instances"] = len(names)
            entry["map_average"] = "instances"
        out[cat] = entry
    return out


#: A false-positive rate of f is reported only over at least this many negatives per 1 % of f
#: (1,000 for 1 % FPR: below that one or two false positives decide the figure); None otherwise.
MIN_NEGATIVES_PER_FPR = 10


def min_negatives(fpr: float) -> int:
    """Negatives needed before a figure at `fpr` is reported (1,000 at 1 %, 10,000 at 0.1 %)."""
    return int(round(MIN_NEGATIVES_PER_FPR / fpr))


def per_negative_kind(D: np.ndarray, I: np.ndarray, positives: np.ndarray, ks: list[int], kinds) -> dict:
    """``{kind: {"n_negative", every measure of `score`}}``: all positive queries with the negatives of one kind.

    `kinds` holds each query's negative kind ("" for positives and unknown kinds). A recall at an
    FPR is None when that kind has fewer than `min_negatives` negatives.
    """
    kinds = np.asarray(kinds, dtype=object)
    pos = M.as_positives(positives, len(I))
    positive = (pos >= 0).any(axis=1)
    out = {}
    for kind in sorted({str(k) for k, p in zip(kinds, positive, strict=True) if k and not p}):
        rows = positive | ((kinds == kind) & ~positive)
        n_negative = int((rows & ~positive).sum())
        measures = score(D[rows], I[rows], pos[rows], ks)
        for fpr in (0.01, 0.001):
            tag = f"{fpr * 100:g}pct"
            if n_negative < min_negatives(fpr) and f"recall_at_fpr_{tag}" in measures:
                measures[f"recall_at_fpr_{tag}"] = measures[f"threshold_at_fpr_{tag}"] = None
        out[kind] = {"n_negative": n_negative, **measures}
    return out


def _clean(value):
    """NaN and inf -> None so results.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def fingerprint(method: str, database: list[str], queries: list[str], metric: str, files: list[str]) -> str:
    """What exact results depend on: method, metric, datasets and the store files' modification times."""
    stamps = [f"{f}:{os.stat(f).st_size}:{os.stat(f).st_mtime_ns}" for f in files]
    return "|".join([method, metric, *database, *queries, *stamps])


def _redo(folder: Path) -> str:
    return f"rerun `python search_experiment.py {Path(folder).name} --overwrite`"


def load_run(folder: str | os.PathLike, run: dict) -> tuple[np.ndarray, np.ndarray]:
    """(D, I) of one run of results.json, checked against the sha256 recorded with it: a damaged,
    truncated or missing file is a `ChecksumError` (ValueError) naming it, never other numbers."""
    z = load_npz(Path(folder) / run["file"], run.get("sha256"), _redo(folder))
    if "D" not in z or "I" not in z:
        raise ValueError(f"{Path(folder) / run['file']} holds no D and I arrays; {_redo(folder)}")
    return z["D"], z["I"]


def load_ids(folder: str | os.PathLike, res: dict | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``ids.npz`` (query and database ids, targets, positives, categories), checked
    against ``ids_sha256`` of results.json when it records one."""
    return load_npz(Path(folder) / "ids.npz", (res or {}).get("ids_sha256"), _redo(folder))


def exact_cache_path(folder: Path, metric: str) -> Path:
    return Path(folder) / "cache" / f"exact_{metric}.npz"


def load_exact(path: Path, fingerprint: str, n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached exact (D, I) cut to k columns, or None when absent, stale or too short."""
    if not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) == fingerprint and z["I"].shape[1] >= k and z["I"].shape[0] == n_queries:
                return z["D"][:, :k], z["I"][:, :k]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # damaged: recompute it
        log.warning("%s is damaged (%s); computing exact results again", path, e)
    return None


def save_exact(path: Path, D: np.ndarray, I: np.ndarray, fingerprint: str) -> None:
    """Cache exact (D, I) with the fingerprint of its inputs (npz, no pickle)."""
    save_npz(path, D=D, I=I, fingerprint=np.array(fingerprint))


def list_experiments(results_root: str | os.PathLike = RESULTS_DIR) -> list[str]:
    """Names of the experiments under `results_root` (folders with a results.json), most recent first."""
    root = Path(results_root)
    found = [p.parent for p in root.glob("*/results.json")] if root.is_dir() else []
    return [p.name for p in sorted(found, key=lambda p: (-(p / "results.json").stat().st_mtime, p.name))]


def resolve_experiment(name: str | None, results_root: str | os.PathLike = RESULTS_DIR) -> str:
    """`name`, or the most recent experiment when None; FileNotFoundError says how to make one."""
    if name is not None:
        return name
    names = list_experiments(results_root)
    if not names:
        raise FileNotFoundError(f"no experiment under {results_root}: run `make demo` or "
                                "`python search_experiment.py NAME` first")
    return names[0]


def choose_experiment(name: str | None, results_root: str | os.PathLike, list_only: bool, prog: str) -> str | None:
    """For process.py / explore_neighbors.py: print the experiments and return None (``--list``), else the
    experiment to use (`name`, or the most recent one, said on stderr)."""
    if list_only:
        print("\n".join(list_experiments(results_root)) or f"no experiment under {results_root}")
        return None
    chosen = resolve_experiment(name, results_root)
    if name is None:
        print(f"{prog}: the most recent experiment, {chosen} (--list shows the others)", file=sys.stderr)
    return chosen
