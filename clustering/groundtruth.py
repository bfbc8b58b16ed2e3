"""Features of several datasets concatenated, with their ground-truth groups.

A group is "one original and all its copies":

- a query (a dataset whose spec names a target: memes, attacks) joins the group of its original,
  found with `data_retrieval.datasets.find_originals` among the loaded ids; if the target
  dataset is not loaded, among the target's ids listed on disk; if that folder is missing too,
  the original's name is the query's stem up to its first ``_`` (the datasets' naming rule);
- an image of a dataset that some loaded query dataset targets (templates, originals) is its
  own group's original;
- everything else (distractors, negative queries whose original is absent) follows
  ``negatives``: ``"singleton"`` (each its own group: a perfect clustering leaves it alone)
  or ``"exclude"`` (dropped before clustering).

``partition="clean"`` drops every image whose template (its group, or for a meme whose template
is absent, the template its name points to) is one of ``NOISY_MEME_TEMPLATES``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from data_retrieval.datasets import (
    NOISY_MEME_TEMPLATES,
    SPECS,
    DatasetError,
    find_originals,
    load_dataset,
    original_candidates,
    split_id,
)
from helpers.paths import DATASETS_DIR, FEATURES_DIR

logger = logging.getLogger(__name__)

PARTITIONS = ("full", "clean")
NEGATIVES = ("singleton", "exclude")


@dataclass
class ClusteringData:
    """Rows to cluster: ids, features, and ground-truth group per row (``groups[i]`` indexes ``group_names``)."""

    ids: np.ndarray
    features: np.ndarray
    binary: bool
    dim: int
    method: str
    datasets: list[str]
    groups: np.ndarray
    group_names: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_ground_truth(self) -> bool:
        """True when at least one group holds two or more images (otherwise scores mean nothing)."""
        return bool(len(self.groups)) and int(np.bincount(self.groups).max()) >= 2

    @property
    def n_groups(self) -> int:
        return len(self.group_names)


def _targets_of(datasets: Sequence[str]) -> dict[str, str]:
    return {d: SPECS[d].targets for d in datasets if d in SPECS and SPECS[d].targets}


def group_names(ids: Sequence[str], datasets_root: str | os.PathLike = DATASETS_DIR) -> np.ndarray:
    """The ground-truth group name of each id (its original's id), or "" for a negative/distractor."""
    ids = np.asarray(ids, dtype=object)
    dataset_of = np.array([split_id(i)[0] for i in ids], dtype=object)
    loaded = set(dataset_of.tolist())
    targets = _targets_of(sorted(loaded))
    out = np.full(len(ids), "", dtype=object)
    for name in sorted(loaded):
        rows = np.flatnonzero(dataset_of == name)
        target = targets.get(name)
        if target is None:
            if name in targets.values():
                out[rows] = ids[rows]  # an original: its own group
            continue
        if target in loaded:
            found = find_originals(ids[rows].tolist(), ids.tolist())
            out[rows[found >= 0]] = ids[found[found >= 0]]
            continue
        try:
            listed = load_dataset(target, root=datasets_root).ids
        except DatasetError:
            listed = None
        if listed is not None:
            found = find_originals(ids[rows].tolist(), listed)
            out[rows[found >= 0]] = np.asarray(listed, dtype=object)[found[found >= 0]]
        else:
            logger.warning("%s: originals (%s) neither loaded nor on disk; grouping by name", name, target)
            for r in rows:
                cands = original_candidates(ids[r], target)
                out[r] = cands[-1] if cands else ""
    return out


def _is_noisy(image_id: str, group: str) -> bool:
    """True when the image's template (its group, or the one its name points to) is a noisy one."""
    keys = [group] if group else [image_id]
    dataset = split_id(image_id)[0]
    target = SPECS[dataset].targets if dataset in SPECS else None
    if target and not group:
        keys += original_candidates(image_id, target)
    return any(split_id(k)[1] in NOISY_MEME_TEMPLATES for k in keys)


def load_clustering_data(
    method: str,
    datasets: Sequence[str],
    partition: str = "full",
    negatives: str = "singleton",
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    require_ground_truth: bool = True,
) -> ClusteringData:
    """Load and concatenate the features of `datasets` for `method`, with ground-truth groups.

    Raises ValueError (before any clustering) for an unknown partition/negatives mode, features
    of different kinds or sizes, or, with `require_ground_truth`, datasets without any group of
    two or more images.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}; valid partitions: {', '.join(PARTITIONS)}")
    if negatives not in NEGATIVES:
        raise ValueError(f"unknown negatives mode {negatives!r}; valid modes: {', '.join(NEGATIVES)}")
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    if not datasets:
        raise ValueError("no dataset given: name at least one, e.g. Kaggle_memes Kaggle_templates")
    from extractor.store import load_features  # lazy: the extractor package imports torch

    parts = [load_features(d, method, root=features_root) for d in datasets]
    first = parts[0]
    for d, p in zip(datasets[1:], parts[1:], strict=True):
        if (p.binary, p.dim) != (first.binary, first.dim):
            raise ValueError(
                f"{d}: {method} features are binary={p.binary}, dim={p.dim} but {datasets[0]} has "
                f"binary={first.binary}, dim={first.dim}"
            )
    ids = np.concatenate([p.ids for p in parts]).astype(object)
    feats = np.concatenate([p.features for p in parts])
    folders = {str(p.attrs.get("dataset") or d): str(p.attrs["folder"]) for d, p in zip(datasets, parts, strict=True) if p.attrs.get("folder")}
    names = group_names(ids, datasets_root)
    keep = np.ones(len(ids), dtype=bool)
    dropped: dict[str, int] = {}
    if negatives == "exclude":
        keep &= names != ""
        dropped["negatives"] = int((names == "").sum())
    if partition == "clean":
        noisy = np.array([_is_noisy(i, g) for i, g in zip(ids, names, strict=True)], dtype=bool)
        dropped["noisy_templates"] = int((noisy & keep).sum())
        keep &= ~noisy
        if not noisy.any():
            logger.info("partition 'clean' drops nothing: no image of the noisy meme templates here")
    names = np.where(names == "", ids, names)
    if not keep.any():
        raise ValueError(f"nothing left to cluster in {datasets} after dropping {dropped}")
    uniq, inverse = np.unique(names[keep].astype(str), return_inverse=True)
    data = ClusteringData(
        ids=ids[keep], features=feats[keep], binary=first.binary, dim=first.dim, method=method,
        datasets=datasets, groups=inverse.astype(np.int64), group_names=uniq, dropped=dropped, folders=folders,
    )  # fmt: skip
    if require_ground_truth and not data.has_ground_truth:
        raise ValueError(
            f"no ground truth in {datasets}: no image has a copy or an original among them "
            "(add the originals' or the queries' dataset, or turn the scores off)"
        )
    logger.info("%d images of %s, %d ground-truth groups, dropped %s", len(data), datasets, data.n_groups, dropped)
    return data
