"""Figures of a clustering run, with plain matplotlib (the backend-free ``Figure`` API, no LaTeX).

Each function writes one PNG and returns its path; none touches pyplot's global state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import dendrogram
from scipy.optimize import linear_sum_assignment

from helpers.atomic import save_figure


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    return path


def plot_dendrogram(Z: np.ndarray, path: str | os.PathLike, p: int = 25, title: str = "") -> Path:
    """The top `p` merges of the tree (scipy 'lastp' truncation); leaves show cluster sizes."""
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot()
    if len(Z):
        dendrogram(Z, truncate_mode="lastp", p=min(p, len(Z) + 1), ax=ax, no_labels=False, leaf_rotation=90)
    ax.set_ylabel("merge distance")
    ax.set_title(title or f"dendrogram (last {p} merges)")
    return _save(fig, path)


def plot_cluster_sizes(labels: np.ndarray, path: str | os.PathLike, truth: np.ndarray | None = None, title: str = "") -> Path:
    """Sorted cluster sizes (log scale), with the ground-truth group sizes in red for comparison."""
    fig = Figure(figsize=(9, 4))
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 1])
    sizes = np.sort(np.bincount(labels[labels >= 0]))[::-1]
    ax1.stairs(sizes, np.arange(len(sizes) + 1) - 0.5, fill=True, color="tab:blue", label="clusters")
    if truth is not None:
        gt = np.sort(np.bincount(truth[truth >= 0]))[::-1]
        ax1.step(np.arange(len(gt)), gt, where="mid", color="red", label="ground truth")
    ax1.set_yscale("log")
    ax1.set_xlabel("cluster rank")
    ax1.set_ylabel("size")
    ax1.legend()
    ax2.boxplot([sizes] + ([gt] if truth is not None else []), tick_labels=["clusters"] + (["truth"] if truth is not None else []))
    ax2.set_yscale("log")
    fig.suptitle(title or f"{len(sizes)} clusters, {int((labels < 0).sum())} noise points")
    return _save(fig, path)


def plot_size_vs_diameter(sizes: np.ndarray, diameters: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Scatter of cluster size (log x) against diameter."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    ax.scatter(sizes, diameters, s=8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("cluster size")
    ax.set_ylabel("diameter")
    ax.set_title(title or "size vs diameter")
    return _save(fig, path)


def diagonal_order(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column orders that put the best one-to-one matches on the diagonal, the rest after."""
    rows, cols = linear_sum_assignment(-iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    rows, cols = rows[order], cols[order]
    rest_r = np.setdiff1d(np.arange(iou.shape[0]), rows)
    rest_c = np.setdiff1d(np.arange(iou.shape[1]), cols)
    return np.concatenate([rows, rest_r]), np.concatenate([cols, rest_c])


def plot_iou(iou: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Intersection-over-union of clusters (rows) and ground-truth groups (columns), maxima on the diagonal."""
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    if iou.size:
        r, c = diagonal_order(iou)
        im = ax.imshow(iou[np.ix_(r, c)], cmap="afmhot_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="IoU")
    ax.set_xlabel("ground-truth group")
    ax.set_ylabel("cluster")
    ax.set_title(title or "cluster vs ground truth IoU")
    return _save(fig, path)


def plot_scores(rows: Sequence[dict], path: str | os.PathLike, x: str = "n_clusters", keys: Sequence[str] | None = None,
                title: str = "") -> Path:  # fmt: skip
    """Scores (homogeneity, completeness, V-measure, ARI, AMI, BCubed F, purity) against `x`."""
    keys = keys or ["homogeneity", "completeness", "v_measure", "ari", "ami", "bcubed_f", "purity"]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    rows = sorted((r for r in rows if r.get(x) is not None), key=lambda r: r[x])
    xs = [r[x] for r in rows]
    for k in keys:
        if rows and k in rows[0]:
            ax.plot(xs, [r[k] for r in rows], marker="o", label=k)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("score")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"scores vs {x.replace('_', ' ')}")
    return _save(fig, path)
