"""Training pairs read from the feature store, and adapted features written back as a new method."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_retrieval.datasets import find_originals
from extractor.store import iter_chunks, load_features, store_info, store_path, write_features
from finetuning.adaptation import AdaptationTrainer
from helpers.paths import FEATURES_DIR


@dataclass
class Pairs:
    """Query rows and the rows of their originals; `groups` is the original's index in the database."""

    queries: np.ndarray
    originals: np.ndarray
    groups: np.ndarray
    query_ids: np.ndarray
    n_negative: int


def load_pairs(
    query_dataset: str, database_dataset: str, method: str, root: str | os.PathLike = FEATURES_DIR
) -> Pairs:
    """(query, original) feature pairs of `method`; negative queries (no original in the database) are left out."""
    q = load_features(query_dataset, method, root)
    db = load_features(database_dataset, method, root)
    if q.binary or db.binary:
        raise ValueError(f"method {method!r} stores binary hashes; adaptation needs float features")
    targets = find_originals(list(q.ids), list(db.ids), targets={query_dataset: database_dataset})
    keep = targets >= 0
    if keep.sum() < 2:
        raise ValueError(
            f"only {int(keep.sum())} queries of {query_dataset!r} have their original in {database_dataset!r}; need >= 2"
        )
    return Pairs(
        queries=q.features[keep].astype(np.float32),
        originals=db.features[targets[keep]].astype(np.float32),
        groups=targets[keep],
        query_ids=q.ids[keep],
        n_negative=int((~keep).sum()),
    )


def adapted_method(method: str, suffix: str = "+adapt") -> str:
    """Name of the adapted features, filename-safe: `<method>+adapt` with anything odd replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9._+\-]", "_", f"{method}{suffix}")


def write_adapted(
    trainer: AdaptationTrainer,
    dataset: str,
    method: str,
    root: str | os.PathLike = FEATURES_DIR,
    suffix: str = "+adapt",
    chunk_size: int = 65536,
    params: dict | None = None,
) -> Path:
    """Transform every row of (dataset, method) and write them as (dataset, `adapted_method(method)`)."""
    new = adapted_method(method, suffix)
    info = store_info(dataset, method, root)
    ids, feats = [], []
    for chunk_ids, chunk in iter_chunks(dataset, method, root, chunk_size=chunk_size):
        ids.append(chunk_ids)
        feats.append(trainer.transform(chunk))
    out = store_path(dataset, new, root)
    if out.exists():
        out.unlink()  # a new training replaces the adapted features it derived
    return write_features(
        out,
        list(np.concatenate(ids)) if ids else [],
        np.concatenate(feats) if feats else np.zeros((0, trainer.module_.linear.out_features), np.float32),
        method=new,
        dataset=info.get("dataset", dataset),
        params={"source_method": method, **(params or {})},
    )
