"""Clustering experiments end to end: load features and ground truth, cluster, score, save, plot.

A run writes under ``<results_root>/clustering/<run name>/`` (never pickle):

- ``run.json`` (parameters, path taken, sizes, timings), ``scores.csv`` / ``scores.json`` (one row
  per cut), ``ids.txt``, ``ground_truth.npy`` + ``groups.txt``, and the run's figures
  (``dendrogram.png``, ``scores.png``);
- one folder per cut (``<k>-clusters/``, ``threshold-<t>/``, ``eps-<e>/``): ``assignment.npy``
  (int64 label per line of ids.txt, -1 = noise), ``metrics.json``, ``clusters.csv`` (size,
  diameter, dispersion, separation, ratios per cluster), ``centroids.npy``, ``iou.npy`` and
  figures ``sizes.png``, ``size_diameter.png``, ``iou.png``, plus ``representatives/`` and
  ``extremes/`` image grids for the largest clusters.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clustering import plots
from clustering.agglomerative import Agglomerative, check_n_clusters
from clustering.config import AgglomerativeConfig, ClusteringSource, DBSCANConfig, RunOutput
from clustering.density import GraphDBSCAN, GraphHDBSCAN
from clustering.geometry import cluster_geometry
from clustering.grids import cluster_grids
from clustering.groundtruth import ClusteringData, load_clustering_data
from clustering.metrics import clustering_scores, intersection_over_union
from clustering.spaces import DEFAULT_EPS, check_linkage, check_metric, prepare
from helpers.atomic import save_npy, write_text
from helpers.jsonio import save_json
from helpers.paths import DATASETS_DIR
from helpers.tables import write_csv

logger = logging.getLogger(__name__)

def safe_name(text: str) -> str:
    """`text` usable as one path component (spaces and odd characters become '-')."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "-", str(text)).strip("-") or "run"


def evaluate_cut(
    data: ClusteringData, Xp: np.ndarray, labels: np.ndarray, folder: Path | None, *, score: bool = True,
    geometry: bool = True, noise: str = "singleton", max_grids: int = 10, datasets_root=DATASETS_DIR, title: str = "",
) -> dict:  # fmt: skip
    """Scores (and geometry) of one labeling; writes its folder when `folder` is given."""
    row: dict = {"n_clusters": int(len(np.unique(labels[labels >= 0]))), "n_noise": int((labels < 0).sum())}
    if score:
        row.update(clustering_scores(data.groups, labels, noise=noise))
    geo = None
    if geometry and (labels >= 0).any():
        geo = cluster_geometry(Xp, labels)
        row.update(geo.summary())
    if folder is None:
        return row
    folder.mkdir(parents=True, exist_ok=True)
    save_npy(folder / "assignment.npy", labels.astype(np.int64))
    save_json(row, folder / "metrics.json")
    plots.plot_cluster_sizes(labels, folder / "sizes.png", truth=data.groups if score else None, title=title)
    if geo is not None:
        save_npy(folder / "centroids.npy", geo.centroids.astype(np.float32))
        write_csv(geo.table(), folder / "clusters.csv")
        plots.plot_size_vs_diameter(geo.sizes, geo.diameters, folder / "size_diameter.png", title=title)
    if score:
        iou, _, _ = intersection_over_union(labels, data.groups)
        save_npy(folder / "iou.npy", iou.astype(np.float32))
        plots.plot_iou(iou, folder / "iou.png", title=title)
    if max_grids > 0:
        cluster_grids(Xp, labels, data.ids, folder, max_clusters=max_grids, datasets_root=datasets_root, folders=data.folders)
    return row


def _save_run(folder: Path, data: ClusteringData, config: dict, rows: list[dict], x: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_json(config, folder / "run.json")
    save_json(rows, folder / "scores.json")
    write_csv(rows, folder / "scores.csv")
    write_text(folder / "ids.txt", "\n".join(map(str, data.ids)) + "\n")
    write_text(folder / "groups.txt", "\n".join(map(str, data.group_names)) + "\n")
    save_npy(folder / "ground_truth.npy", data.groups)
    if rows and "homogeneity" in rows[0]:
        plots.plot_scores(rows, folder / "scores.png", x=x, title=config.get("run_name", ""))


def _print_rows(rows: list[dict], keys: Sequence[str]) -> None:
    keys = [k for k in keys if rows and k in rows[0]]
    print("  ".join(f"{k:>12}" for k in keys))
    for r in rows:
        print("  ".join(f"{r[k]:>12.4f}" if isinstance(r[k], float) else f"{r[k]!s:>12}" for k in keys))


def _check_thresholds(values) -> list[float]:
    values = [values] if np.isscalar(values) else list(values)
    for v in values:
        if not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"distance thresholds must be finite numbers >= 0, got {v!r}")
    return [float(v) for v in values]


def _run_dir(source: ClusteringSource, output: RunOutput, default: str) -> tuple[str, Path]:
    name = output.run_name or f"{'+'.join(source.datasets)}/{source.partition}_{default}_{source.method}"
    return name, Path(output.results_root) / "clustering" / Path(*[safe_name(p) for p in Path(name).parts])


def _load(source: ClusteringSource, output: RunOutput) -> ClusteringData:
    return load_clustering_data(source.method, source.datasets, source.partition, source.negatives,
                                source.features_root, source.datasets_root, require_ground_truth=output.score)  # fmt: skip


def _evaluate(data: ClusteringData, Xp: np.ndarray, labels: np.ndarray, folder: Path, source: ClusteringSource,
              output: RunOutput, title: str, noise: str = "singleton") -> dict:  # fmt: skip
    return evaluate_cut(data, Xp, labels, folder if output.save else None, score=output.score,
                        geometry=output.geometry, noise=noise, max_grids=output.max_grids,
                        datasets_root=source.datasets_root, title=title)  # fmt: skip


def _finish(run_dir: Path, data: ClusteringData, config: dict, rows: list[dict], x: str, output: RunOutput,
            header: str, keys: Sequence[str]) -> list[dict]:  # fmt: skip
    if output.save:
        _save_run(run_dir, data, config, rows, x=x)
        logger.info("saved %s", run_dir)
    if output.verbose:
        print(header)
        _print_rows(rows, keys)
    return rows


def _record(source: ClusteringSource, config: Any, name: str, data: ClusteringData, **more: Any) -> dict:
    """run.json: every setting of the source and the algorithm, and what the run found."""
    settings = {k: v for k, v in dataclasses.asdict(source).items() if not k.endswith("_root")}
    return {"run_name": name, **settings, "datasets": list(source.datasets), **dataclasses.asdict(config),
            "n_images": len(data), "n_groups": data.n_groups, "dropped": data.dropped, **more}  # fmt: skip


def cluster_experiment(
    source: ClusteringSource, config: AgglomerativeConfig | None = None, output: RunOutput | None = None
) -> list[dict]:
    """Agglomerative clustering of `source`'s features, one tree cut many times; one dict of scores per cut.

    Cuts: each of ``config.n_clusters`` and ``config.distance_threshold``; with neither, one cut at
    the number of ground-truth groups. Rows hold ``n_clusters``, ``homogeneity``, ``completeness``,
    ``v_measure``, ``ari``, ``ami``, ``bcubed_*``, ``purity``, geometry medians, ``path``, ``fit_time_s``.
    """
    config, output = config or AgglomerativeConfig(), output or RunOutput()
    check_linkage(config.linkage, config.metric)
    targets = [] if config.n_clusters is None else check_n_clusters(config.n_clusters)
    thresholds = [] if config.distance_threshold is None else _check_thresholds(config.distance_threshold)
    data = _load(source, output)
    if not targets and not thresholds:
        targets = [data.n_groups]
    check_n_clusters(targets or 1, len(data))
    model = Agglomerative(linkage=config.linkage, metric=config.metric, memory_budget_gb=config.memory_budget_gb,
                          path=config.path, n_neighbors=config.n_neighbors, binary=data.binary).fit(data.features)  # fmt: skip
    Xp = prepare(data.features, config.metric, data.binary)
    name, run_dir = _run_dir(source, output, f"{config.metric}_{config.linkage}")
    Z = model.linkage_matrix_
    rows = []
    for kind, value in [("n_clusters", t) for t in targets] + [("threshold", t) for t in thresholds]:
        start = time.perf_counter()
        labels = model.cut(n_clusters=value) if kind == "n_clusters" else model.cut(distance_threshold=value)
        k = int(labels.max()) + 1
        height = float(Z[len(data) - k - 1, 2]) if kind == "n_clusters" and 0 < len(data) - k <= len(Z) else None
        sub = f"{value}-clusters" if kind == "n_clusters" else f"threshold-{value:.4g}"
        row = {"cut": sub, "n_clusters_asked": value if kind == "n_clusters" else None,
               "threshold": value if kind == "threshold" else height}  # fmt: skip
        row.update(_evaluate(data, Xp, labels, run_dir / sub, source, output, f"{name} {sub}"))
        row.update(path=model.path_, fit_time_s=round(model.fit_time_, 3), eval_time_s=round(time.perf_counter() - start, 3))
        rows.append(row)
    if output.save:
        save_npy(run_dir / "linkage.npy", Z)
        plots.plot_dendrogram(Z, run_dir / "dendrogram.png", title=name)
    record = _record(source, config, name, data, path=model.path_, dense_bytes=model.dense_bytes_,
                     n_components=model.n_components_, fit_time_s=model.fit_time_, cuts=[r["cut"] for r in rows])  # fmt: skip
    header = f"{name}: {len(data)} images, {data.n_groups} groups, {model.path_} path, tree in {model.fit_time_:.1f} s"
    return _finish(run_dir, data, record, rows, "n_clusters", output, header,
                   ["n_clusters", "homogeneity", "completeness", "v_measure", "ari", "ami", "bcubed_f", "purity"])


def dbscan_experiment(
    source: ClusteringSource, config: DBSCANConfig | None = None, output: RunOutput | None = None
) -> list[dict]:
    """DBSCAN over a sweep of ``config.eps`` (one graph, built for the largest), or HDBSCAN; rows of scores.

    Noise (-1) counts as ``config.noise`` says for the scores (see `clustering.metrics.clustering_scores`).
    """
    config, output = config or DBSCANConfig(), output or RunOutput()
    metric = check_metric(config.metric)
    eps_list = sorted(_check_thresholds(DEFAULT_EPS[metric] if config.eps is None else config.eps), reverse=True)
    if not config.hdbscan and any(e <= 0 for e in eps_list):
        raise ValueError(f"eps values must be > 0, got {eps_list}")
    data = _load(source, output)
    algo = f"HDBSCAN_{config.min_cluster_size}-size" if config.hdbscan else f"DBSCAN_{config.min_samples}-samples"
    name, run_dir = _run_dir(source, output, f"{metric}_{algo}")
    Xp = prepare(data.features, metric, data.binary)
    if config.hdbscan:
        model = GraphHDBSCAN(config.min_cluster_size, min_samples=None, metric=metric, binary=data.binary).fit(data.features)
        cuts = [("hdbscan", None, model.labels_)]
    else:
        model = GraphDBSCAN(eps_list[0], min_samples=config.min_samples, metric=metric, graph=config.graph,
                            n_neighbors=config.n_neighbors, memory_budget_gb=config.memory_budget_gb,
                            binary=data.binary).fit(data.features)  # fmt: skip
        cuts = [(f"eps-{e:.4g}", e, model.labels_ if e == eps_list[0] else model.relabel(e)) for e in eps_list]
    rows = []
    for sub, e, labels in cuts:
        row = {"cut": sub, "eps": e}
        row.update(_evaluate(data, Xp, labels, run_dir / sub, source, output, f"{name} {sub}", noise=config.noise))
        row.update(path=model.path_, fit_time_s=round(model.fit_time_, 3))
        rows.append(row)
    record = _record(source, dataclasses.replace(config, eps=None if config.hdbscan else eps_list), name, data,
                     algorithm=algo, path=model.path_, fit_time_s=model.fit_time_)  # fmt: skip
    return _finish(run_dir, data, record, rows, "n_clusters" if config.hdbscan else "eps", output,
                   f"{name}: {len(data)} images, {data.n_groups} groups, {model.path_}",
                   ["eps", "n_clusters", "n_noise", "homogeneity", "completeness", "v_measure", "ari", "bcubed_f"])
