"""Queries, database and ground truth of a search experiment, read from the feature store.

`check_sources` validates everything that can be known from the stores' metadata (same method,
dimension and kind of feature, non-empty database, k not larger than it) before any feature is
read; `load_search_data` then reads queries (and the database, unless it is streamed in blocks),
refuses NaN/inf rows naming their ids, and builds the ground truth with
`fast_search.groundtruth.build_ground_truth` (naming rules, ``targets``, a CSV file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from extractor.store import iter_chunks, read_index, store_info
from fast_search.groundtruth import GroundTruth, build_ground_truth
from fast_search.index import check_finite
from helpers.paths import FEATURES_DIR


@dataclass
class SearchData:
    """Query features and ids, database ids (features only when loaded whole), ground truth."""

    method: str
    binary: bool
    dim: int
    query_ids: np.ndarray
    queries: np.ndarray
    database_ids: np.ndarray
    database: np.ndarray | None
    truth: GroundTruth

    @property
    def positives(self) -> np.ndarray:
        """(nq, m) database positions of each query's positives, -1 padded."""
        return self.truth.positives

    @property
    def targets(self) -> np.ndarray:
        """(nq,) each query's first positive, -1 for a negative query."""
        return self.truth.targets

    @property
    def n_positive(self) -> int:
        return int((self.positives >= 0).any(axis=1).sum())

    @property
    def n_negative(self) -> int:
        return len(self.positives) - self.n_positive

    @cached_property
    def self_positions(self) -> np.ndarray:
        """(nq,) database position of each query's own id (the same image), -1 when it is not in the database."""
        position = {str(d): i for i, d in enumerate(self.database_ids.tolist())}
        return np.array([position.get(str(q), -1) for q in self.query_ids.tolist()], dtype=np.int64)

    @property
    def n_self(self) -> int:
        """Queries that are also database items: their self-match is excluded from every result."""
        return int((self.self_positions >= 0).sum())

    @cached_property
    def attacks(self) -> np.ndarray:
        """(nq,) the catalogue attack id that made each query (from its name), "" for none."""
        from data_retrieval.attacks import query_attack

        return np.array([query_attack(q) or "" for q in self.query_ids.tolist()], dtype=object)


def _as_list(value: str | Sequence[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str | os.PathLike) else list(value)
    if not items:
        raise ValueError(f"{what}: give at least one dataset, got {value!r}")
    return [str(v) for v in items]


def _weights(info: dict) -> tuple[bool, object, object] | None:
    """(has weights, weights, init_seed) from a store's ``params`` attribute; None for hashes and others."""
    params = info.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return None
    if not isinstance(params, dict) or "weights" not in params:
        return None
    provenance = info.get("provenance") if isinstance(info.get("provenance"), dict) else {}
    digest = provenance.get("weights_sha256")  # the file's content, when the store records it
    return True, digest or params.get("weights"), params.get("init_seed")


def _check_same_weights(infos: dict, database: list[str], queries: list[str]) -> None:
    """Refuse to compare stores of networks with other weights (or unseeded random ones from two runs)."""
    named = [(n, i) for n, i in zip(database, infos["database"], strict=False)]
    named += [(n, i) for n, i in zip(queries, infos["queries"], strict=False)]
    seen = [(n, _weights(i), tuple(i["files"])) for n, i in named]
    seen = [s for s in seen if s[1] is not None]
    if not seen:
        return
    name0, w0, files0 = seen[0]
    for name, w, files in seen[1:]:
        if w != w0:
            raise ValueError(
                f"{name!r} was extracted with weights={w[1]!r} init_seed={w[2]!r} but {name0!r} with "
                f"weights={w0[1]!r} init_seed={w0[2]!r}: features of different networks cannot be compared; "
                "extract both with the same weights (and --init-seed for random weights)"
            )
        if w[1] is None and w[2] is None and files != files0:
            raise ValueError(
                f"{name!r} and {name0!r} come from unseeded random weights (a store written before seeds were "
                "recorded): each extraction built a different network. Extract them again (--weights none "
                "now seeds the network and records the seed)."
            )


def check_sources(
    method: str,
    database: str | Sequence[str],
    queries: str | Sequence[str],
    k: int = 1,
    features_root: str | os.PathLike = FEATURES_DIR,
) -> dict:
    """Check the stores agree (method, dim, binary), the database is non-empty and holds >= k rows.

    Returns ``{"dim", "binary", "n_database", "n_queries", "database": [info...], "queries": [info...]}``.
    """
    database, queries = _as_list(database, "database"), _as_list(queries, "queries")
    infos = {}
    for role, names in (("database", database), ("queries", queries)):
        infos[role] = [store_info(name, method, features_root) for name in names]
        for name, info in zip(names, infos[role], strict=True):
            if info.get("method", method) != method:  # stores without attributes (ILIAS) are taken as named
                raise ValueError(
                    f"{role} {name!r}: {info['files'][0]} holds method {info['method']!r}, not {method!r} (--method)"
                )
    first = infos["database"][0]
    for role, items in infos.items():
        for name, info in zip(database if role == "database" else queries, items, strict=False):
            for key in ("method", "dim", "binary"):
                if info.get(key) != first.get(key):
                    raise ValueError(
                        f"{role} {name!r} has {key}={info.get(key)!r} but database {database[0]!r} has "
                        f"{key}={first.get(key)!r}: queries and database must come from the same method"
                    )
    _check_same_weights(infos, database, queries)
    n_database = sum(i["n"] for i in infos["database"])
    n_queries = sum(i["n"] for i in infos["queries"])
    if n_database == 0:
        raise ValueError(f"the database {database} holds no feature rows")
    if n_queries == 0:
        raise ValueError(f"the queries {queries} hold no feature rows")
    if k > n_database:
        raise ValueError(f"k={k} is larger than the database ({n_database} vectors in {database})")
    return {
        "dim": int(first["dim"]),
        "binary": bool(first["binary"]),
        "n_database": int(n_database),
        "n_queries": int(n_queries),
        "database": [
            {"dataset": n, "n": i["n"], "files": i["files"], "stamp": store_stamp(i)}
            for n, i in zip(database, infos["database"], strict=False)
        ],
        "queries": [
            {"dataset": n, "n": i["n"], "files": i["files"], "stamp": store_stamp(i)}
            for n, i in zip(queries, infos["queries"], strict=False)
        ],
    }


def store_stamp(info: dict) -> str:
    """What identifies a store's content: rows, ids checksum, and each file's size and mtime."""
    parts = [str(info["n"]), str(info.get("index_sha1", ""))]
    for path in info["files"]:
        st = os.stat(path)
        parts.append(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def read_ids(dataset: str, method: str, root: str | os.PathLike = FEATURES_DIR) -> np.ndarray:
    """The ids of a store (all shards, in order) without reading its features."""
    return np.concatenate([read_index(path) for path in store_info(dataset, method, root)["files"]]).astype(object)


def _load(names: list[str], method: str, root, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids and features of several stores in one preallocated array (no concatenation copy)."""
    total = sum(store_info(name, method, root)["n"] for name in names)
    ids, out, pos = [], None, 0
    for name in names:
        for chunk_ids, chunk in iter_chunks(name, method, root, chunk_size=65536):
            check_finite(chunk, chunk_ids, f"{what} {name!r}")
            if out is None:
                out = np.empty((total, chunk.shape[1]), dtype=chunk.dtype)
            out[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
            ids.append(chunk_ids)
    return np.concatenate(ids).astype(object), out


def load_search_data(
    method: str,
    database: str | Sequence[str],
    queries: str | Sequence[str],
    features_root: str | os.PathLike = FEATURES_DIR,
    load_database: bool = True,
    targets: dict[str, str] | None = None,
    ground_truth: str | os.PathLike | None = None,
) -> SearchData:
    """Read queries (and the database unless `load_database=False`) and the ground truth.

    `targets` maps a query dataset to the dataset it copies; `ground_truth` is a CSV of
    ``query_id,positive_id[,category]`` rows (see `fast_search.groundtruth`).
    """
    database, queries = _as_list(database, "database"), _as_list(queries, "queries")
    info = check_sources(method, database, queries, 1, features_root)
    query_ids, xq = _load(queries, method, features_root, "queries")
    if load_database:
        database_ids, xb = _load(database, method, features_root, "database")
    else:
        database_ids = np.concatenate([read_ids(n, method, features_root) for n in database])
        xb = None
    dup = len(database_ids) - len(set(database_ids.tolist()))
    if dup:
        raise ValueError(f"the database {database} holds {dup} duplicate ids: list each dataset once")
    return SearchData(
        method=method,
        binary=info["binary"],
        dim=info["dim"],
        query_ids=query_ids,
        queries=xq,
        database_ids=database_ids,
        database=xb,
        truth=build_ground_truth(list(query_ids), list(database_ids), targets, ground_truth),
    )


def database_blocks(
    database: str | Sequence[str],
    method: str,
    features_root: str | os.PathLike = FEATURES_DIR,
    block_size: int = 65536,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, features) blocks of every database dataset (every shard) in order, via `iter_chunks`."""
    for name in _as_list(database, "database"):
        yield from iter_chunks(name, method, features_root, chunk_size=block_size)
