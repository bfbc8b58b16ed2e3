"""Image grids of clusters: random representatives, and members closest to / farthest from the centroid.

Images are found with `data_retrieval.datasets.image_paths`; a missing or unreadable file
becomes a grey tile, so a grid is always written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from data_retrieval.datasets import image_paths
from helpers.atomic import save_image
from helpers.images import BadImageError, load_image
from helpers.paths import DATASETS_DIR

logger = logging.getLogger(__name__)

GREY = (128, 128, 128)


def _tile(path: Path | None, size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), GREY)
    if path is None:
        return tile
    try:
        img = load_image(path, draft=(size, size))
    except (BadImageError, OSError) as exc:
        logger.debug("grey tile for %s: %s", path, exc)
        return tile
    img.thumbnail((size, size))
    tile.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return tile


def image_grid(paths: Sequence[Path | None], out: str | os.PathLike, cols: int = 5, size: int = 160,
               captions: Sequence[str] | None = None) -> Path:  # fmt: skip
    """One PNG with the images in rows of `cols` tiles of `size` pixels (grey where missing)."""
    rows = max(1, -(-len(paths) // cols))
    pad = 14 if captions else 0
    sheet = Image.new("RGB", (cols * size, rows * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, path in enumerate(paths):
        x, y = (k % cols) * size, (k // cols) * (size + pad)
        sheet.paste(_tile(path, size), (x, y))
        if captions:
            draw.text((x + 2, y + size), captions[k][: size // 6], fill="black")
    out = save_image(sheet, out)
    return out


def cluster_grids(
    X: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[str],
    out_dir: str | os.PathLike,
    max_clusters: int = 10,
    n_representatives: int = 10,
    n_extremes: int = 5,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    folders: dict[str, str] | None = None,
    seed: int = 112,
) -> list[Path]:
    """Grids for the `max_clusters` largest clusters: ``representatives/<c>.png`` and ``extremes/<c>.png``.

    Representatives are drawn at random (seeded); extremes show the `n_extremes` members closest
    to the centroid (first row) then the `n_extremes` farthest (second row; fewer when the
    cluster has under ``2 * n_extremes`` members, so no image shows twice).
    """
    labels = np.asarray(labels)
    ids = np.asarray(ids, dtype=object)
    valid = labels[labels >= 0]
    if not len(valid) or max_clusters <= 0:
        return []
    counts = np.bincount(valid)
    chosen = np.argsort(-counts, kind="stable")[:max_clusters]
    chosen = chosen[counts[chosen] > 0]
    rng = np.random.default_rng(seed)
    plan: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in chosen:
        members = np.flatnonzero(labels == c)
        reps = np.sort(rng.choice(members, min(n_representatives, len(members)), replace=False))
        Xm = X[members].astype(np.float64)
        dist = np.linalg.norm(Xm - Xm.mean(axis=0), axis=1)
        order = members[np.argsort(dist, kind="stable")]
        closest = order[:n_extremes]
        farthest = order[max(len(closest), len(order) - n_extremes) :]  # never repeats a closest one
        plan[int(c)] = (reps, np.concatenate([closest, farthest]))
    needed = sorted({int(i) for reps, ext in plan.values() for i in np.concatenate([reps, ext])})
    where = dict(zip(needed, image_paths(ids[needed].tolist(), root=datasets_root, folders=folders), strict=True))
    out_dir = Path(out_dir)
    written = []
    for c, (reps, ext) in tqdm(plan.items(), desc="cluster grids", unit="cluster", leave=False, disable=len(plan) < 20):
        cols = max(1, min(5, len(reps)))
        written.append(image_grid([where[i] for i in reps], out_dir / "representatives" / f"{c}.png", cols=cols,
                                  captions=[str(ids[i]).rpartition("/")[2] for i in reps]))  # fmt: skip
        written.append(image_grid([where[i] for i in ext], out_dir / "extremes" / f"{c}.png", cols=max(1, min(n_extremes, len(ext))),
                                  captions=[str(ids[i]).rpartition("/")[2] for i in ext]))  # fmt: skip
    return written
