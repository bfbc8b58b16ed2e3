# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""A search experiment: every (index, metric, sweep value) on one database and query set.

`run_experiment` validates everything first (name, existing results, stores, factory strings,
metrics, k), then for each configuration trains, adds and searches, scores the results with
`fast_search.metrics`, and writes ``Results/<name>/results.json`` (schema in docs/fast_search.md)
after every index, plus per-run ``runs/<key>.npz`` (D, I) and ``ids.npz`` for figures and galleries.
Exact results are cached in ``cache/exact_<metric>.npz`` and give approximate indexes their
recall relative to exact search. A configuration that faiss fails on is recorded and skipped.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from fast_search import metrics as M
from fast_search.block import array_blocks, block_search
from fast_search.data import check_sources, database_blocks, load_search_data
from fast_search.index import FaissIndex, check_metric, is_exact, make_index, sweep_param
from fast_search.results import (
    SCHEMA,
    _file_name,
    exact_cache_path,
    experiment_dir,
    fingerprint,
    library_versions,
    load_exact,
    machine_info,
    run_key,
    save_exact,
    score,
)
from helpers.jsonio import load_json, save_json
from helpers.paths import FEATURES_DIR, RESULTS_DIR

log = logging.getLogger(__name__)


@dataclass
class ExperimentConfig:
    """Every parameter of an experiment; saved verbatim under ``params`` in results.json."""

    name: str
    method: str
    database: list[str]
    queries: list[str]
    indexes: list[str] = field(default_factory=lambda: ["Flat"])
    metrics: list[str] = field(default_factory=lambda: ["cosine"])
    ks: list[int] = field(default_factory=lambda: [1, 10])
    nprobes: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    efsearches: list[int] = field(default_factory=lambda: [16, 64, 256])
    threads: int | None = None  # None: every core
    batch_size: int = 4096  # queries per faiss call
    block_size: int | None = None  # stream the database in blocks of this many rows (None: load it whole)
    train_size: int | None = (
        None  # rows used to train approximate indexes (None: all, or 100,000 when streaming)
    )
    features_root: str = str(FEATURES_DIR)
    results_root: str = str(RESULTS_DIR)


def _previous(folder: Path, cfg: ExperimentConfig, overwrite: bool, resume: bool) -> dict | None:
    """The unfinished results to resume, None to start afresh; refuses to clobber finished work."""
    path = folder / "results.json"
    if not path.exists() or overwrite:
        return None
    if not resume:
        raise FileExistsError(
            f"{path} exists; pass overwrite=True (--overwrite) to replace it, or resume=True (--resume) "
            "to finish an interrupted run"
        )
    previous = load_json(path)
    if previous.get("complete"):
        raise FileExistsError(f"{path} is complete: nothing to resume (overwrite=True to run it again)")
    changed = sorted(k for k, v in asdict(cfg).items() if previous.get("params", {}).get(k) != v)
    if changed:
        raise ValueError(f"cannot resume {path}: parameters {changed} differ from the interrupted run")
    return previous


def _validate(cfg: ExperimentConfig, overwrite: bool, resume: bool) -> tuple[Path, dict, dict | None]:
    folder = experiment_dir(cfg.name, cfg.results_root)
    previous = _previous(folder, cfg, overwrite, resume)
    if not cfg.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in cfg.ks):
        raise ValueError(f"ks must be positive integers, got {cfg.ks!r}")
    for name, values in (("nprobes", cfg.nprobes), ("efsearches", cfg.efsearches)):
        if any(not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"{name} must be positive integers, got {values!r}")
    if not cfg.indexes or not cfg.metrics:
        raise ValueError(f"give at least one index and one metric, got {cfg.indexes!r} and {cfg.metrics!r}")
    info = check_sources(cfg.method, cfg.database, cfg.queries, max(cfg.ks), cfg.features_root)
    for metric in cfg.metrics:
        check_metric(metric, info["binary"])
    train_n = (
        info["n_database"] if cfg.block_size is None else min(info["n_database"], cfg.train_size or 100_000)
    )
    for factory in cfg.indexes:
        for metric in cfg.metrics:
            make_index(factory, info["dim"], metric, info["binary"])
        nlist = re.search(r"IVF(\d+)", factory)
        if nlist and int(nlist[1]) > train_n:
            raise ValueError(
                f"{factory!r} needs at least {nlist[1]} training vectors; the database gives {train_n}"
            )
    return folder, info, previous


def _fingerprint(cfg: ExperimentConfig, info: dict, metric: str) -> str:
    files = [f for part in ("database", "queries") for item in info[part] for f in item["files"]]
    return fingerprint(cfg.method, cfg.database, cfg.queries, metric, files)


def exact_results(cfg: ExperimentConfig, data, info: dict, metric: str, k: int, folder: Path):
    """Exact (D, I) for `metric`, from ``cache/exact_<metric>.npz`` when it matches, else computed and cached."""
    path, fp = exact_cache_path(folder, metric), _fingerprint(cfg, info, metric)
    cached = load_exact(path, fp, len(data.queries), k)
    if cached is not None:
        return cached
    if data.database is not None:
        blocks = array_blocks(data.database)
    else:
        blocks = database_blocks(cfg.database, cfg.method, cfg.features_root, cfg.block_size or 65536)
    D, I, _ = block_search(data.queries, blocks, k, metric, total=info["n_database"], progress=True)
    save_exact(path, D, I, fp)
    return D, I


def _build(cfg, data, factory: str, metric: str) -> FaissIndex:
    index = FaissIndex(factory, metric, data.binary, cfg.batch_size)
    if data.database is not None:
        return index.fit(data.database).add(data.database)
    train, have = [], 0
    limit = cfg.train_size or 100_000
    for _, block in database_blocks(cfg.database, cfg.method, cfg.features_root, cfg.block_size):
        train.append(block[: limit - have])
        have += len(train[-1])
        if have >= limit:
            break
    index.fit(np.concatenate(train))
    blocks = database_blocks(cfg.database, cfg.method, cfg.features_root, cfg.block_size)
    for _ids, block in tqdm(blocks, desc=f"adding to {factory}", unit="block"):
        index.add(block)
    return index


def _run_index(cfg, data, info, folder: Path, factory: str, metric: str) -> list[dict]:
    kmax = max(cfg.ks)
    base = {"index": factory, "metric": metric, "k": kmax, "exact": is_exact(factory)}
    if is_exact(factory) and cfg.block_size is not None:  # bounded memory: block search over the store
        blocks = database_blocks(cfg.database, cfg.method, cfg.features_root, cfg.block_size)
        D, I, stats = block_search(
            data.queries, blocks, kmax, metric, total=info["n_database"], progress=True
        )
        save_exact(exact_cache_path(folder, metric), D, I, _fingerprint(cfg, info, metric))
        dim_bytes = data.dim // 8 if data.binary else data.dim * 4
        timing = {"train_time_s": 0.0, "add_time_s": 0.0, "search_time_s": stats["search_time_s"]}
        sweeps = [(None, None, D, I, timing, info["n_database"] * dim_bytes)]
    else:
        index = _build(cfg, data, factory, metric)
        param = sweep_param(factory)
        values = {"nprobe": cfg.nprobes, "efSearch": cfg.efsearches}.get(param, [None])
        sweeps = []
        nbytes = index.memory_bytes()  # does not change with nprobe / efSearch
        for value in values:
            if param is not None:
                index.set_param(param, value)
            D, I = index.search(data.queries, kmax)
            timing = {
                "train_time_s": index.train_time_,
                "add_time_s": index.add_time_,
                "search_time_s": index.search_time_,
            }
            sweeps.append((param, value, D, I, timing, nbytes))
        if is_exact(factory):
            save_exact(exact_cache_path(folder, metric), D, I, _fingerprint(cfg, info, metric))
        del index
    runs = []
    for param, value, D, I, timing, nbytes in sweeps:
        key = run_key(factory, metric, param, value)
        if is_exact(factory):
            vs_exact = 1.0
        else:
            _, I_exact = exact_results(cfg, data, info, metric, kmax, folder)
            vs_exact = M.recall_vs_exact(I, I_exact, kmax)
        (folder / "runs").mkdir(parents=True, exist_ok=True)
        np.savez(folder / "runs" / _file_name(key), D=D, I=I)
        search_s = timing["search_time_s"]
        runs.append(
            {
                "key": key,
                **base,
                "param": param,
                "value": value,
                **score(D, I, data.targets, cfg.ks),
                "recall_vs_exact": vs_exact,
                **timing,
                "queries_per_s": len(data.queries) / search_s if search_s > 0 else None,
                "index_bytes": int(nbytes),
                "file": f"runs/{_file_name(key)}",
            }
        )
        log.info("%s: recall@1=%s", key, runs[-1]["recall_at_k"].get("1"))
    return runs


def run_experiment(
    name: str,
    method: str,
    database: list[str] | str,
    queries: list[str] | str,
    overwrite: bool = False,
    resume: bool = False,
    **params,
) -> dict:
    """Run every configuration and write ``results_root/name/results.json``; returns that dict.

    `params` are the other `ExperimentConfig` fields (indexes, metrics, ks, nprobes, efsearches,
    threads, batch_size, block_size, train_size, features_root, results_root). Raises before any
    work on a bad name, an existing experiment (unless `overwrite`), mismatched or empty stores, k
    larger than the database, an unknown factory string or metric, NaN/inf features. With
    `resume`, an interrupted experiment (``complete: false``) with the same parameters keeps its
    finished (index, metric) groups and runs only the others.
    """
    database = [database] if isinstance(database, str) else list(database)
    queries = [queries] if isinstance(queries, str) else list(queries)
    unknown = set(params) - {f for f in ExperimentConfig.__dataclass_fields__} - {"name", "method"}
    if unknown:
        raise TypeError(
            f"unknown parameters {sorted(unknown)}; valid: {sorted(ExperimentConfig.__dataclass_fields__)}"
        )
    params = {k: (str(v) if k.endswith("_root") else v) for k, v in params.items()}
    cfg = ExperimentConfig(name=name, method=method, database=database, queries=queries, **params)
    folder, info, previous = _validate(cfg, overwrite, resume)
    data = load_search_data(
        method, database, queries, cfg.features_root, load_database=cfg.block_size is None
    )
    threads = cfg.threads or os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    if overwrite and folder.exists():
        for sub in ("runs", "neighbors"):
            shutil.rmtree(folder / sub, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "ids.npz",
        query_ids=np.array(data.query_ids, dtype=str),
        database_ids=np.array(data.database_ids, dtype=str),
        targets=data.targets,
    )
    result = {
        "schema": SCHEMA,
        "name": name,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "complete": False,
        "machine": machine_info(),
        "threads": threads,
        "versions": library_versions(),
        "params": asdict(cfg),
        "data": {
            "method": method,
            "dim": data.dim,
            "binary": data.binary,
            "n_database": len(data.database_ids),
            "n_queries": len(data.query_ids),
            "n_positive": data.n_positive,
            "n_negative": data.n_negative,
        },
        "runs": [],
        "errors": [],
    }
    if previous is not None:
        result.update(runs=previous["runs"], errors=previous["errors"], created=previous["created"])
    done = {(r["index"], r["metric"]) for r in result["runs"] + result["errors"]}
    for factory in cfg.indexes:
        for metric in cfg.metrics:
            if (factory, metric) in done:
                log.info("%s--%s: already done, skipped (resume)", factory, metric)
                continue
            try:
                result["runs"].extend(_run_index(cfg, data, info, folder, factory, metric))
            except (RuntimeError, MemoryError) as err:  # faiss failure: record and go on
                log.warning("%s--%s failed: %s", factory, metric, err)
                result["errors"].append(
                    {"index": factory, "metric": metric, "error": str(err).strip()[-500:]}
                )
            save_json(result, folder / "results.json")
    result["complete"] = True
    save_json(result, folder / "results.json")
    return result


def default_search_params(
    method: str, database: list[str] | str, features_root: str | os.PathLike = FEATURES_DIR
) -> dict:
    """Indexes and metrics that suit a method's features: exact plus one IVF sized for the database.

    Hashes get ``["BFlat", "BIVF<n>"]`` with ``hamming``, float features ``["Flat", "IVF<n>,Flat"]``
    with ``cosine``; n ~ 4 sqrt(N), capped so faiss has >= 39 training vectors per list. Also returns
    an nprobe sweep up to n.
    """
    database = [database] if isinstance(database, str) else list(database)
    info = check_sources(method, database, database, 1, features_root)
    n = info["n_database"]
    nlist = max(1, min(int(4 * n**0.5), n // 39))
    nprobes = sorted({p for p in (1, 2, 4, 8, 16, 32, 64, nlist) if p <= nlist})
    if info["binary"]:
        return {"indexes": ["BFlat", f"BIVF{nlist}"], "metrics": ["hamming"], "nprobes": nprobes}
    return {"indexes": ["Flat", f"IVF{nlist},Flat"], "metrics": ["cosine"], "nprobes": nprobes}
