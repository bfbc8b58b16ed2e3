# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Neighbour galleries: for each query, the query, its true original and its k nearest neighbours.

One JPEG per query under ``Results/<name>/neighbors/{correct,incorrect}/`` and an ``index.html``
to browse them: the run, its threshold and headline metrics and links to the figures at the top,
failures first, and every caption (ids, ranks, distances, the verdict) in HTML text beside the
picture, never drawn into its pixels. Neighbours are framed green when they are the query's
original, red otherwise; a negative query's original slot is a hatched tile.
A positive query is *correct* when its top-1 is its original *and* is accepted at the decision
threshold (by default the run's threshold at 1 % false-positive rate): a right top-1 above the
threshold is a miss there. A negative query (no original in the database) is correct when its
top-1 distance is above the threshold, i.e. when it would be rejected. Every failure is drawn;
`sample` limits only the successes.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from data_retrieval.datasets import SPECS, image_paths
from extractor.store import store_info
from fast_search import metrics as M
from fast_search.metric_table import BY_KEY
from fast_search.report import load_results
from fast_search.results import experiment_dir, load_ids, load_run
from helpers.atomic import save_image, write_text
from helpers.images import BadImageError, load_image
from helpers.paths import DATASETS_DIR, RESULTS_DIR

TILE = 160
CAPTION = 0  # captions are HTML text in index.html, not pixels
PER_ROW = 5
GREEN, RED, GREY, BLUE = (40, 170, 60), (210, 40, 40), (128, 128, 128), (60, 110, 200)
YELLOW = (250, 200, 0)  # the region a keypoint verification matched


def _placeholder(kind: str) -> Image.Image:
    """Grey tile for a missing/unreadable file; hatched light tile for 'no original' (negative query)."""
    size = TILE - 8
    if kind == "none":
        img = Image.new("RGB", (size, size), (245, 245, 245))
        draw = ImageDraw.Draw(img)
        for x in range(-size, size, 16):
            draw.line([(x, size), (x + size, 0)], fill=(205, 205, 205), width=3)
        return img
    return Image.new("RGB", (size, size), GREY)


def _tile(path: Path | None, frame: tuple[int, int, int] | None, missing: str = "missing",
          box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """A TILE x TILE thumbnail (a placeholder when `path` is None or unreadable) with a coloured frame.

    `box` (left, top, right, bottom in the file's pixels) is drawn in yellow: a verified match's region.
    """
    tile = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    try:
        if path is None:
            raise BadImageError(missing)
        img = load_image(path, draft=(TILE, TILE))
        if box is not None:
            with Image.open(path) as header:
                full_width = header.width
        img.thumbnail((TILE - 8, TILE - 8))
        if box is not None:
            s = img.width / full_width
            ImageDraw.Draw(img).rectangle([v * s for v in box], outline=YELLOW, width=3)
    except (BadImageError, OSError):
        img = _placeholder(missing if path is None else "unreadable")
    tile.paste(img, (4 + (TILE - 8 - img.width) // 2, 4 + (TILE - 8 - img.height) // 2))
    if frame is not None:
        ImageDraw.Draw(tile).rectangle([0, 0, TILE - 1, TILE - 1], outline=frame, width=4)
    return tile


def compose(
    query: Path | None,
    original: Path | None,
    neighbours: list[tuple[Path | None, str, float, bool]],
    query_id: str,
    original_id: str | None,
    query_box: tuple[float, float, float, float] | None = None,
    boxes: list | None = None,
) -> Image.Image:
    """Query and original on the top row, neighbours (path, id, distance, correct) below, PER_ROW a row.

    `query_box` and `boxes` (one per neighbour, or None) are matched regions drawn in yellow.
    """
    rows = 1 + (len(neighbours) + PER_ROW - 1) // PER_ROW
    gap = 10
    canvas = Image.new(
        "RGB", (PER_ROW * (TILE + gap) + gap, rows * (TILE + CAPTION + gap) + gap), (235, 235, 235)
    )
    canvas.paste(_tile(query, BLUE, box=query_box), (gap, gap))
    original_tile = _tile(original, GREEN) if original_id else _tile(None, None, missing="none")
    canvas.paste(original_tile, (2 * gap + TILE, gap))
    for j, (path, _, _, good) in enumerate(neighbours):
        r, c = 1 + j // PER_ROW, j % PER_ROW
        box = boxes[j] if boxes else None
        canvas.paste(_tile(path, GREEN if good else RED, box=box),
                     (gap + c * (TILE + gap), gap + r * (TILE + CAPTION + gap)))
    return canvas


def _caption(query_id: str, original_id: str | None, neighbours: list, correct: bool, threshold: float,
             notes: list[str] | None = None) -> str:
    """The HTML caption of one query: the verdict, the query and original ids, the neighbours in rank order.

    `notes` adds a text per neighbour (the keypoint inliers of a verified gallery)."""
    e = html.escape
    top1 = neighbours[0][2] if neighbours else float("inf")
    if original_id is None:
        verdict = ("rejected" if correct else "accepted: a false match") + f" at d = {top1:.4g}"
        head = f"<b>negative query</b> {e(query_id)}: no original in the database; {verdict}"
        head += f" (threshold {threshold:.4g})" if np.isfinite(threshold) else ""
    else:
        found = next((j + 1 for j, n in enumerate(neighbours) if n[3]), None)
        where = f"original at rank {found}" if found else "original not in the top k"
        if found == 1 and not correct and top1 > threshold:
            where += f", but rejected at d = {top1:.4g} (threshold {threshold:.4g}): a miss at that threshold"
        head = f"<b>{e(query_id)}</b> -> original {e(original_id)}: {where}"
    items = "".join(
        f"<li class='{'hit' if good else 'miss'}'>#{j + 1} {e(image_id)} <span>d = {dist:.4g}</span>"
        + (f" <span>{e(notes[j])}</span>" if notes else "") + "</li>"
        for j, (_, image_id, dist, good) in enumerate(neighbours)
    )
    return f"<p class='{'ok' if correct else 'bad'}'>{head}</p><ul class='nb'>{items}</ul>"


def _metrics_line(run: dict, threshold: float) -> str:
    recall = run.get("recall_at_k") or {}
    parts = [f"recall@{k} {float(v):.4f}" for k, v in sorted(recall.items(), key=lambda kv: int(kv[0]))[:3]
             if v is not None]
    for key in ("recall_at_fpr_1pct", "micro_ap"):
        if run.get(key) is not None:
            parts.append(f"{BY_KEY[key].lab()} {float(run[key]):.4f}")
    thr = f"{threshold:.4g}" if np.isfinite(threshold) else "none (no threshold reaches 1 % FPR)"
    return f"decision threshold (1 % FPR) d &le; {thr}; " + ", ".join(parts)


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


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.q{display:flex;gap:1em;align-items:flex-start;border-top:1px solid #ddd;padding:.6em 0}
.q img{width:440px;border:1px solid #ccc}.q div{font-size:14px;max-width:46em}
p.bad{color:#a01818}p.ok{color:#176a2a}ul.nb{margin:.3em 0;padding-left:.4em;list-style:none}
li.hit{color:#176a2a;font-weight:bold}li.miss{color:#333}li span{color:#666}
.legend span{display:inline-block;padding:.1em .5em;border:3px solid;margin-right:.6em}
"""


def _write_html(folder: Path, entries: list[tuple[str, str, str]], title: str, summary: str = "") -> Path:
    """index.html: title, threshold and metrics, legend, figure links, then failures first."""
    figures = sorted(p.name for p in folder.parent.glob("*.png"))
    links = ", ".join(f"<a href='../{html.escape(f)}'>{html.escape(f)}</a>" for f in figures)
    counts = {g: sum(e[0] == g for e in entries) for g in ("incorrect", "correct")}
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{summary}</p>" if summary else "",
        f"<p>{len(entries)} queries shown: <a href='#incorrect'>{counts['incorrect']} failures</a> first, then "
        f"<a href='#correct'>{counts['correct']} successes</a>."
        + (f" Figures: {links}." if links else " Figures: run <code>python process.py NAME</code>.") + "</p>",
        "<p class='legend'><span style='border-color:rgb(60,110,200)'>query</span>"
        "<span style='border-color:rgb(40,170,60)'>its original / a correct neighbour</span>"
        "<span style='border-color:rgb(210,40,40)'>another image</span>"
        "<span style='border-color:#ccc;background:repeating-linear-gradient(45deg,#f5f5f5 0 6px,#ddd 6px 9px)'>"
        "no original in the database (negative query)</span>"
        "<span style='border-color:#888;background:#888;color:#fff'>image file not found</span></p>",
    ]
    for group, heading in (("incorrect", "Failures"), ("correct", "Successes")):
        items = [e for e in entries if e[0] == group]
        parts.append(f"<h2 id='{group}'>{heading} ({len(items)})</h2>")
        for _, rel, caption in items:
            parts.append(f"<div class='q'><a href='{html.escape(rel)}'><img loading='lazy' src='{html.escape(rel)}' "
                         f"alt=''></a><div>{caption}</div></div>")
    path = folder / "index.html"
    write_text(path, "\n".join(parts) + "\n")
    return path


def _correct_queries(D: np.ndarray, I: np.ndarray, positives: np.ndarray, targets: np.ndarray,
                     threshold: float) -> np.ndarray:
    """Per query: is it right at `threshold`?

    A positive query is right when its top-1 is a positive after every negative tied with it (ties count
    against it) and is accepted at the threshold; a negative query when its top-1 is rejected.
    """
    top1_right = M.first_positive_rank(D, I, positives) == 1 if I.shape[1] > 1 else I[:, 0] == targets
    accepted = D[:, 0] <= threshold
    is_positive = (M.as_positives(positives, len(I)) >= 0).any(axis=1)
    return np.where(is_positive, top1_right & accepted, ~accepted)


def _image_paths_of(order, query_ids, database_ids, targets, I, datasets_root, folders) -> dict[str, Path | None]:
    """id -> image file of every image the galleries of queries `order` draw (query, original, neighbours)."""
    needed = set()
    for q in order:
        needed.add(str(query_ids[q]))
        if targets[q] >= 0:
            needed.add(str(database_ids[targets[q]]))
        needed.update(str(database_ids[i]) for i in I[q] if i >= 0)
    needed = sorted(needed)
    return dict(zip(needed, image_paths(needed, datasets_root, folders), strict=False))


def _verify(verifier, query: Path | None, neighbours: list) -> tuple[tuple | None, list | None, list[str] | None]:
    """(query region of the best verified neighbour, each neighbour's matched region, caption notes)."""
    if verifier is None or query is None:
        return None, None, None
    try:
        keys = verifier.describe_query(load_image(query))
    except (BadImageError, OSError):
        return None, None, None
    boxes, notes, best = [], [], (0, None)
    for path, *_ in neighbours:
        try:
            match = verifier.verify(keys, verifier.describe(load_image(path))) if path is not None else None
        except (BadImageError, OSError):
            match = None
        boxes.append(match.db_box if match is not None else None)
        notes.append(f"{match.inliers} inliers" + (" (mirrored)" if match.mirrored else "") if match else "")
        if match is not None and match.query_box is not None and match.inliers > best[0]:
            best = (match.inliers, match.query_box)
    return best[1], boxes, notes


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
    verifier=None,
) -> Path:
    """Draw the galleries of every failing query and of `sample` random successes (None: all); returns index.html.

    With a `verifier` (`fast_search.verify.KeypointVerifier`) each shown neighbour is matched against
    the query and the regions it matched are drawn in yellow on both, the inliers in the caption.

    `run` is a run key of results.json (default: the first exact run); `folders` maps dataset
    names that are not registered to their image folders (see `data_retrieval.datasets.image_paths`);
    by default they come from the ``folder`` attribute of the experiment's feature stores.
    """
    res = load_results(name, results_root)
    chosen = _pick_run(res, run)
    folder = experiment_dir(name, results_root)
    folders = {**_store_folders(res), **(folders or {})}
    z = load_ids(folder, res)
    try:
        query_ids, database_ids, targets = z["query_ids"], z["database_ids"], z["targets"]
    except KeyError as e:
        raise ValueError(f"{folder / 'ids.npz'} holds no {e.args[0]}; rerun `python search_experiment.py "
                         f"{name} --overwrite`") from None
    positives = z["positives"] if "positives" in z else targets
    D, I = load_run(folder, chosen)
    if len(I) != len(query_ids) or (I.size and int(I.max()) >= len(database_ids)):
        raise ValueError(
            f"{folder / chosen['file']} does not fit the experiment's ids ({len(query_ids)} queries, "
            f"{len(database_ids)} database rows): rerun search_experiment.py {name} --overwrite"
        )
    width = int(chosen.get("k", I.shape[1]))  # runs hold one more column than k (it closes ties)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= width:
        raise ValueError(f"k must be an integer in [1, {width}] (the run's k), got {k!r}")
    if threshold is None:
        threshold = chosen.get("threshold_at_fpr_1pct")
    threshold = np.inf if threshold is None else float(threshold)
    correct_all = _correct_queries(D, I, positives, targets, threshold)
    successes = np.flatnonzero(correct_all)
    if sample is not None and sample < len(successes):
        successes = np.random.default_rng(seed).choice(successes, size=sample, replace=False)
    order = np.sort(np.r_[np.flatnonzero(~correct_all), successes]).astype(np.int64)  # every failure
    out = folder / "neighbors"
    for group in ("correct", "incorrect"):
        (out / group).mkdir(parents=True, exist_ok=True)
        for old in (out / group).glob("*.jpg"):  # galleries of an earlier call
            old.unlink()
    paths = _image_paths_of(order, query_ids, database_ids, targets, I[:, :k], datasets_root, folders)
    entries = []
    for q in tqdm(order, desc=f"galleries {chosen['key']}", unit="query"):
        t = int(targets[q])
        original_id = str(database_ids[t]) if t >= 0 else None
        neigh = [
            (paths.get(str(database_ids[i])), str(database_ids[i]), float(d), i == t)
            for d, i in zip(D[q, :k], I[q, :k], strict=False)
            if i >= 0
        ]
        correct = bool(correct_all[q])
        group = "correct" if correct else "incorrect"
        query_box, boxes, notes = _verify(verifier, paths.get(str(query_ids[q])), neigh)
        img = compose(paths.get(str(query_ids[q])), paths.get(original_id) if original_id else None, neigh,
                      str(query_ids[q]), original_id, query_box, boxes)
        fname = f"{q:06d}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(query_ids[q]))[-80:] + ".jpg"
        save_image(img, out / group / fname, quality=85)
        entries.append((group, f"{group}/{fname}",
                        _caption(str(query_ids[q]), original_id, neigh, correct, threshold, notes)))
    return _write_html(out, entries, f"{name}: {chosen['key']}, k={k}", _metrics_line(chosen, threshold))
