# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Figures and summary tables of an experiment written by `run_experiment`.

Plain matplotlib (Agg canvas, no LaTeX); every figure is saved as PNG and PDF in the experiment
folder. The curves are recomputed from each run's ``runs/<key>.npz`` (D, I) and ``ids.npz``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fast_search import metrics as M
from fast_search.results import SCHEMA, experiment_dir
from helpers.atomic import save_figure, write_text
from helpers.jsonio import load_json
from helpers.paths import RESULTS_DIR
from helpers.tables import markdown_table, write_csv

_MARKERS = {"cosine": "*", "L2": "o", "L1": "x", "IP": "s", "hamming": "*"}


def load_results(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> dict:
    """results.json of experiment `name`; FileNotFoundError says how to make it."""
    path = experiment_dir(name, results_root) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}; run `python search_experiment.py {name}` first")
    try:
        res = load_json(path)
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({e}); rerun search_experiment.py {name} --overwrite") from None
    missing = [k for k in ("schema", "params", "data", "runs") if not isinstance(res, dict) or k not in res]
    if missing:
        raise ValueError(f"{path} is not a search experiment's results (missing {missing}); rerun "
                         f"search_experiment.py {name} --overwrite")
    if res["schema"] != SCHEMA:
        raise ValueError(f"{path} has schema {res['schema']!r}, this version reads {SCHEMA!r}")
    return res


def _fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_columns(res: dict) -> list[str]:
    """Columns of the summary: recall@k for the experiment's own k values, mAP@(largest k), pooled measures."""
    ks = sorted(int(k) for k in res["params"]["ks"])
    return [
        "method",
        "index",
        *[f"recall@{k}" for k in ks],
        f"mAP@{ks[-1]}",
        "recall@1%FPR",
        "micro-AP",
        "DISC21 recall@P90",
        "queries/s",
    ]


def summary_rows(name_or_results: str | dict, results_root: str | os.PathLike = RESULTS_DIR) -> list[dict]:
    """One row per run with the columns of `summary_columns` (recall@k for each k of the experiment)."""
    res = (
        name_or_results if isinstance(name_or_results, dict) else load_results(name_or_results, results_root)
    )
    ks = sorted(int(k) for k in res["params"]["ks"])
    rows = []
    for run in res["runs"]:
        row = {"method": res["data"]["method"], "index": run["key"]}
        row.update({f"recall@{k}": run["recall_at_k"].get(str(k)) for k in ks})
        row[f"mAP@{ks[-1]}"] = run["map_at_k"].get(str(ks[-1]))
        row["recall@1%FPR"] = run.get("recall_at_fpr_1pct")
        row["micro-AP"] = run.get("micro_ap")
        row["DISC21 recall@P90"] = run.get("disc21_recall_at_precision_90")
        row["queries/s"] = run.get("queries_per_s")
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `summary_rows` (readable in a terminal too); columns are the rows' keys."""
    if not rows:
        return "(no runs)"
    return markdown_table(rows, list(rows[0]), lambda c, v: _fmt(v, 0) if c == "queries/s" and v is not None else _fmt(v))


def write_summary(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> list[Path]:
    """``summary.md`` and ``summary.csv`` beside results.json."""
    folder = experiment_dir(name, results_root)
    rows = summary_rows(name, results_root)
    md = folder / "summary.md"
    write_text(md, f"# {name}\n\n{format_table(rows)}\n")
    path = write_csv(rows, folder / "summary.csv", summary_columns(load_results(name, results_root)))
    return [md, path]


def _run_arrays(folder: Path, run: dict) -> tuple[np.ndarray, np.ndarray]:
    with np.load(folder / run["file"], allow_pickle=False) as z:
        return z["D"], z["I"]


def _targets(folder: Path) -> np.ndarray:
    """Each query's positives ((nq, m), -1 padded; older experiments: (nq,) targets)."""
    with np.load(folder / "ids.npz", allow_pickle=False) as z:
        return z["positives"] if "positives" in z else z["targets"]


def _negative(targets: np.ndarray) -> np.ndarray:
    return ~(M.as_positives(targets, len(targets)) >= 0).any(axis=1)


def _representative(runs: list[dict]) -> list[dict]:
    """One run per (index, metric, variant): the exact one, or the largest sweep value (most accurate)."""
    best: dict[tuple[str, str, str], dict] = {}
    for run in runs:
        key = (run["index"], run["metric"], run.get("variant", ""))
        if key not in best or (run["value"] or 0) > (best[key]["value"] or 0):
            best[key] = run
    return list(best.values())


def _save(fig: Figure, folder: Path, stem: str) -> list[Path]:
    fig.tight_layout()
    out = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    save_figure(fig, out[0], dpi=120)
    save_figure(fig, out[1])
    return out


def _label(run: dict) -> str:
    """Index, metric, its nprobe / efSearch and search-time improvements: the run a curve shows."""
    label = f"{run['index']} {run['metric']}"
    if run.get("param"):
        label += f" {run['param']}={run['value']}"
    return label + (f" +{run['variant']}" if run.get("variant") else "")


def plot_time_recall(res: dict, folder: Path) -> list[Path]:
    """Search time vs recall@k_min: IVF curves over nprobe, HNSW over efSearch, exact indexes as points."""
    k = str(min(int(k) for k in res["params"]["ks"]))
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in res["runs"]:
        groups.setdefault((run["index"], run["metric"], run.get("variant", "")), []).append(run)
    for i, ((index, metric, variant), runs) in enumerate(groups.items()):
        name = f"{index} {metric}" + (f" +{variant}" if variant else "")
        runs = sorted(runs, key=lambda r: r["value"] or 0)
        x = [r["recall_at_k"][k] or 0 for r in runs]
        y = [r["search_time_s"] for r in runs]
        style = {"color": f"C{i % 10}", "marker": _MARKERS.get(metric, "o")}
        if runs[0]["param"] is None:
            ax.scatter(x, y, s=80, label=name, **style)
        else:
            values = ", ".join(str(r["value"]) for r in runs)
            ax.plot(
                x,
                y,
                linestyle="--" if "HNSW" in index else "-",
                label=f"{name} ({runs[0]['param']} {values})",
                **style,
            )
            for r, xi, yi in zip(runs, x, y, strict=False):
                ax.annotate(
                    f"{r['param']}={r['value']}",
                    (xi, yi),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel(f"search time for {res['data']['n_queries']} queries (s)")
    ax.set_yscale("log")
    ax.set_title(f"{res['name']}: search time vs recall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder, "time_recall")


def plot_recall_k(res: dict, folder: Path, targets: np.ndarray) -> list[Path]:
    """recall@k for k = 1..k_max, one line per (index, metric)."""
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    for run in _representative(res["runs"]):
        D, I = _run_arrays(folder, run)
        ks = np.arange(1, int(run["k"]) + 1)
        ax.plot(
            ks,
            [M.recall_at_k(D, I, targets, int(k)) for k in ks],
            marker=_MARKERS.get(run["metric"], "o"),
            label=_label(run),
        )
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title(f"{res['name']}: recall@k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder, "recall_at_k")


def plot_roc_pr(res: dict, folder: Path, targets: np.ndarray) -> list[Path]:
    """ROC (recall vs FPR, log x) and precision-recall curves of the top-1 distance threshold.

    Both are step curves: between two thresholds nothing changes, so a straight segment (which a
    log axis bends) would show recalls that no threshold reaches.
    """
    out = []
    negative = _negative(targets)
    if not negative.any():
        return out  # no negative query: no false-positive rate to plot
    roc, pr = Figure(figsize=(7, 5)), Figure(figsize=(7, 5))
    ax_roc, ax_pr = roc.add_subplot(), pr.add_subplot()
    floor = 0.5 / int(negative.sum())  # log axis: FPR 0 is drawn half a negative query left
    for run in _representative(res["runs"]):
        D, I = _run_arrays(folder, run)
        c = M.threshold_curve(D, I, targets)
        auc = run.get("roc_auc")
        ax_roc.step(
            np.maximum(c["fpr"], floor),
            c["recall"],
            where="post",
            label=f"{_label(run)} (AUC {_fmt(auc, 3)})",
        )
        ax_pr.step(c["recall"], c["precision"], where="post", label=_label(run))
    ax_roc.set_xscale("log")
    ax_roc.set_xlabel(f"false-positive rate (negative queries accepted; 0 drawn at {floor:.1g})")
    ax_roc.set_ylabel("recall (top-1 correct and accepted)")
    ax_roc.set_title(f"{res['name']}: ROC of the top-1 distance threshold")
    ax_pr.set_xlabel("recall")
    ax_pr.set_ylabel("precision")
    ax_pr.set_title(f"{res['name']}: precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(roc, folder, "roc") + _save(pr, folder, "precision_recall")


def plot_distances(res: dict, folder: Path, targets: np.ndarray) -> list[Path]:
    """Top-1 distance histograms per metric: true matches, wrong top-1 of positives, negative queries."""
    out = []
    exact = {r["metric"]: r for r in _representative(res["runs"]) if r.get("exact")}
    chosen = exact or {r["metric"]: r for r in _representative(res["runs"])}
    for metric, run in chosen.items():
        D, I = _run_arrays(folder, run)
        top1 = D[:, 0]
        positive = ~_negative(targets)
        correct = M.positive_ranks(D, I, targets, 1)[:, 0] == 1
        fig = Figure(figsize=(7, 5))
        ax = fig.add_subplot()
        finite = top1[np.isfinite(top1)]
        if len(finite) and np.all(finite == np.round(finite)):  # integer distances: integer-wide bins
            step = max(1, int(np.ceil((finite.max() - finite.min() + 1) / 80)))
            bins = np.arange(finite.min() - 0.5, finite.max() + step + 0.5, step)
        else:
            bins = np.histogram_bin_edges(finite, bins=40)
        for mask, label, color in (
            (correct, "true match", "tab:green"),
            (positive & ~correct, "wrong top-1 (positive query)", "tab:orange"),
            (~positive, "negative query", "tab:red"),
        ):
            if mask.any():
                ax.hist(top1[mask], bins=bins, alpha=0.5, label=f"{label} ({int(mask.sum())})", color=color)
        ax.set_xlabel(f"top-1 {metric} distance")
        ax.set_ylabel("queries")
        ax.set_title(f"{res['name']}: {_label(run)}")
        ax.legend(fontsize=8)
        out += _save(fig, folder, f"distances_{metric}")
    return out


def process_experiment(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> list[Path]:
    """Draw every figure (PNG + PDF) and write summary.md / summary.csv; returns the paths written."""
    res = load_results(name, results_root)
    folder = experiment_dir(name, results_root)
    if not res["runs"]:
        raise ValueError(f"{folder / 'results.json'} holds no runs (errors: {res.get('errors')})")
    targets = _targets(folder)
    paths = write_summary(name, results_root)
    paths += plot_time_recall(res, folder)
    paths += plot_recall_k(res, folder, targets)
    paths += plot_roc_pr(res, folder, targets)
    paths += plot_distances(res, folder, targets)
    return paths
