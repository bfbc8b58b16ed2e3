# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Neighbour galleries: for each query, the query, its true original and its k nearest neighbours.

One JPEG per query under ``Results/<name>/neighbors/{correct,incorrect}/`` and an ``index.html``
to browse them. Neighbours are framed green when they are the query's original, red otherwise.
A positive query is *correct* when its top-1 is its original; a negative query (no original in
the database) is correct when its top-1 distance is above the decision threshold (by default the
run's threshold at 1 % false-positive rate), i.e. when it would be rejected.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from data_retrieval.datasets import SPECS, image_paths
from extractor.store import store_info
from fast_search.report import load_results
from fast_search.results import experiment_dir
from helpers.atomic import save_image, write_text
from helpers.images import BadImageError, load_image
from helpers.paths import DATASETS_DIR, RESULTS_DIR

TILE = 160
CAPTION = 30
PER_ROW = 5
GREEN, RED, GREY = (40, 170, 60), (210, 40, 40), (128, 128, 128)


def _tile(path: Path | None, lines: list[str], frame: tuple[int, int, int] | None) -> Image.Image:
    """A TILE x TILE thumbnail (grey placeholder when missing or unreadable) with a caption and frame."""
    tile = Image.new("RGB", (TILE, TILE + CAPTION), (255, 255, 255))
    try:
        if path is None:
            raise BadImageError("missing")
        img = load_image(path, draft=(TILE, TILE))
        img.thumbnail((TILE - 8, TILE - 8))
    except (BadImageError, OSError):
        img = Image.new("RGB", (TILE - 8, TILE - 8), GREY)
        ImageDraw.Draw(img).text(
            (8, 8), "image not found" if path is None else "unreadable", fill=(255, 255, 255)
        )
    tile.paste(img, (4 + (TILE - 8 - img.width) // 2, 4 + (TILE - 8 - img.height) // 2))
    draw = ImageDraw.Draw(tile)
    if frame is not None:
        draw.rectangle([0, 0, TILE - 1, TILE - 1], outline=frame, width=4)
    font = ImageFont.load_default()
    for i, line in enumerate(lines[:2]):
        draw.text(
            (3, TILE + 2 + 13 * i), line if len(line) <= 26 else "…" + line[-25:], fill=(0, 0, 0), font=font
        )
    return tile


def compose(
    query: Path | None,
    original: Path | None,
    neighbours: list[tuple[Path | None, str, float, bool]],
    query_id: str,
    original_id: str | None,
) -> Image.Image:
    """Query and original on the top row, neighbours (path, id, distance, correct) below, PER_ROW a row."""
    rows = 1 + (len(neighbours) + PER_ROW - 1) // PER_ROW
    gap = 10
    canvas = Image.new(
        "RGB", (PER_ROW * (TILE + gap) + gap, rows * (TILE + CAPTION + gap) + gap), (235, 235, 235)
    )
    canvas.paste(_tile(query, ["query", query_id], None), (gap, gap))
    label = ["original", original_id] if original_id else ["no original", "(negative query)"]
    canvas.paste(_tile(original, label, GREEN if original_id else None), (2 * gap + TILE, gap))
    for j, (path, image_id, dist, good) in enumerate(neighbours):
        r, c = 1 + j // PER_ROW, j % PER_ROW
        tile = _tile(path, [f"#{j + 1} d={dist:.4g}", image_id], GREEN if good else RED)
        canvas.paste(tile, (gap + c * (TILE + gap), gap + r * (TILE + CAPTION + gap)))
    return canvas


def _store_folders(res: dict) -> dict[str, str]:
    """Image folders of unregistered datasets, from the ``folder`` attribute their stores record."""
    params, out = res["params"], {}
    for dataset in params["database"] + params["queries"]:
        if dataset in SPECS:
            continue
        try:
            folder = store_info(dataset, params["method"], params["features_root"]).get("folder")
        except (OSError, ValueError):
            continue
        if folder:
            out[dataset] = folder
    return out


def _pick_run(res: dict, run: str | None) -> dict:
    if run is None:
        exact = [r for r in res["runs"] if r.get("exact")]
        return (exact or res["runs"])[0]
    for r in res["runs"]:
        if r["key"] == run:
            return r
    raise ValueError(
        f"no run {run!r} in experiment {res['name']!r}; runs: {', '.join(r['key'] for r in res['runs'])}"
    )


def _write_html(folder: Path, entries: list[tuple[str, str, str]], title: str) -> Path:
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif}img{width:420px;margin:4px;border:1px solid #ccc}</style>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for group in ("correct", "incorrect"):
        items = [e for e in entries if e[0] == group]
        parts.append(f"<h2 id='{group}'>{group} ({len(items)})</h2><div>")
        for _, rel, caption in items:
            parts.append(
                f"<a href='{html.escape(rel)}'><img loading='lazy' src='{html.escape(rel)}' "
                f"title='{html.escape(caption)}' alt='{html.escape(caption)}'></a>"
            )
        parts.append("</div>")
    path = folder / "index.html"
    write_text(path, "\n".join(parts) + "\n")
    return path


def explore_neighbors(
    name: str,
    run: str | None = None,
    k: int = 10,
    sample: int | None = 100,
    seed: int = 0,
    threshold: float | None = None,
    results_root: str | os.PathLike = RESULTS_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    folders: dict[str, str | os.PathLike] | None = None,
) -> Path:
    """Draw galleries for `sample` random queries (None: all) of one run; returns the index.html path.

    `run` is a run key of results.json (default: the first exact run); `folders` maps dataset
    names that are not registered to their image folders (see `data_retrieval.datasets.image_paths`);
    by default they come from the ``folder`` attribute of the experiment's feature stores.
    """
    res = load_results(name, results_root)
    chosen = _pick_run(res, run)
    folder = experiment_dir(name, results_root)
    folders = {**_store_folders(res), **(folders or {})}
    with np.load(folder / "ids.npz", allow_pickle=False) as z:
        query_ids, database_ids, targets = z["query_ids"], z["database_ids"], z["targets"]
    with np.load(folder / chosen["file"], allow_pickle=False) as z:
        D, I = z["D"], z["I"]
    width = int(chosen.get("k", I.shape[1]))  # runs hold one more column than k (it closes ties)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= width:
        raise ValueError(f"k must be an integer in [1, {width}] (the run's k), got {k!r}")
    if threshold is None:
        threshold = chosen.get("threshold_at_fpr_1pct")
    threshold = np.inf if threshold is None else float(threshold)
    order = np.arange(len(query_ids))
    if sample is not None and sample < len(order):
        order = np.sort(np.random.default_rng(seed).choice(order, size=sample, replace=False))
    out = folder / "neighbors"
    for group in ("correct", "incorrect"):
        (out / group).mkdir(parents=True, exist_ok=True)
        for old in (out / group).glob("*.jpg"):  # galleries of an earlier call
            old.unlink()
    needed = set()
    for q in order:
        needed.add(str(query_ids[q]))
        if targets[q] >= 0:
            needed.add(str(database_ids[targets[q]]))
        needed.update(str(database_ids[i]) for i in I[q, :k] if i >= 0)
    needed = sorted(needed)
    paths = dict(zip(needed, image_paths(needed, datasets_root, folders), strict=False))
    entries = []
    for q in tqdm(order, desc=f"galleries {chosen['key']}", unit="query"):
        t = int(targets[q])
        original_id = str(database_ids[t]) if t >= 0 else None
        neigh = [
            (paths.get(str(database_ids[i])), str(database_ids[i]), float(d), i == t)
            for d, i in zip(D[q, :k], I[q, :k], strict=False)
            if i >= 0
        ]
        correct = (I[q, 0] == t) if t >= 0 else bool(D[q, 0] > threshold)
        group = "correct" if correct else "incorrect"
        img = compose(
            paths.get(str(query_ids[q])),
            paths.get(original_id) if original_id else None,
            neigh,
            str(query_ids[q]),
            original_id,
        )
        fname = f"{q:06d}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(query_ids[q]))[-80:] + ".jpg"
        save_image(img, out / group / fname, quality=85)
        entries.append((group, f"{group}/{fname}", str(query_ids[q])))
    return _write_html(out, entries, f"{name}: {chosen['key']}, k={k}")
