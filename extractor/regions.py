"""Region descriptors: several boxes per image (the whole image, a grid, multi-scale windows), each described.

A global descriptor of the whole image misses a copy pasted into a larger canvas or cut down to a
small crop. DISC21's winners described several regions of each image on the query and/or the
database side and kept the best pair; `fast_search.regions` searches them with any faiss index and
aggregates per image (max similarity over regions), so every metric still counts per image.

Two ways to describe the boxes, one `RegionDescriber`:

- ``mode="crops"``: each box is cut out and given to the extractor (any extractor, hashes included;
  the cost grows with the number of regions);
- ``mode="tokens"``: one forward pass of a ``pooling='local'`` neural extractor on the whole image
  (resized square, nothing cropped away), then each box averages the patch tokens it covers (R-MAC's
  regional pooling): every region for about the cost of the global descriptor.

`extract_regions` streams every image of a dataset into ``Features/<dataset>/<name>.regions.h5``
(the `extractor.local_store` layout plus ``boxes``: (T, 4) float32 left, top, right, bottom as
fractions of the image), resumable like every store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from extractor.local_store import LocalFeatures, LocalWriter, ids_fingerprint
from helpers.paths import DATASETS_DIR, FEATURES_DIR

SUFFIX = ".regions.h5"
#: (side as a fraction of the image's sides, windows per axis): the whole image, 2 x 2 windows of 0.6,
#: 3 x 3 overlapping windows of 0.45 (stride 0.275); 14 boxes.
DEFAULT_LAYOUT: tuple[tuple[float, int], ...] = ((1.0, 1), (0.6, 2), (0.45, 3))
LAYOUTS: dict[str, tuple[tuple[float, int], ...]] = {
    "grid14": DEFAULT_LAYOUT,
    "grid5": ((1.0, 1), (0.6, 2)),
    "grid10": ((1.0, 1), (0.45, 3)),
    "global": ((1.0, 1),),
}


def region_boxes(layout: Sequence[tuple[float, int]] | str = DEFAULT_LAYOUT) -> np.ndarray:
    """(R, 4) float32 boxes (left, top, right, bottom) as fractions of the image, the whole image first."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown region layout {layout!r}; valid: {', '.join(LAYOUTS)}")
        layout = LAYOUTS[layout]
    boxes = []
    for side, n in layout:
        if not 0 < side <= 1 or n < 1:
            raise ValueError(f"a layout entry needs 0 < side <= 1 and n >= 1, got ({side}, {n})")
        starts = [0.0] if n == 1 else [i * (1 - side) / (n - 1) for i in range(n)]
        if n == 1 and side < 1:
            starts = [(1 - side) / 2]
        boxes += [(x, y, x + side, y + side) for y in starts for x in starts]
    return np.array(boxes, np.float32)


def pixel_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fractional boxes -> (R, 4) int pixel boxes of an image of `size` (w, h), at least 1 px each."""
    w, h = size
    out = np.rint(np.asarray(boxes, np.float64) * [w, h, w, h]).astype(np.int64)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out


@dataclass
class RegionDescriber:
    """Describe the boxes of `layout` in images: ``describe(images)`` -> one (R, dim) array per image."""

    extractor: object
    layout: tuple[tuple[float, int], ...] | str = DEFAULT_LAYOUT
    mode: str = "crops"  # "crops" (any extractor) or "tokens" (a pooling='local' neural extractor)
    size: int = 224  # mode="tokens": the square input side (224: a 7 x 7 token map for EfficientNet-Lite0)

    def __post_init__(self) -> None:
        if self.mode not in ("crops", "tokens"):
            raise ValueError(f"mode must be 'crops' or 'tokens', got {self.mode!r}")
        self.boxes = region_boxes(self.layout)
        if self.mode == "tokens":
            if not getattr(self.extractor, "local", False):
                raise ValueError(f"mode='tokens' needs a pooling='local' extractor, got {self.extractor!r}")
            from dataclasses import replace

            ext = self.extractor
            ext.preprocess = replace(ext.preprocess, resize_mode="square", resize_size=self.size, crop_size=None)
            ext._scale_shift = ext._make_scale_shift()

    @property
    def name(self) -> str:
        """Store name: the extractor's, the mode and the layout's size (``efficientnet_lite0-tokens14``)."""
        return f"{self.extractor.name}-{self.mode}{len(self.boxes)}"

    @property
    def binary(self) -> bool:
        return bool(getattr(self.extractor, "binary", False))

    @property
    def params(self) -> dict:
        layout = self.layout if isinstance(self.layout, str) else [list(e) for e in self.layout]
        return {"extractor": self.extractor.name, "extractor_params": getattr(self.extractor, "params", {}),
                "layout": layout, "mode": self.mode, "size": self.size if self.mode == "tokens" else None}

    def describe(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One (R, dim) float32 (or packed uint8 for hashes) array per image, rows in `self.boxes` order."""
        images = [img.convert("RGB") for img in images]
        if not images:
            return []
        if self.mode == "crops":
            crops = [img.crop(tuple(b)) for img in images for b in pixel_boxes(self.boxes, img.size)]
            feats = self.extractor.features(crops)
            r = len(self.boxes)
            return [feats[i * r:(i + 1) * r] for i in range(len(images))]
        return [pool_tokens(t, self.boxes) for t in self.extractor.local_features(images)]


def pool_tokens(tokens: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(R, dim) L2-normalised means of the tokens of a square g x g token map inside each fractional box."""
    g = int(round(np.sqrt(len(tokens))))
    if g * g != len(tokens):
        raise ValueError(f"{len(tokens)} tokens do not form a square map")
    grid = np.asarray(tokens, np.float32).reshape(g, g, -1)
    cells = pixel_boxes(boxes, (g, g))
    out = np.stack([grid[t:b, left:r].mean(axis=(0, 1)) for left, t, r, b in cells])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def regions_path(dataset: str, name: str, root: str | os.PathLike = FEATURES_DIR) -> Path:
    """``<root>/<dataset>/<name>.regions.h5``."""
    if "/" in dataset or "/" in name:
        raise ValueError(f"dataset {dataset!r} and name {name!r} must not contain '/'")
    return Path(root) / dataset / f"{name}{SUFFIX}"


@dataclass
class Regions:
    """Every region of a dataset: (T, dim) `features`, (T, 4) fractional `boxes`, (T,) `owner` image rows, `ids`."""

    ids: np.ndarray
    features: np.ndarray
    boxes: np.ndarray
    owner: np.ndarray


def load_regions(path: str | os.PathLike) -> Regions:
    """Read a whole regions file."""
    with LocalFeatures(path) as store:
        feats = store.file["tokens"][:]
        boxes = store.file["boxes"][:]
        owner = np.repeat(np.arange(len(store), dtype=np.int64), store.counts())
        return Regions(ids=store.ids, features=feats, boxes=boxes, owner=owner)


def _stale(path: Path, ids: Sequence[str], params: dict) -> bool:
    """True (and said) when a finished regions file was made from other images or settings: never reused."""
    import json
    import logging

    with LocalFeatures(path) as store:
        same = (store.attrs.get("inputs_sha1") == ids_fingerprint(ids)
                and store.attrs.get("params") == json.dumps(params, sort_keys=True, default=str))
    if not same:
        logging.getLogger(__name__).warning("%s was made from other images or settings: extracting it again", path)
    return not same


def extract_regions(
    describer: RegionDescriber,
    dataset: str,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    batch_images: int = 8,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Region descriptors of every image of `dataset` -> ``<describer.name>.regions.h5`` (resumable, bad files skipped)."""
    from tqdm.auto import tqdm

    from extractor.pipeline import _listing
    from helpers.images import BadImageError, load_image

    listing = _listing(dataset, datasets_root, None)
    paths, ids = listing.paths[:limit], listing.ids[:limit]
    out = regions_path(listing.name, describer.name, features_root)
    if out.exists() and not overwrite and not _stale(out, ids, describer.params):
        return out
    if out.exists():
        out.unlink()
    ext = describer.extractor
    dim = (ext.dim + 7) // 8 if describer.binary else ext.dim
    with LocalWriter(out, method=describer.name, dim=dim, dtype="uint8" if describer.binary else "float32",
                     dataset=listing.name, params=describer.params, n_total=len(ids),
                     inputs_sha1=ids_fingerprint(ids), boxes=True) as writer:
        begin = writer.n_seen
        bar = tqdm(total=len(paths), initial=begin, unit="img", desc=f"{describer.name} regions",
                   disable=not progress)
        for start in range(begin, len(paths), batch_images):
            good, images, bad = [], [], []
            for i in range(start, min(start + batch_images, len(paths))):
                try:
                    images.append(load_image(paths[i]))
                    good.append(i)
                except BadImageError as err:
                    bad.append((str(paths[i]), str(err)))
            feats = describer.describe(images)
            writer.append([ids[i] for i in good], feats, skipped=bad, boxes=[describer.boxes] * len(good))
            bar.update(len(good) + len(bad))
        bar.close()
        path = writer.finish()
    if progress:
        print(f"{describer.name} regions on {listing.name}: -> {path}", file=sys.stderr)
    return path
