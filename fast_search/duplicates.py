"""Find the duplicates in a folder: every pair within the threshold, groups, the file to keep, a review page.

```python
from fast_search.duplicates import find_duplicates
dups = find_duplicates("my_photos", method="phash")    # threshold calibrated on photographs (thresholds.py)
dups.matches["my_photos/a.jpg"]                      # [("my_photos/a_copy.jpg", 0.0), ...]
dups.group_paths                                     # [[kept, other, ...], ...] largest group first
dups.remove_list()                                   # all but the kept file of each group
dups.save("duplicates/my_photos")                    # pairs.csv, groups.csv, remove_list.txt, index.html
```

    python -m fast_search.duplicates my_photos [--method phash] [--max-distance 8 | --precision 0.99]
        [--keep resolution|quality|size|oldest|first] [--invariant] [--output DIR] [--remove-list]
        [--quarantine DIR]          # move (never delete) the remove list there, with an undo file
    python -m fast_search.duplicates --undo DIR/undo.json

Features are extracted into the store (keyed by the folder's full path, so two folders of the same
name never share one; a rerun reuses it). Every pair within the threshold is returned, however many
matches an image has (`fast_search.pairs`: exact range search, or an exact Hamming join for many
hashes). Groups are the connected components of the match graph, so a chain of near-duplicates
forms one group. The file kept in each group follows a keep policy (`fast_search.keep`): by default
the original, as the pixels tell it (effective resolution, then the least processed, then the
largest file). ``invariant=True`` also matches flipped and 90-degree-rotated copies (hashes).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import cli
from helpers.paths import DATASETS_DIR, FEATURES_DIR
from helpers.tables import write_csv

#: An IVF index given as `index` is trained on at most this many images (a sample chosen by content, `sample_rows`).
TRAIN_SAMPLE = 262_144
#: A match through a flip or rotation takes the threshold calibrated for this precision (flips of
#: look-alike tiles match more often than edits do: on the calibration photographs, phash at 11 bits
#: for every orientation gave precision 0.63, at the 0.99-precision threshold 0.91, recall 0.61 -> 0.73).
TURNED_PRECISION = 0.99
#: The command's output goes here (relative to the working directory) unless --output says otherwise.
OUTPUT_DIR = Path("duplicates")


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
    keep_policy: str = "resolution"
    source: str = ""
    invariant: bool = False
    progress: bool = field(default=False, repr=False)

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

    @functools.cached_property
    def _kept(self) -> dict[int, int]:
        """Group number -> index kept, by `keep_policy` (file facts measured once, for grouped files only)."""
        from tqdm import tqdm

        from fast_search.keep import choose, file_facts

        members = sorted({i for g in self.groups for i in g})
        facts = {}
        if self.keep_policy != "first":
            for i in tqdm(members, desc="keep policy", unit="img", disable=not self.progress or len(members) < 500):
                facts[i] = file_facts(self.paths[i])
        out = {}
        for g, group in enumerate(self.groups):
            ordered = sorted(group, key=lambda i: self.paths[i])
            if self.keep_policy == "first":
                out[g] = ordered[0]
            else:
                out[g] = ordered[choose([facts[i] for i in ordered], self.keep_policy)]
        return out

    def kept(self, g: int) -> int:
        """The index kept in group number `g` (see `keep_policy`)."""
        return self._kept[g]

    def keep(self, group: list[int]) -> int:
        """The index kept in `group` (one of `groups`)."""
        return self._kept[self.groups.index(group)]

    @property
    def group_paths(self) -> list[list[str]]:
        """Each group's paths, the kept file first, then path order."""
        return [[self.paths[self.kept(g)]] + sorted(self.paths[i] for i in members if i != self.kept(g))
                for g, members in enumerate(self.groups)]

    def distance(self, i: int, j: int) -> float | None:
        """Distance between images i and j (Hamming bits or cosine distance); None without features."""
        if self.features is None or self.invariant:
            return next((d for a, b, d in self.pairs if {a, b} == {i, j}), None) if self.invariant else None
        a, b = self.features[i], self.features[j]
        if self.binary:
            return float(np.unpackbits(a ^ b).sum())
        cos = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
        return 1.0 - cos

    def remove_list(self) -> list[str]:
        """Paths to remove so that one file of each group remains, in path order."""
        return sorted(self.paths[i] for g, members in enumerate(self.groups) for i in members if i != self.kept(g))

    def save(self, out_dir: str | os.PathLike, gallery_groups: int = 200) -> dict[str, Path]:
        """Write ``pairs.csv``, ``groups.csv``, ``remove_list.txt`` and the ``index.html`` review page."""
        from fast_search.duplicates_review import review_page
        from helpers.atomic import write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        group_of = {i: g for g, members in enumerate(self.groups) for i in members}
        files = {"pairs": out / "pairs.csv", "groups": out / "groups.csv", "remove_list": out / "remove_list.txt",
                 "gallery": out / "index.html"}
        write_csv([{"path_a": self.paths[i], "path_b": self.paths[j], "distance": _fmt(d), "group": group_of[i]}
                   for i, j, d in self.pairs], files["pairs"], ["path_a", "path_b", "distance", "group"])
        rows = []
        for g, members in enumerate(self.groups):
            kept = self.kept(g)
            rows += [{"group": g, "size": len(members), "path": self.paths[i], "action": "keep" if i == kept else "remove"}
                     for i in sorted(members, key=lambda m: (m != kept, self.paths[m]))]
        write_csv(rows, files["groups"], ["group", "size", "path", "action"])
        write_text(files["remove_list"], "".join(p + "\n" for p in self.remove_list()))
        write_text(files["gallery"], review_page(self, out, gallery_groups))
        return files


def _fmt(d: float) -> str:
    return str(int(d)) if float(d).is_integer() else f"{d:.4f}"


def default_max_distance(method: str, binary: bool, n_bits: int = 64, precision: float | None = None) -> float:
    """The calibrated threshold of `method` (`fast_search.thresholds`; hash thresholds scale with the bits)."""
    from fast_search.thresholds import threshold_for

    return threshold_for(method, binary, n_bits, precision)


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


def search_pairs(
    features: np.ndarray, binary: bool, max_distance: float, index: str | None = None, nprobe: int | None = None,
    progress: bool = False,
) -> tuple[list[tuple[int, int, float]], str]:
    """Every pair (i < j, distance) of rows within `max_distance` of each other, sorted by (distance, i, j).

    Exact by default (`fast_search.pairs`: faiss range search, or the Hamming join for many hashes
    at a tight threshold), whatever the number of matches an image has. `index` (a faiss factory
    string, e.g. ``BIVF4096``) trades exactness for speed at scale. Returns the pairs and how they
    were found (``BFlat``, ``Flat``, ``hamming-join5`` or the factory string).
    """
    from fast_search import pairs as pair_search

    features = np.asarray(features)
    if len(features) < 2:
        return [], index or ("BFlat" if binary else "Flat")
    searcher = None
    if index is not None:
        from fast_search.index import FaissIndex

        metric = "hamming" if binary else "cosine"
        train = features
        if len(features) > TRAIN_SAMPLE:  # k-means on a sample chosen by content (order-independent)
            from fast_search.block import array_blocks
            from fast_search.ondisk import sample_rows

            train = sample_rows(array_blocks(features), len(features), TRAIN_SAMPLE)
        if not binary:
            train = pair_search.normalise(train)
        fitted = FaissIndex(index, metric, binary=binary).fit(train)
        fitted.add(features if binary else pair_search.normalise(features))
        if nprobe:
            fitted.set_param("nprobe", nprobe)
        searcher = fitted.index_
    if binary:
        i, j, d, how = pair_search.binary_pairs(features, max_distance, searcher, progress)
    else:
        i, j, d = pair_search.float_pairs(features, max_distance, searcher, progress)
        how = "Flat"
    pairs = list(zip(i.tolist(), j.tolist(), d.tolist(), strict=True))
    return pairs, index or how


def folder_key(source: str | os.PathLike) -> str:
    """A store/result name for `source`: a registered dataset's name, or a folder's name + a hash of its full path."""
    from data_retrieval.datasets import SPECS

    if str(source) in SPECS:
        return str(source)
    resolved = str(Path(source).resolve())
    return f"{Path(resolved).name or 'root'}-{hashlib.sha1(resolved.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def find_duplicates(
    source: str | os.PathLike,
    method: str = "phash",
    max_distance: float | None = None,
    *,
    precision: float | None = None,
    keep: str = "resolution",
    invariant: bool = False,
    index: str | None = None,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    recursive: bool = False,
    workers: int = 2,
    batch_size: int = 64,
    progress: bool = True,
) -> Duplicates:
    """Every pair of images of `source` (a folder or a dataset name) within `max_distance` of each other.

    `method` is any extractor (``phash``, ``dhash``, ``efficientnet_lite0``...); hashes are
    compared in Hamming bits, neural features by cosine distance. `max_distance` None takes the
    threshold calibrated on photographs for `precision` (None: `thresholds.DEFAULT_PRECISION`).
    `keep` is the keep policy (`fast_search.keep.KEEP_POLICIES`). `invariant` also matches flipped
    and rotated copies (hash methods). `index` (a faiss factory string) makes the search approximate.
    """
    from data_retrieval.datasets import load_dataset
    from extractor import create_extractor, extract_dataset, load_features
    from fast_search.keep import KEEP_POLICIES

    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    if max_distance is not None and precision is not None:
        raise ValueError("give max_distance or precision, not both")
    name = folder_key(source)
    listing = load_dataset(source, root=datasets_root, recursive=recursive, name=None if name == str(source) else name)
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
    if max_distance is None:
        threshold = default_max_distance(ext.name, feats.binary, feats.dim, precision)
    else:
        threshold = max_distance
    if threshold < 0 or not math.isfinite(threshold):
        raise ValueError(f"max_distance must be a finite number >= 0, got {max_distance!r}")
    features = feats.features if feats.binary else np.asarray(feats.features, np.float32)
    paths = [path_of[i] for i in ids]
    if invariant:
        from fast_search.dihedral import invariant_pairs

        turned = min(threshold, default_max_distance(ext.name, feats.binary, feats.dim, TURNED_PRECISION))
        pairs = invariant_pairs(ext, paths, features, threshold, progress=progress, turned_max_distance=turned)
        used = "dihedral"
    else:
        pairs, used = search_pairs(features, feats.binary, threshold, index=index, progress=progress)
    groups = connected_groups(len(ids), pairs)
    return Duplicates(ext.name, float(threshold), paths, ids, pairs, groups, used, feats.binary, features,
                      keep, str(source), invariant, progress)


def plot_duplicates(dups: Duplicates, group: int | str = 0, max_images: int = 12, size: float = 2.6):
    """A matplotlib figure of one group (its number, or any of its paths), kept image first, distances in titles."""
    import matplotlib.pyplot as plt

    from helpers.images import BadImageError, load_image

    if isinstance(group, str):
        where = [g for g, members in enumerate(dups.groups) if group in {dups.paths[i] for i in members}]
        if not where:
            raise ValueError(f"{group} is in no group of duplicates")
        group = where[0]
    if not 0 <= group < len(dups.groups):
        raise ValueError(f"group must be in [0, {len(dups.groups)}), got {group}")
    kept = dups.kept(group)
    members = sorted(dups.groups[group], key=lambda i: (i != kept, dups.paths[i]))[:max_images]
    cols = min(len(members), 6)
    rows = math.ceil(len(members) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, members, strict=False):
        try:
            ax.imshow(load_image(dups.paths[i]))
        except BadImageError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        d = dups.distance(i, kept)
        label = "kept" if i == kept else ("" if d is None else f"d = {_fmt(round(d, 4))}")
        ax.set_title(f"{Path(dups.paths[i]).name[:28]}\n{label}", fontsize=8, color="green" if i == kept else "black")
    fig.suptitle(f"group {group}: {len(dups.groups[group])} images ({dups.method}, keep {dups.keep_policy})", fontsize=10)
    fig.tight_layout()
    return fig


if __name__ == "__main__":  # the command line sits above this module and folder_eval: fast_search/duplicates_cli.py
    from fast_search.duplicates_cli import main

    cli.run(main)
