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
from fast_search.metric_table import ATTACK_MEASURES, BY_KEY, summary_cells
from fast_search.results import SCHEMA, experiment_dir, load_ids, load_run
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
    """Columns of the summary (`fast_search.metric_table.SUMMARY`): recall@k for the experiment's k
    values, mAP@(largest k), pooled measures, then queries/s."""
    ks = sorted(int(k) for k in res["params"]["ks"])
    return ["method", "index", *summary_cells({}, ks), "queries/s"]


def summary_rows(name_or_results: str | dict, results_root: str | os.PathLike = RESULTS_DIR) -> list[dict]:
    """One row per run with the columns of `summary_columns` (recall@k for each k of the experiment)."""
    res = (
        name_or_results if isinstance(name_or_results, dict) else load_results(name_or_results, results_root)
    )
    ks = sorted(int(k) for k in res["params"]["ks"])
    rows = []
    for run in res["runs"]:
        row = {"method": res["data"]["method"], "index": run["key"], **summary_cells(run, ks)}
        row["queries/s"] = run.get("queries_per_s")
        rows.append(row)
    return rows


def attack_rows(res: dict, part: str = "families", runs: list[dict] | None = None) -> list[dict]:
    """One row per (run, attack family or id) of the per-attack breakdown (`ATTACK_MEASURES`)."""
    rows = []
    for run in res["runs"] if runs is None else runs:
        for name, scores in ((run.get("attacks") or {}).get(part) or {}).items():
            row = {"method": res["data"]["method"], "index": run["key"], part[:-1] if part == "ids" else "family": name,
                   "n_positive": scores["n_positive"], "n_negative": scores["n_negative"]}
            row.update({column: _attack_value(scores, key) for key, column, _ in ATTACK_MEASURES})
            rows.append(row)
    return rows


def _attack_value(scores: dict, key: str) -> float | None:
    """``recall_at_1`` -> scores["recall_at_k"]["1"] (None when k was not searched); other keys as stored."""
    if key.startswith("recall_at_") and key[10:].isdigit():
        return (scores.get("recall_at_k") or {}).get(key[10:])
    return scores.get(key)


def negative_kind_rows(name_or_results: str | dict, results_root: str | os.PathLike = RESULTS_DIR) -> list[dict]:
    """One row per (run, kind of negative): the threshold measures over all positives and that kind's negatives.

    Empty when the negatives are of no known kind (`data_retrieval.datasets.generator_kind`). A
    recall at 1 % FPR is blank where the kind has fewer than 1,000 negatives.
    """
    res = (
        name_or_results if isinstance(name_or_results, dict) else load_results(name_or_results, results_root)
    )
    rows = []
    for run in res["runs"]:
        for kind, m in sorted((run.get("by_negative_kind") or {}).items()):
            rows.append({
                "method": res["data"]["method"], "index": run["key"], "negatives": kind, "n_negative": m["n_negative"],
                "recall@1%FPR": m.get("recall_at_fpr_1pct"), "micro-AP": m.get("micro_ap"),
                "DISC21 recall@P90": m.get("disc21_recall_at_precision_90"), "ROC AUC": m.get("roc_auc"),
            })  # fmt: skip
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `summary_rows` (readable in a terminal too); columns are the rows' keys."""
    if not rows:
        return "(no runs)"
    return markdown_table(
        rows, list(rows[0]), lambda c, v: _fmt(v, 0) if c == "queries/s" and v is not None else _fmt(v)
    )


def write_summary(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> list[Path]:
    """``summary.md`` and ``summary.csv`` beside results.json; with attacked queries also the per-attack
    tables (``summary_attacks.csv`` per family, ``summary_attack_ids.csv`` per attack id)."""
    folder = experiment_dir(name, results_root)
    res = load_results(name, results_root)
    rows = summary_rows(res)
    text = f"# {name}\n\n{format_table(rows)}\n"
    families = attack_rows(res, "families", _representative(res["runs"]))
    if families:
        text += (
            "\n## Per attack family\n\nrecall@1%FPR: positive queries of the family whose top-1 is right and "
            "accepted at the run's 1 % FPR threshold (set on all negative queries).\n\n" + format_table(families) + "\n"
        )
    md = folder / "summary.md"
    by_kind = negative_kind_rows(res)
    if by_kind:
        text += f"\n## By kind of negative query\n\n{format_table(by_kind)}\n"
    write_text(md, text)
    paths = [md, write_csv(rows, folder / "summary.csv", summary_columns(res))]
    if families:
        paths.append(write_csv(attack_rows(res, "families"), folder / "summary_attacks.csv"))
        paths.append(write_csv(attack_rows(res, "ids"), folder / "summary_attack_ids.csv"))
    if by_kind:
        paths.append(write_csv(by_kind, folder / "summary_by_negative_kind.csv", list(by_kind[0])))
    return paths


def _run_arrays(folder: Path, run: dict) -> tuple[np.ndarray, np.ndarray]:
    return load_run(folder, run)


def _targets(folder: Path, res: dict | None = None) -> np.ndarray:
    """Each query's positives ((nq, m), -1 padded; older experiments: (nq,) targets)."""
    z = load_ids(folder, res)
    if "positives" not in z and "targets" not in z:
        raise ValueError(f"{folder / 'ids.npz'} holds no targets; rerun `python search_experiment.py "
                         f"{folder.name} --overwrite`")
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
    ax.set_xlabel(BY_KEY["recall_at_k"].lab(k))
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
    ax.set_ylabel(BY_KEY["recall_at_k"].lab("k"))
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
        correct = M.first_positive_rank(D, I, targets) == 1
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


def _heatmap(ax, values: np.ndarray, rows: list[str], cols: list[str], title: str):
    """One annotated heat map (0..1, red to green) on `ax`; None cells are blank."""
    im = ax.imshow(np.where(np.isnan(values), np.nan, values), vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=9)
    for (r, c), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6)
    return im


def _attack_matrix(runs: list[dict], families: list[str], key: str) -> np.ndarray:
    out = np.full((len(runs), len(families)), np.nan)
    for r, run in enumerate(runs):
        found = (run.get("attacks") or {}).get("families") or {}
        for c, fam in enumerate(families):
            v = _attack_value(found[fam], key) if fam in found else None
            out[r, c] = np.nan if v is None else v
    return out


def plot_attacks(res: dict, folder: Path) -> list[Path]:
    """Heat maps runs x attack families of each `ATTACK_MEASURES` measure (``attacks.png``/``.pdf``)."""
    runs = [r for r in _representative(res["runs"]) if (r.get("attacks") or {}).get("families")]
    if not runs:
        return []
    families = sorted({f for r in runs for f in r["attacks"]["families"]})
    fig = Figure(figsize=(max(7, 0.45 * len(families) + 3), (0.3 * len(runs) + 1.6) * len(ATTACK_MEASURES)))
    axes = fig.subplots(len(ATTACK_MEASURES), 1, squeeze=False)[:, 0]
    for ax, (key, _, label) in zip(axes, ATTACK_MEASURES, strict=True):
        im = _heatmap(ax, _attack_matrix(runs, families, key), [_label(r) for r in runs], families,
                      f"{res['name']}: {label} per attack family")
    fig.colorbar(im, ax=list(axes), shrink=0.6)
    out = [folder / "attacks.png", folder / "attacks.pdf"]
    save_figure(fig, out[0], dpi=120)
    save_figure(fig, out[1])
    return out


def _method_run(res: dict) -> dict | None:
    """The run that stands for an experiment's method: the first exact plain run, else the first plain run."""
    plain = [r for r in res["runs"] if not r.get("variant") and (r.get("attacks") or {}).get("families")]
    exact = [r for r in plain if r.get("exact")]
    return (exact or plain or [None])[0]


def plot_attack_heatmap(
    names: list[str], out: str | os.PathLike, results_root: str | os.PathLike = RESULTS_DIR,
    measure: str = "recall_at_fpr_1pct",
) -> Path:
    """One heat map methods x attack families across experiments (each experiment's exact plain run).

    `measure` is one of `ATTACK_MEASURES` (default: recall at the run's 1 % FPR threshold). Writes
    `out` (PNG, or PDF by its suffix); ValueError when no experiment holds a per-attack breakdown.
    """
    labels = {key: label for key, _, label in ATTACK_MEASURES}
    if measure not in labels:
        raise ValueError(f"measure must be one of {sorted(labels)}, got {measure!r}")
    runs, rows = [], []
    for name in names:
        res = load_results(name, results_root)
        run = _method_run(res)
        if run is not None:
            runs.append(run)
            rows.append(f"{res['data']['method']} ({run['index']})")
    if not runs:
        raise ValueError(f"no per-attack breakdown in {names}: their queries carry no attack id in their names")
    families = sorted({f for r in runs for f in r["attacks"]["families"]})
    fig = Figure(figsize=(max(7, 0.5 * len(families) + 3), 0.45 * len(runs) + 2.2))
    ax = fig.add_subplot()
    im = _heatmap(ax, _attack_matrix(runs, families, measure), rows, families, f"{labels[measure]} per attack family")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    out = Path(out)
    save_figure(fig, out, dpi=100)
    return out


def process_experiment(name: str, results_root: str | os.PathLike = RESULTS_DIR) -> list[Path]:
    """Draw every figure (PNG + PDF) and write summary.md / summary.csv; returns the paths written."""
    res = load_results(name, results_root)
    folder = experiment_dir(name, results_root)
    if not res["runs"]:
        raise ValueError(f"{folder / 'results.json'} holds no runs (errors: {res.get('errors')})")
    targets = _targets(folder, res)
    for run in res["runs"]:  # every run file checked before any figure is drawn
        load_run(folder, run)
    paths = write_summary(name, results_root)
    paths += plot_time_recall(res, folder)
    paths += plot_recall_k(res, folder, targets)
    paths += plot_roc_pr(res, folder, targets)
    paths += plot_distances(res, folder, targets)
    paths += plot_attacks(res, folder)
    return paths
