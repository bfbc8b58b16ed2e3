# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Copy-detection evaluation of a descriptor on attacks that training never saw, with and without score normalisation.

The honest split: training images are disjoint from every evaluation image (paths and contents
checked), and the evaluation keeps only queries made by attack families that no step of the
training policy imitates (`heldout_attack_ids`). Both are written to ``Results/<run>/split.json``.

Scores (`fast_search.metrics`, ties counted the DISC21 way): recall@1, recall at 1 % FPR
(negative queries are the attacked images whose original is not in the database) and DISC21's
micro-AP over the first 10 results. Score normalisation (SSCD): a query's similarities are
lowered by ``beta`` x its mean similarity to its ``n`` nearest images of a background set
disjoint from the database (here: training images), so a query lying in a dense region must be
closer to be accepted. The evaluation runs through fast_search's one path: its exact search, its
measures (`fast_search.metric_table`) and its one score normalisation
(`fast_search.improve.score_normalise`, which normalises Hamming distances too and refuses other
distances with a message). Ranking within a query is unchanged, so recall@1 is too; thresholds
over all queries (FPR, micro-AP) change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_retrieval.attacks import ATTACK_IDS, attack_family, query_attack
from data_retrieval.datasets import load_dataset
from helpers.atomic import save_figure
from helpers.jsonio import load_json, save_json
from helpers.paths import DATASETS_DIR, FEATURES_DIR
from helpers.tables import write_csv

log = logging.getLogger(__name__)

FPR = 0.01


def heldout_attack_ids(covered_families: Sequence[str]) -> list[str]:
    """Catalogue attack ids whose family no training step imitates."""
    covered = set(covered_families)
    return [a for a in ATTACK_IDS if attack_family(a) not in covered]


def check_disjoint(train_paths: Sequence[os.PathLike], eval_paths: Sequence[os.PathLike]) -> dict:
    """Raise ValueError when a training image is also an evaluation image (same file or same bytes)."""
    from finetuning.protocol import check_disjoint as check

    return check(train_paths, eval_paths)


def eval_image_paths(datasets: Sequence[str], root: str | os.PathLike = DATASETS_DIR) -> list[Path]:
    """Every image file of the evaluation datasets (registered names or folders)."""
    paths: list[Path] = []
    for name in datasets:
        paths += load_dataset(name, root=root).paths
    return paths


def write_split(
    cfg: Any, train_paths: Sequence[os.PathLike], policy: Any, path: str | os.PathLike,
    train_families: Sequence[str] | None = None,
) -> dict:
    """Check and record the split of a training run (any recipe): training images and attack families vs evaluation.

    Training images must share no file and no bytes with any evaluation image; the families
    training applies (`train_families`, default ``policy.covers()``) are recorded, and only the
    others are scored (`finetuning.protocol.check_attacks` verifies it per query at scoring time).
    """
    from finetuning.protocol import heldout_families

    eval_sets = [*cfg.eval_database, *cfg.eval_queries]
    try:
        eval_paths = eval_image_paths(eval_sets, cfg.datasets_root)
    except Exception as err:  # evaluation data not built yet: record the training side only
        log.warning("split: evaluation datasets unavailable (%s); disjointness not checked", err)
        eval_paths = None
    checked = check_disjoint(train_paths, eval_paths) if eval_paths is not None else None
    covered = sorted(train_families) if train_families is not None else policy.covers()
    split = {
        "train": {
            "datasets": cfg.dataset if isinstance(cfg.dataset, list) else [cfg.dataset],
            "n_images": len(train_paths),
            "paths_sha1": hashlib.sha1("\n".join(sorted(str(p) for p in train_paths)).encode()).hexdigest(),
            "policy": policy.describe() if hasattr(policy, "describe") else type(policy).__name__,
            "families": covered,
            "seed": getattr(cfg, "seed", None),
        },
        "eval": {
            "database": list(cfg.eval_database),
            "queries": list(cfg.eval_queries),
            "n_images": None if eval_paths is None else len(eval_paths),
            "attacks": cfg.eval_attacks,
            "heldout_families": heldout_families(covered),
            "heldout_attack_ids": heldout_attack_ids(covered),
        },
        "disjoint_images_checked": eval_paths is not None,
        "disjointness": checked,
    }
    save_json(split, path)
    return split


def copy_metrics(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> dict[str, float]:
    """The copy-detection measures of `fast_search.metric_table.COPY_EVAL` (recall@1, recall at 1 % FPR
    and its threshold, micro-AP over k = width - 1), named by the table's report columns."""
    from fast_search.metric_table import copy_eval_row

    return copy_eval_row(D, I, positives)


def evaluate_method(
    method: str,
    database: Sequence[str],
    queries: Sequence[str],
    attack_ids: Sequence[str] | None = None,
    background: str | None = None,
    features_root: str | os.PathLike = FEATURES_DIR,
    k: int = 10,
    beta: float = 1.0,
    n_background: int = 3,
) -> dict[str, Any]:
    """Scores of stored features `method`: queries made by `attack_ids` only (None: all), raw and normalised.

    Exact search (cosine for float features, Hamming for hashes) through `fast_search`.
    `background` is a dataset whose stored features give the score normalisation.
    """
    from extractor.store import load_features
    from fast_search.block import array_blocks, block_search
    from fast_search.data import load_search_data
    from fast_search.improve import score_normalise

    data = load_search_data(method, list(database), list(queries), features_root)
    metric = "hamming" if data.binary else "cosine"
    keep = np.ones(len(data.query_ids), dtype=bool)
    if attack_ids is not None:
        wanted = set(attack_ids)
        keep = np.array([query_attack(q) in wanted for q in data.query_ids])
    xq, positives = data.queries[keep], data.positives[keep]
    if not len(xq):
        raise ValueError(f"no query of {list(queries)} was made by the attacks {sorted(attack_ids or [])[:5]}...")
    width = min(k + 1, len(data.database))  # one extra column: ties at the k-th are counted whole
    D, I, _ = block_search(xq, array_blocks(data.database), width, metric, total=len(data.database))
    is_positive = (positives >= 0).any(axis=1)
    out: dict[str, Any] = {
        "method": method,
        "metric": metric,
        "n_queries": int(len(xq)),
        "n_positive": int(is_positive.sum()),
        "n_negative": int((~is_positive).sum()),
        "n_database": int(len(data.database)),
        "raw": copy_metrics(D, I, positives),
    }
    if background is not None:
        bg = load_features(background, method, features_root).features
        n_bg = min(n_background, len(bg))
        bg_D, _, _ = block_search(xq, array_blocks(bg), n_bg, metric, total=len(bg))
        out["normalized"] = copy_metrics(score_normalise(D, bg_D, metric, beta, n_bg), I, positives)
        out["n_background"] = int(len(bg))
    return out


def flat_row(result: dict[str, Any]) -> dict[str, Any]:
    """One flat row (raw and normalised scores side by side) of an `evaluate_method` result."""
    row = {k: v for k, v in result.items() if not isinstance(v, dict)}
    for part in ("raw", "normalized"):
        for key, value in result.get(part, {}).items():
            row[f"{key}{'' if part == 'raw' else ' (norm)'}"] = value
    return row


def extract_for_eval(ext, cfg: Any, background_limit: int | None = None, workers: int = 0, batch_size: int = 64) -> str | None:
    """Extract `ext` on the evaluation datasets and on the background (the first training dataset); its name."""
    from extractor.pipeline import extract_dataset

    for dataset in [*cfg.eval_database, *cfg.eval_queries]:
        extract_dataset(ext, dataset, cfg.features_root, cfg.datasets_root, batch_size=batch_size, workers=workers)
    limit = cfg.eval_background if background_limit is None else background_limit
    if not limit:
        return None
    first = cfg.dataset if isinstance(cfg.dataset, str) else cfg.dataset[0]
    listing = load_dataset(first, root=cfg.datasets_root) if not Path(first).is_dir() else load_dataset(first, recursive=True)
    extract_dataset(ext, listing, cfg.features_root, cfg.datasets_root, batch_size=batch_size, workers=workers,
                    limit=min(limit, len(listing)))  # fmt: skip
    return listing.name


def evaluate_epoch(cfg: Any, epoch: int, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Score one checkpoint of an SSCD run; appends to ``Results/<run>/copy_eval.{json,csv}`` and redraws the figure."""
    import torch

    from extractor.sscd import create_sscd

    results = Path(cfg.results_root) / cfg.name
    split = load_json(results / "split.json")
    ext = create_sscd(checkpoint, device="cuda" if torch.cuda.is_available() else "cpu")
    background = extract_for_eval(ext, cfg, workers=0)
    attack_ids = split["eval"]["heldout_attack_ids"] if cfg.eval_attacks == "heldout" else None
    res = evaluate_method(ext.name, cfg.eval_database, cfg.eval_queries, attack_ids, background, cfg.features_root)
    row = {"epoch": epoch, **flat_row(res)}
    path = results / "copy_eval.json"
    rows = [r for r in (load_json(path) if path.is_file() else []) if r["epoch"] != epoch]
    rows = sorted([*rows, row], key=lambda r: r["epoch"])
    save_json(rows, path)
    write_csv(rows, results / "copy_eval.csv")
    plot_copy_eval(rows, results / "copy_eval.png")
    log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
    return row


def plot_copy_eval(rows: list[dict], path: str | os.PathLike) -> None:
    """recall@1, recall at 1 % FPR and micro-AP against epoch; dashed: with score normalisation."""
    from matplotlib.figure import Figure  # the object API: no backend, no global pyplot state

    from fast_search.metric_table import BY_KEY, COPY_EVAL

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    epochs = [r["epoch"] for r in rows]
    for (name, k), colour in zip(COPY_EVAL, ("tab:blue", "tab:red", "tab:green"), strict=False):
        key, label = BY_KEY[name].col(k), BY_KEY[name].lab(k)
        ax.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", color=colour, label=label)
        if any(f"{key} (norm)" in r for r in rows):
            ax.plot(epochs, [r.get(f"{key} (norm)", np.nan) for r in rows], marker="o", ls="--", color=colour,
                    label=f"{label}, score-normalised")  # fmt: skip
    ax.set(xlabel="epoch", ylabel="score", title="copy detection on held-out attacks", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
