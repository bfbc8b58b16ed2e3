# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The one table of quality measures: name, results.json key, report column, figure label, function.

`fast_search.results.score` (results.json), `fast_search.report` (summary.md/csv, figures, the
per-attack heat map) and `finetuning.copy_eval` (copy-detection rows) all read `MEASURES`, so a new
measure is one `Measure` entry here (and its function in `fast_search.metrics`).

A measure ``per_k`` is computed for each k of an experiment and stored as ``{"<k>": value}`` under its
key; its column and label take ``{k}``. A measure with a ``threshold`` key also returns the distance
threshold it was read at, stored under that key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fast_search import metrics as M


@dataclass(frozen=True)
class Measure:
    """One quality measure: where it is stored, how it is shown, how it is computed."""

    key: str  # results.json key of each run
    column: str  # summary.md / summary.csv / copy_eval column ({k} for per-k measures)
    label: str  # figure axis / legend label ({k} for per-k measures)
    compute: Callable[..., object]  # (D, I, positives, k) -> value, or (value, threshold) with `threshold`
    per_k: bool = False  # one value per k of the experiment (k given); else k = the largest k
    threshold: str | None = None  # results.json key of the threshold it returns

    def col(self, k: int | str | None = None) -> str:
        return self.column.format(k=k)

    def lab(self, k: int | str | None = None) -> str:
        return self.label.format(k=k)


def _fpr(fpr: float):
    return lambda D, I, p, k: M.recall_at_fpr(D, I, p, fpr)


MEASURES: tuple[Measure, ...] = (
    Measure("recall_at_k", "recall@{k}", "recall@{k}", M.recall_at_k, per_k=True),
    Measure("map_at_k", "mAP@{k}", "mAP@{k} (ILIAS)", M.map_at_k, per_k=True),
    Measure("oracle_at_k", "oracle@{k}", "oracle recall@{k} (ILIAS)", M.oracle_at_k, per_k=True),
    Measure("roc_auc", "ROC AUC", "area under the top-1 ROC", lambda D, I, p, k: M.roc_auc(D, I, p)),
    Measure("micro_ap", "micro-AP", "micro-AP (DISC21)", M.micro_average_precision),
    Measure("recall_at_fpr_1pct", "recall@1%FPR", "recall at 1 % FPR", _fpr(0.01),
            threshold="threshold_at_fpr_1pct"),
    Measure("recall_at_fpr_0.1pct", "recall@0.1%FPR", "recall at 0.1 % FPR", _fpr(0.001),
            threshold="threshold_at_fpr_0.1pct"),
    Measure("top1_recall_at_precision_90", "top-1 recall@P90", "top-1 recall at 90 % precision",
            lambda D, I, p, k: M.recall_at_precision(D, I, p, 0.9), threshold="top1_threshold_at_precision_90"),
    Measure("disc21_recall_at_precision_90", "DISC21 recall@P90", "recall at 90 % precision (DISC21)",
            lambda D, I, p, k: M.disc21_recall_at_precision(D, I, p, 0.9, k),
            threshold="disc21_threshold_at_precision_90"),
)
BY_KEY: dict[str, Measure] = {m.key: m for m in MEASURES}

#: (measure key, which k: "all" ks, "max" k or None) of the summary table, in column order.
SUMMARY: tuple[tuple[str, str | None], ...] = (
    ("recall_at_k", "all"),
    ("map_at_k", "max"),
    ("recall_at_fpr_1pct", None),
    ("micro_ap", None),
    ("disc21_recall_at_precision_90", None),
)
#: The measures of copy-detection rows (`finetuning.copy_eval`), with their k.
COPY_EVAL: tuple[tuple[str, int | None], ...] = (("recall_at_k", 1), ("recall_at_fpr_1pct", None), ("micro_ap", None))
#: Per-attack measures (results.json ``attacks``, the heat map): (name, column, label).
ATTACK_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("recall_at_1", "recall@1", "recall@1"),
    ("recall_at_10", "recall@10", "recall@10"),
    ("recall_at_fpr_1pct", "recall@1%FPR", "recall at 1 % FPR (global threshold)"),
)


def compute(measure: Measure, D: np.ndarray, I: np.ndarray, positives: np.ndarray, k: int) -> dict:
    """``{key: value}`` (and ``{threshold key: threshold}``) of one measure at k, plain Python floats."""
    value = measure.compute(D, I, positives, k)
    if measure.threshold is None:
        return {measure.key: value}
    return {measure.key: value[0], measure.threshold: value[1]}


def score_all(D: np.ndarray, I: np.ndarray, positives: np.ndarray, ks: list[int]) -> dict:
    """Every measure of `MEASURES` on one run's (D, I): per-k ones as ``{"<k>": value}``."""
    out: dict = {}
    for m in MEASURES:
        if m.per_k:
            out[m.key] = {str(k): m.compute(D, I, positives, k) for k in ks}
        else:
            out.update(compute(m, D, I, positives, max(ks)))
    return out


def summary_cells(run: dict, ks: list[int]) -> dict:
    """``{column: value}`` of the summary table (`SUMMARY`) for one results.json run."""
    out = {}
    for key, which in SUMMARY:
        m = BY_KEY[key]
        if not m.per_k:
            out[m.col()] = run.get(key)
            continue
        for k in ks if which == "all" else [max(ks)]:
            out[m.col(k)] = (run.get(key) or {}).get(str(k))
    return out


def copy_eval_row(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> dict:
    """``{column: value}`` of `COPY_EVAL` (k = width - 1 for pooled measures), thresholds included."""
    out = {}
    k_all = D.shape[1] - 1
    for key, k in COPY_EVAL:
        m = BY_KEY[key]
        values = compute(m, D, I, positives, k if k is not None else k_all)
        out[m.col(k)] = values[m.key]
        if m.threshold:
            out[m.threshold] = values[m.threshold]
    return out
