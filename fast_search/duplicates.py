# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Find the duplicates in a folder: one call, one command, through the feature store and faiss.

```python
from fast_search.duplicates import find_duplicates
dups = find_duplicates("my_photos", method="phash")      # threshold: DEFAULT_MAX_DISTANCE["phash"]
dups.matches["my_photos/a.jpg"]                        # [("my_photos/a_copy.jpg", 0.0), ...]
dups.groups                                            # connected components, largest first
dups.remove_list()                                     # all but one file of each group
dups.save("Results/duplicates/my_photos-phash")        # pairs.csv, groups.csv, index.html
```

    python -m fast_search.duplicates my_photos --method phash [--max-distance 8] [--remove-list]

Features are extracted into the store (``Features/<folder>/<method>.h5``: a rerun reuses them),
every image is searched against all the others with faiss (exact ``Flat`` up to
`EXACT_UP_TO` images, IVF with a high nprobe above), and each pair closer than the threshold is a
match. Groups are the connected components of the match graph, so a chain of near-duplicates
forms one group. One file per group is kept: the one matching most of its group (the most central
copy; edits and crops match fewer), ties broken by the larger file, then path order.
"""

from __future__ import annotations

import functools
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import cli
from helpers.atomic import save_image, write_text
from helpers.paths import DATASETS_DIR, FEATURES_DIR
from helpers.tables import write_csv

#: Default match threshold per method (Hamming bits of 64): the demo's 1 %-FPR threshold, the
#: largest top-1 distance at which at most 1 % of its 580 negative queries (copies whose original
#: is not in the database) match (`make demo`, exact BFlat search, results.json
#: ``threshold_at_fpr_1pct``). No wHash threshold reaches 1 % FPR there: it takes its 90 %-precision
#: threshold. aHash's is 0: identical hashes only.
DEFAULT_MAX_DISTANCE: dict[str, float] = {"ahash": 0, "phash": 10, "dhash": 7, "whash": 5}
#: Threshold for a neural method (cosine distance 1 - cos), not calibrated on the demo: pass
#: `max_distance` (e.g. the ``threshold_at_fpr_1pct`` of a search experiment on your data).
DEFAULT_NEURAL_MAX_DISTANCE = 0.1
#: Above this many images the search uses an IVF index (``IVF<4 sqrt(n)>``, nprobe 32) instead of Flat.
EXACT_UP_TO = 200_000
#: IVF indexes are trained on at most this many images (a sample chosen by content, `sample_rows`).
TRAIN_SAMPLE = 262_144
#: Nearest neighbours examined per image; more matches than this still join through the group.
NEIGHBOURS = 32


@dataclass
class Duplicates:
    """Matches of a folder: `pairs` (i < j) within `max_distance`, `groups` of indices into `paths`."""

    method: str
    max_distance: float
    paths: list[str]
    ids: list[str]
    pairs: list[tuple[int, int, float]]
    groups: list[list[int]] = field(default_factory=list)
    index: str = "Flat"
    binary: bool = True
    features: np.ndarray | None = field(default=None, repr=False)

    @property
    def matches(self) -> dict[str, list[tuple[str, float]]]:
        """For every image path, its matches (path, distance), closest first (imagededup's shape)."""
        out: dict[str, list[tuple[str, float]]] = {p: [] for p in self.paths}
        for i, j, d in self.pairs:
            out[self.paths[i]].append((self.paths[j], d))
            out[self.paths[j]].append((self.paths[i], d))
        for found in out.values():
            found.sort(key=lambda m: (m[1], m[0]))
        return out

    def keep(self, group: list[int]) -> int:
        """The index kept in `group`: the most matches within it, then the largest file, then path order."""
        degree = self._degrees
        return min(group, key=lambda i: (-degree.get(i, 0), -_size(self.paths[i]), self.paths[i]))

    @functools.cached_property
    def _degrees(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for i, j, _ in self.pairs:
            counts[i] = counts.get(i, 0) + 1
            counts[j] = counts.get(j, 0) + 1
        return counts

    def distance(self, i: int, j: int) -> float | None:
        """Distance between images i and j (Hamming bits or cosine distance); None without features."""
        if self.features is None:
            return None
        a, b = self.features[i], self.features[j]
        if self.binary:
            return float(np.unpackbits(a ^ b).sum())
        cos = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
        return 1.0 - cos

    def remove_list(self) -> list[str]:
        """Paths to delete so that one file of each group remains, in path order."""
        return sorted(self.paths[i] for g in self.groups for i in g if i != self.keep(g))

    def save(self, out_dir: str | os.PathLike, gallery_groups: int = 200) -> dict[str, Path]:
        """Write ``pairs.csv``, ``groups.csv`` and the ``index.html`` gallery under `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        group_of = {i: g for g, members in enumerate(self.groups) for i in members}
        files = {"pairs": out / "pairs.csv", "groups": out / "groups.csv", "gallery": out / "index.html"}
        write_csv([{"path_a": self.paths[i], "path_b": self.paths[j], "distance": _fmt(d), "group": group_of[i]}
                   for i, j, d in self.pairs], files["pairs"], ["path_a", "path_b", "distance", "group"])
        rows = []
        for g, members in enumerate(self.groups):
            kept = self.keep(members)
            rows += [{"group": g, "size": len(members), "path": self.paths[i], "action": "keep" if i == kept else "remove"}
                     for i in members]
        write_csv(rows, files["groups"], ["group", "size", "path", "action"])
        write_text(files["gallery"], _gallery(self, out, gallery_groups))
        return files


def _fmt(d: float) -> str:
    return str(int(d)) if float(d).is_integer() else f"{d:.4f}"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def default_max_distance(method: str, binary: bool, n_bits: int = 64) -> float:
    """The documented threshold for `method` (hash thresholds scale with the number of bits)."""
    base = method.split("_exact")[0]
    if base in DEFAULT_MAX_DISTANCE:
        return DEFAULT_MAX_DISTANCE[base]
    for name, value in DEFAULT_MAX_DISTANCE.items():  # e.g. phash_16: 256 bits -> 4x the 64-bit threshold
        if base.startswith(name + "_") and binary:
            return round(value * n_bits / 64)
    if binary:
        raise ValueError(f"no default threshold for {method!r}: pass max_distance (Hamming bits)")
    return DEFAULT_NEURAL_MAX_DISTANCE


def connected_groups(n: int, pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Connected components of size >= 2 of the match graph, largest first, then by first member."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    if not pairs:
        return []
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    graph = coo_array((np.ones(len(a)), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for i in np.unique(np.r_[a, b]):
        members.setdefault(int(labels[i]), []).append(int(i))
    return sorted(members.values(), key=lambda g: (-len(g), g[0]))


def _index_for(n: int, binary: bool) -> tuple[str, int | None]:
    if n <= EXACT_UP_TO:
        return ("BFlat" if binary else "Flat"), None
    lists = 1 << round(math.log2(4 * math.sqrt(n)))
    return (f"BIVF{lists}" if binary else f"IVF{lists},Flat"), 32


def search_pairs(
    features: np.ndarray, binary: bool, max_distance: float, k: int = NEIGHBOURS, index: str | None = None,
    nprobe: int | None = None,
) -> tuple[list[tuple[int, int, float]], str]:
    """Pairs (i < j, distance) of rows within `max_distance` of each other, through a faiss index.

    Each row's `k` nearest neighbours are examined; ties at the same distance are kept whatever
    their order. Returns the pairs sorted by (distance, i, j), and the index used.
    """
    from fast_search.index import FaissIndex

    n = len(features)
    if n < 2:
        return [], index or "Flat"
    if index is None:
        index, nprobe = _index_for(n, binary)
    metric = "hamming" if binary else "cosine"
    train = features
    if len(features) > TRAIN_SAMPLE:  # k-means on a sample chosen by content: 64 points a list at 1M images
        from fast_search.block import array_blocks
        from fast_search.ondisk import sample_rows

        train = sample_rows(array_blocks(features), len(features), TRAIN_SAMPLE)
    searcher = FaissIndex(index, metric, binary=binary).fit(train).add(features)
    if nprobe:
        searcher.set_param("nprobe", nprobe)
    D, I = searcher.search(features, min(k + 1, n))
    found = set()
    pairs = []
    rows, cols = np.nonzero((D <= max_distance + 1e-6) & (I >= 0))
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        j = int(I[r, c])
        if j == r:
            continue
        a, b = (r, j) if r < j else (j, r)
        if (a, b) not in found:
            found.add((a, b))
            pairs.append((a, b, float(max(D[r, c], 0.0))))
    pairs.sort(key=lambda p: (p[2], p[0], p[1]))
    return pairs, index


def find_duplicates(
    source: str | os.PathLike,
    method: str = "phash",
    max_distance: float | None = None,
    *,
    index: str | None = None,
    k: int = NEIGHBOURS,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    recursive: bool = False,
    workers: int = 2,
    batch_size: int = 64,
    progress: bool = True,
) -> Duplicates:
    """Every pair of images of `source` (a folder or a dataset name) within `max_distance` of each other.

    `method` is any extractor (``phash``, ``dhash``, ``efficientnet_lite0``...); hashes are
    compared in Hamming bits, neural features by cosine distance. `max_distance` None takes
    `DEFAULT_MAX_DISTANCE`. `index` (a faiss factory string) overrides the automatic choice.
    Features go through the store under `features_root`, so a second call reuses them.
    """
    from data_retrieval.datasets import load_dataset
    from extractor import create_extractor, extract_dataset, load_features

    listing = load_dataset(source, root=datasets_root, recursive=recursive)
    if len(listing) == 0:
        raise ValueError(f"no images in {source} ({len(listing.skipped)} files skipped)")
    ext = create_extractor(method)
    if ext.name.startswith("crop_resistant"):
        raise ValueError("crop_resistant compares segments, not one vector: use phash, dhash, ... or a neural method")
    store = extract_dataset(ext, listing, features_root=features_root, workers=workers, batch_size=batch_size,
                            progress=progress, if_changed="redo")  # a cache here: a changed folder is re-extracted
    feats = load_features(store)
    path_of = dict(zip(listing.ids, (str(p) for p in listing.paths), strict=True))
    ids = [str(i) for i in feats.ids]
    missing = [i for i in ids if i not in path_of]
    if missing:
        raise ValueError(f"{store} holds ids not in {source} (e.g. {missing[0]}): rerun with a fresh features_root")
    threshold = default_max_distance(ext.name, feats.binary, feats.dim) if max_distance is None else max_distance
    if threshold < 0 or not math.isfinite(threshold):
        raise ValueError(f"max_distance must be a finite number >= 0, got {max_distance!r}")
    features = feats.features if feats.binary else np.asarray(feats.features, np.float32)
    pairs, used = search_pairs(features, feats.binary, threshold, k=k, index=index)
    paths = [path_of[i] for i in ids]
    groups = connected_groups(len(ids), pairs)
    return Duplicates(ext.name, float(threshold), paths, ids, pairs, groups, used, feats.binary, features)


# ---- gallery -------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.group{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.8em 0}
.tiles{display:flex;flex-wrap:wrap;gap:.6em}
figure{margin:0;width:200px}figure img{max-width:200px;max-height:160px;display:block;border:4px solid #bbb}
figure.keep img{border-color:#2a7}figure.remove img{border-color:#d84}
figcaption{font-size:13px;line-height:1.35;word-break:break-all}
.legend span{display:inline-block;padding:.1em .5em;margin-right:.6em;border:3px solid}
"""


def _thumbnail(path: str, out: Path, name: str) -> str | None:
    """Write a small JPEG of `path` as out/name; its original 'WxH', or None if it cannot be read."""
    from helpers.images import BadImageError, load_image

    try:
        image = load_image(path)
    except BadImageError:
        return None
    width, height = image.size
    image.thumbnail((200, 160))
    save_image(image, out / name, quality=85)
    return f"{width}x{height}"


def _gallery(dups: Duplicates, out: Path, max_groups: int) -> str:
    thumbs = out / "thumbs"
    thumbs.mkdir(exist_ok=True)
    n_dup = sum(len(g) for g in dups.groups)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Duplicates</title>",
        f"<style>{_CSS}</style>",
        f"<h1>{len(dups.groups)} groups of duplicates among {len(dups.paths)} images</h1>",
        f"<p>method <b>{html.escape(dups.method)}</b>, match when distance &le; <b>{_fmt(dups.max_distance)}</b>"
        f" ({'Hamming bits' if dups.binary else 'cosine distance'}),"
        f" index {html.escape(dups.index)}; {len(dups.pairs)} pairs; {n_dup} images in groups;"
        f" {len(dups.remove_list())} files to remove keeping one per group."
        " Files: <a href='pairs.csv'>pairs.csv</a>, <a href='groups.csv'>groups.csv</a>.</p>",
        "<p class='legend'><span style='border-color:#2a7'>kept (matches most of its group)</span>"
        "<span style='border-color:#d84'>would be removed</span> d: distance to the kept image"
        " (above the threshold: joined the group through other copies)</p>",
    ]
    for g, members in enumerate(dups.groups[:max_groups]):
        kept = dups.keep(members)
        tiles = []
        for i in sorted(members, key=lambda m: (m != kept, m)):
            name = f"{g}_{i}.jpg"
            size = _thumbnail(dups.paths[i], thumbs, name)
            d = dups.distance(i, kept)
            rel = "kept" if i == kept else ("" if d is None else f"d = {_fmt(round(d, 4))}")
            caption = (f"<b>{html.escape(Path(dups.paths[i]).name)}</b><br>{size or 'unreadable'}, "
                       f"{_size(dups.paths[i]) / 1024:.0f} KiB<br>{rel}")
            img = f"<img src='thumbs/{name}' alt=''>" if size else ""
            tiles.append(f"<figure class='{'keep' if i == kept else 'remove'}'>{img}<figcaption>{caption}"
                         "</figcaption></figure>")
        parts.append(f"<div class='group'><h3>group {g}: {len(members)} images</h3>"
                     f"<div class='tiles'>{''.join(tiles)}</div></div>")
    if len(dups.groups) > max_groups:
        parts.append(f"<p>{len(dups.groups) - max_groups} more groups in groups.csv</p>")
    if not dups.groups:
        parts.append("<p>No duplicates at this threshold.</p>")
    return "\n".join(parts)


if __name__ == "__main__":  # the command line sits above this module and folder_eval: fast_search/duplicates_cli.py
    from fast_search.duplicates_cli import main

    cli.run(main)
