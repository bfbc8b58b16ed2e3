"""Ground truth of a search experiment: which database items each query should find.

Three sources, combined:

- the dataset rules of `data_retrieval.datasets` (a query dataset names the dataset it copies,
  and the query's stem starts with its original's: ``100007_jpg_compression_10`` -> ``100007``);
- `targets`, the same rule for any folder: ``{"my_copies": "my_originals"}``
  (``--targets my_copies=my_originals``);
- a CSV file for collections whose names follow no rule, one ``query_id,positive_id`` pair per
  row (several rows give a query several positives, as in ILIAS), an optional third column
  ``category`` (per-category scores) and an optional fourth column ``instance`` (the object a
  query shows, as in ILIAS: per-category mAP then averages each instance's queries first, then
  the instances), an optional header row starting with ``query``.

The result is a `GroundTruth`: (nq, m) database positions padded with -1 (a query without any is a
negative query) and an optional category per query.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_retrieval.datasets import SPECS, find_originals, split_id
from helpers.atomic import write_text

log = logging.getLogger(__name__)


@dataclass
class GroundTruth:
    """Positives (nq, m), -1 padded; categories and instances (nq,) str or None; sources[query dataset] = rule."""

    positives: np.ndarray
    categories: np.ndarray | None
    sources: dict[str, str]
    instances: np.ndarray | None = None

    @property
    def targets(self) -> np.ndarray:
        """(nq,) the first positive of each query (-1: negative), the seed's one-original view."""
        return self.positives[:, 0] if self.positives.shape[1] else np.full(len(self.positives), -1)


def parse_targets(items: Sequence[str] | dict[str, str] | None) -> dict[str, str]:
    """``["copies=originals", ...]`` (or a dict) -> ``{"copies": "originals"}``; errors show the form."""
    if not items:
        return {}
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        query, sep, target = str(item).partition("=")
        if not sep or not query or not target or "/" in query or "/" in target or "=" in target:
            raise ValueError(
                f"--targets expects QUERY_DATASET=DATABASE_DATASET (dataset names), got {item!r}"
            )
        out[query] = target
    return out


def read_ground_truth(path: str | os.PathLike) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``{query_id: [positive ids]}`` and ``{query_id: category}`` from a CSV file (module docstring)."""
    positives, categories, _ = read_ground_truth_rows(path)
    return positives, categories


def read_ground_truth_rows(path: str | os.PathLike) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """`read_ground_truth` plus ``{query_id: instance}`` from the optional fourth column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file {path} does not exist")
    positives: dict[str, list[str]] = {}
    categories: dict[str, str] = {}
    instances: dict[str, str] = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if line == 1 and row[0].lower() in ("query", "query_id", "query id"):
                continue
            if len(row) < 2 or not row[0] or not row[1]:
                raise ValueError(f"{path}:{line}: expected query_id,positive_id[,category], got {row!r}")
            positives.setdefault(row[0], [])
            if row[1] not in positives[row[0]]:
                positives[row[0]].append(row[1])
            if len(row) > 2 and row[2]:
                if categories.get(row[0], row[2]) != row[2]:
                    raise ValueError(f"{path}:{line}: query {row[0]!r} has two categories")
                categories[row[0]] = row[2]
            if len(row) > 3 and row[3]:
                if instances.get(row[0], row[3]) != row[3]:
                    raise ValueError(f"{path}:{line}: query {row[0]!r} has two instances")
                instances[row[0]] = row[3]
    if not positives:
        raise ValueError(f"ground-truth file {path} holds no query_id,positive_id rows")
    return positives, categories, instances


def build_ground_truth(
    query_ids: Sequence[str],
    database_ids: Sequence[str],
    targets: dict[str, str] | None = None,
    ground_truth: str | os.PathLike | None = None,
) -> GroundTruth:
    """Positions of each query's positives in `database_ids`, from the rules, `targets` and a CSV.

    A query listed in the CSV takes its positives from there; others follow the naming rule. Ids
    of the CSV missing from the database are counted and logged; a query dataset with no ground
    truth at all is logged as a warning (every query of it counts as a negative).
    """
    query_ids = [str(q) for q in query_ids]
    mapping = {n: s.targets for n, s in SPECS.items() if s.targets}
    mapping.update(targets or {})
    rows: list[list[int]] = [[] for _ in query_ids]
    first = find_originals(query_ids, list(database_ids), targets)
    for q, t in enumerate(first):
        if t >= 0:
            rows[q].append(int(t))
    categories = instances = None
    listed: set[str] = set()
    if ground_truth is not None:
        gt, cats, insts = read_ground_truth_rows(ground_truth)
        position = {str(d): i for i, d in enumerate(database_ids)}
        known = set(query_ids)
        unknown_queries = [q for q in gt if q not in known]
        missing = 0
        for q, qid in enumerate(query_ids):
            if qid in gt:
                listed.add(qid)
                found = [position[p] for p in gt[qid] if p in position]
                missing += len(gt[qid]) - len(found)
                rows[q] = found
        if unknown_queries:
            log.warning(
                "%s: %d query ids are not among the queries (e.g. %s)",
                ground_truth,
                len(unknown_queries),
                unknown_queries[0],
            )
        if missing:
            log.warning("%s: %d positive ids are not in the database (ignored)", ground_truth, missing)
        if cats:
            categories = np.array([cats.get(q, "") for q in query_ids], dtype=object)
        if insts:
            instances = np.array([insts.get(q, "") for q in query_ids], dtype=object)
    width = max([len(r) for r in rows] + [1])
    positives = np.full((len(query_ids), width), -1, dtype=np.int64)
    for q, r in enumerate(rows):
        positives[q, : len(r)] = r
    sources: dict[str, str] = {}
    for qid in query_ids:
        dataset = split_id(qid)[0] if "/" in qid else qid
        if qid in listed:
            sources.setdefault(dataset, "csv")
        elif dataset in mapping:
            sources.setdefault(dataset, f"names ({dataset} copies {mapping[dataset]})")
    for dataset in dict.fromkeys(split_id(q)[0] if "/" in q else q for q in query_ids):
        if dataset not in sources:
            log.warning(
                "NO GROUND TRUTH for query set %r: every one of its queries counts as a negative. "
                "Say which dataset it copies (--targets %s=ORIGINALS) or give a ground-truth CSV "
                "(--ground-truth FILE, rows query_id,positive_id).",
                dataset,
                dataset,
            )
    return GroundTruth(positives=positives, categories=categories, sources=sources, instances=instances)


def ilias_ground_truth(
    image_ids_dir: str | os.PathLike, out_csv: str | os.PathLike, taxonomy: str | os.PathLike | None = None
) -> int:
    """Write ILIAS's ground truth as our CSV; returns the number of rows.

    ILIAS's ``image_ids/`` folder holds ``image_query_ids.txt`` and ``positive_ids.txt`` (id first,
    comma-separated) and ``text_query_ids.txt``; a query's positives are the positives of its
    instance (the id's first path component), as ILIAS's evaluation defines them. With ILIAS's
    ``misc/taxonomy.json`` each row also gets the instance's category (per-category scores); every
    row names its instance (fourth column), so per-category mAP averages instances as ILIAS does.
    """
    folder = Path(image_ids_dir)

    def first_column(name: str) -> list[str]:
        path = folder / name
        if not path.is_file():
            return []
        return [line.split(",")[0].strip() for line in path.read_text().splitlines() if line.strip()]

    queries = first_column("image_query_ids.txt") + first_column("text_query_ids.txt")
    positives: dict[str, list[str]] = {}
    for pid in first_column("positive_ids.txt"):
        positives.setdefault(pid.split("/")[0], []).append(pid)
    if not queries or not positives:
        raise FileNotFoundError(
            f"{folder}: expected ILIAS's image_query_ids.txt / text_query_ids.txt and positive_ids.txt"
        )
    category: dict[str, str] = {}
    if taxonomy is not None:
        tree = json.loads(Path(taxonomy).read_text())
        for cat, subs in tree.items():
            for sub in subs.values():
                for instances in sub.values():
                    for instance in instances:
                        category[instance] = cat
    rows = []
    for q in queries:
        instance = q.split("/")[0]
        for p in positives.get(instance, []):
            rows.append(f"{q},{p},{category.get(instance, '')},{instance}")
    write_text(out_csv, "query_id,positive_id,category,instance\n" + "\n".join(rows) + "\n")
    return len(rows)
