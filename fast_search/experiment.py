# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""A search experiment: every (index, metric, sweep value) on one database and query set.

`run_experiment` runs in steps that pass small dataclasses: `ExperimentConfig.from_params`,
`_validate` -> `Plan`, `load_search_data` -> `SearchData` (with its `GroundTruth`), then per
(index, metric) `_search_sweeps` -> `Sweep` (one per nprobe / efSearch value and search-time
improvement, `fast_search.improve`) and `_score_sweep` -> one row. It validates everything first
(name, existing results, stores, factory strings, metrics, k, ground truth), searches
``max(ks) + 1`` neighbours (the extra one closes ties, see `fast_search.metrics`), and writes ``Results/<name>/results.json`` (schema in docs/fast_search.md)
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from data_retrieval.datasets import generator_kind, shared_generators
from fast_search import metrics as M
from fast_search.autoindex import AutoIndex, choose_for_experiment, tune_experiment_index
from fast_search.block import array_blocks, block_search
from fast_search.data import check_sources, database_blocks, load_search_data, read_ids
from fast_search.groundtruth import parse_targets
from fast_search.improve import (
    NORMALISABLE_METRICS,
    SIMILARITY_METRICS,
    adapt,
    alpha_qe,
    check_normalisable,
    load_adaptation,
    score_normalise,
)
from fast_search.index import FaissIndex, check_metric, is_exact, make_index, sweep_param
from fast_search.ivfpq import PREFIX as CUSTOM_PREFIX
from fast_search.ivfpq import CustomIndex, is_custom
from fast_search.ondisk import build_experiment_index, check_ondisk, sample_rows
from fast_search.results import (
    SCHEMA,
    _file_name,
    exact_cache_path,
    experiment_dir,
    fingerprint,
    library_versions,
    load_exact,
    machine_info,
    per_negative_kind,
    run_key,
    save_exact,
    score,
)
from helpers.atomic import move_folder, save_npz
from helpers.digest import file_sha256
from helpers.jsonio import load_json, save_json
from helpers.paths import FEATURES_DIR, RESULTS_DIR

log = logging.getLogger(__name__)

NO_GROUND_TRUTH = (
    "NO GROUND TRUTH for any query set %s: every query counts as a negative, so recall, mAP and "
    "micro-AP are undefined (only neighbours are found). Say which dataset each query set copies "
    "(targets / --targets COPIES=ORIGINALS) or give a ground-truth CSV (ground_truth / --ground-truth FILE)."
)


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
    ondisk: bool = False  # IVF indexes: shard indexes merged on disk, searched memory-mapped (fast_search.ondisk)
    memory_budget: str | None = None  # indexes=["auto"]: budget of the chosen index ("4GB"; None: 4GB)
    max_query_ms: float = 10.0  # indexes=["auto"]: nprobe / efSearch tuned to this latency per query
    features_root: str = str(FEATURES_DIR)
    results_root: str = str(RESULTS_DIR)
    targets: dict[str, str] = field(default_factory=dict)  # query dataset -> dataset it copies
    ground_truth: str | None = None  # CSV of query_id,positive_id[,category] rows
    query_expansion: int = 0  # alpha-QE over this many neighbours (0: off), its own rows
    qe_alpha: float = 3.0
    dba: int = 0  # database-side augmentation over this many neighbours (0: off), its own rows
    background: list[str] = field(default_factory=list)  # datasets for SSCD score normalisation
    snorm_beta: float = 1.0
    snorm_n: int = 3
    adaptation: str | None = None  # .npy / .npz linear adaptation applied to queries and database

    @classmethod
    def from_params(cls, name: str, method: str, database, queries, **params) -> ExperimentConfig:
        """The config of `run_experiment`'s arguments; unknown parameters raise TypeError naming the valid ones."""
        unknown = set(params) - set(cls.__dataclass_fields__) - {"name", "method"}
        if unknown:
            raise TypeError(
                f"unknown parameters {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}"
            )
        params = {
            k: (
                str(v)
                if v is not None and (k.endswith("_root") or k in ("ground_truth", "adaptation"))
                else v
            )
            for k, v in params.items()
        }
        if "targets" in params:
            params["targets"] = parse_targets(params["targets"])
        database = [database] if isinstance(database, str) else list(database)
        queries = [queries] if isinstance(queries, str) else list(queries)
        background = params.get("background") or []
        params["background"] = [background] if isinstance(background, str) else list(background)
        return cls(name=name, method=method, database=database, queries=queries, **params)

    @property
    def kmax(self) -> int:
        return max(self.ks)

    def sorted_sources(self) -> tuple[list[str], list[str]]:
        """Database and query datasets in one canonical order: results never depend on the order given."""
        return sorted(self.database), sorted(self.queries)


@dataclass
class Plan:
    """What validation found: the experiment folder, the stores' facts, the run to resume (or None)."""

    folder: Path
    info: dict
    previous: dict | None
    auto: AutoIndex | None = None  # indexes=["auto"]: the chosen factory string and why (fast_search.autoindex)


@dataclass
class Sweep:
    """One search of one configuration: its sweep value, results, timings and index size."""

    param: str | None
    value: int | None
    D: np.ndarray
    I: np.ndarray
    timing: dict
    nbytes: int
    variant: str = ""  # "" or the search-time improvements applied: "aqe", "dba", "adapt", "...+snorm"


def _previous(folder: Path, cfg: ExperimentConfig, overwrite: bool, resume: bool) -> dict | None:
    """The unfinished results to resume, None to start afresh; refuses to clobber finished work."""
    path = folder / "results.json"
    if not path.exists() or overwrite:
        return None
    if not resume:
        raise FileExistsError(
            f"{path} exists; rerun with --overwrite (overwrite=True) to replace it, or --resume (resume=True) "
            "to finish an interrupted run"
        )
    previous = load_json(path)
    if previous.get("complete"):
        raise FileExistsError(f"{path} is complete: nothing to resume (--overwrite, overwrite=True, runs it again)")
    def same(key: str, old, new) -> bool:  # the order of datasets changes nothing (sorted internally)
        return sorted(old or []) == sorted(new) if key in ("database", "queries", "background") else old == new

    changed = sorted(k for k, v in asdict(cfg).items() if not same(k, previous.get("params", {}).get(k), v))
    if changed:
        raise ValueError(f"cannot resume {path}: parameters {changed} differ from the interrupted run")
    return previous


def _validate(cfg: ExperimentConfig, overwrite: bool, resume: bool) -> Plan:
    folder = experiment_dir(cfg.name, cfg.results_root)
    recover_experiment(folder)
    previous = _previous(folder, cfg, overwrite, resume)
    if not cfg.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in cfg.ks):
        raise ValueError(f"ks must be positive integers, got {cfg.ks!r}")
    for name, values in (("nprobes", cfg.nprobes), ("efsearches", cfg.efsearches)):
        if any(not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"{name} must be positive integers, got {values!r}")
    if not cfg.indexes or not cfg.metrics:
        raise ValueError(f"give at least one index and one metric, got {cfg.indexes!r} and {cfg.metrics!r}")
    for name in ("query_expansion", "dba", "snorm_n"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if cfg.ground_truth is not None and not Path(cfg.ground_truth).is_file():
        raise FileNotFoundError(f"ground-truth file {cfg.ground_truth} does not exist")
    if cfg.adaptation is not None:
        load_adaptation(cfg.adaptation)
    info = check_sources(cfg.method, *cfg.sorted_sources(), cfg.kmax, cfg.features_root)
    if previous is not None:
        _check_unchanged(previous, info, folder)
    shared = sorted(set(cfg.background) & (set(cfg.database) | set(cfg.queries)))
    if shared:
        raise ValueError(
            f"background {shared} is also a database or query set: score normalisation needs a disjoint "
            "background (a query found in it would be normalised against itself)"
        )
    if cfg.background:
        check_sources(cfg.method, cfg.background, cfg.sorted_sources()[1], cfg.snorm_n, cfg.features_root)
        for metric in cfg.metrics:  # never silently ignored: normalised or refused
            check_normalisable(metric)
    for metric in cfg.metrics:
        check_metric(metric, info["binary"])
    train_n = (
        info["n_database"] if cfg.block_size is None else min(info["n_database"], cfg.train_size or 100_000)
    )
    auto = choose_for_experiment(cfg, info) if "auto" in cfg.indexes else None
    for factory in cfg.indexes:
        factory = auto.factory if factory == "auto" else factory
        if cfg.ondisk and not is_exact(factory):
            check_ondisk(factory, info["binary"])
        for metric in cfg.metrics:
            if is_custom(factory):  # the from-scratch IVF-PQ (fast_search/ivfpq.py)
                CustomIndex(factory, metric, info["binary"]).check_dim(info["dim"])
            else:
                make_index(factory, info["dim"], metric, info["binary"])
        nlist = re.search(r"IVF(\d+)", factory)
        if nlist and int(nlist[1]) > train_n:
            raise ValueError(
                f"{factory!r} needs at least {nlist[1]} training vectors; the database gives {train_n}"
            )
    return Plan(folder=folder, info=info, previous=previous, auto=auto)


def _stamps(info: dict) -> dict[str, str]:
    return {f"{role}/{item['dataset']}": item["stamp"] for role in ("database", "queries") for item in info[role]}


def _check_unchanged(previous: dict, info: dict, folder: Path) -> None:
    """Refuse to resume when a store changed since the interrupted run (its neighbours would not fit)."""
    before, now = previous.get("stores"), _stamps(info)
    if before is None:
        raise ValueError(f"cannot resume {folder}: it does not record its stores; rerun with --overwrite")
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        raise ValueError(
            f"cannot resume {folder}: the stores {changed} changed since the interrupted run; rerun with --overwrite"
        )


def _fingerprint(cfg: ExperimentConfig, info: dict, metric: str) -> str:
    files = [f for part in ("database", "queries") for item in info[part] for f in item["files"]]
    return fingerprint(cfg.method, *cfg.sorted_sources(), metric, files)


def _width(cfg: ExperimentConfig, n_database: int) -> int:
    """Neighbours searched: max(ks) + 1, so ties at the k-th distance can be counted (fast_search.metrics)."""
    return min(cfg.kmax + 1, n_database)


def drop_self_matches(D: np.ndarray, I: np.ndarray, self_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own database item (``self_pos[q]``, -1: none) from its results, one column fewer.

    A folder searched against itself finds every image at distance 0; that is not a match. The
    remaining results keep their order; the rows are searched with one extra column so none is lost.
    """
    if D.shape[1] == 0 or not (self_pos >= 0).any():
        return D[:, : max(D.shape[1] - 1, 0)], I[:, : max(I.shape[1] - 1, 0)]
    is_self = (I == self_pos[:, None]) & (self_pos[:, None] >= 0)
    order = np.argsort(is_self, axis=1, kind="stable")  # the self-match (at most one) moves to the end
    D2, I2 = np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)
    return D2[:, :-1], I2[:, :-1]


def _search_width(cfg: ExperimentConfig, data, n_database: int) -> int:
    """Neighbours to ask the index for: `_width`, plus one when queries are database items (self-matches)."""
    return min(_width(cfg, n_database) + (1 if data.n_self else 0), n_database)


def _found(data, D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw index results without self-matches (when queries are database items)."""
    return drop_self_matches(D, I, data.self_positions) if data.n_self else (D, I)


def _pad(D: np.ndarray, I: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to `width` columns with (inf, -1) when the whole database was returned (k = database size)."""
    if D.shape[1] >= width:
        return D, I
    extra = width - D.shape[1]
    return (
        np.hstack([D, np.full((len(D), extra), np.inf, D.dtype)]),
        np.hstack([I, np.full((len(I), extra), -1, I.dtype)]),
    )


def exact_results(cfg: ExperimentConfig, data, info: dict, metric: str, k: int, folder: Path):
    """Exact (D, I) for `metric`, from ``cache/exact_<metric>.npz`` when it matches, else computed and cached."""
    path, fp = exact_cache_path(folder, metric), _fingerprint(cfg, info, metric)
    cached = load_exact(path, fp, len(data.queries), k)
    if cached is not None:
        return cached
    if data.database is not None:
        blocks = array_blocks(data.database)
    else:
        blocks = database_blocks(
            cfg.sorted_sources()[0], cfg.method, cfg.features_root, cfg.block_size or 65536
        )
    k_search = min(k + (1 if data.n_self else 0), info["n_database"])
    D, I, _ = block_search(data.queries, blocks, k_search, metric, total=info["n_database"], progress=True)
    D, I = _pad(*_found(data, D, I), k)
    save_exact(path, D, I, fp)
    return D, I


def _build(cfg, data, factory: str, metric: str, xb: np.ndarray | None = None) -> FaissIndex:
    if cfg.ondisk:
        folder = experiment_dir(cfg.name, cfg.results_root) / "ondisk" / _file_name(f"{factory}--{metric}")[:-4]
        return build_experiment_index(cfg, data, factory, metric, folder, xb)
    kind = CustomIndex if is_custom(factory) else FaissIndex
    index = kind(factory, metric, data.binary, cfg.batch_size)
    xb = data.database if xb is None else xb
    if xb is not None:
        return index.fit(xb).add(xb)
    database = cfg.sorted_sources()[0]
    n = len(data.database_ids)  # a sample chosen by content, not the first rows: order- and name-free
    index.fit(sample_rows(database_blocks(database, cfg.method, cfg.features_root, cfg.block_size), n,
                          min(n, cfg.train_size or 100_000)))  # fmt: skip
    blocks = database_blocks(database, cfg.method, cfg.features_root, cfg.block_size)
    for _ids, block in tqdm(blocks, desc=f"adding to {factory}", unit="block"):
        index.add(block)
    return index


def _search_sweeps(cfg, data, info, factory: str, metric: str, xq, xb, variant: str, auto=None) -> list[Sweep]:
    """Build `factory` on `xb` (None: the stored database) and search `xq` at every sweep value.

    With ``cfg.query_expansion`` each search is followed by an alpha-QE search (variant + "aqe").
    """
    width = _search_width(cfg, data, info["n_database"])
    if is_exact(factory) and cfg.block_size is not None and xb is None:  # bounded memory: block search
        blocks = database_blocks(cfg.sorted_sources()[0], cfg.method, cfg.features_root, cfg.block_size)
        D, I, stats = block_search(xq, blocks, width, metric, total=info["n_database"], progress=True)
        D, I = _found(data, D, I)
        dim_bytes = data.dim // 8 if data.binary else data.dim * 4
        timing = {"train_time_s": 0.0, "add_time_s": 0.0, "search_time_s": stats["search_time_s"]}
        return [Sweep(None, None, *_pad(D, I, cfg.kmax + 1), timing, info["n_database"] * dim_bytes, variant)]
    index = _build(cfg, data, factory, metric, xb)
    param = sweep_param(factory.removeprefix(CUSTOM_PREFIX))
    values = {"nprobe": cfg.nprobes, "efSearch": cfg.efsearches}.get(param, [None])
    if auto is not None:  # indexes=["auto"]: the one value tuned to the latency budget
        values = [tune_experiment_index(auto, index, cfg, data, metric, width)]
        if auto.factory != factory:  # slower than exact search at its fastest setting: exact search instead
            del index
            return _search_sweeps(cfg, data, info, auto.factory, metric, xq, xb, variant)
    nbytes = index.memory_bytes()  # does not change with nprobe / efSearch
    sweeps = []
    for value in values:
        if param is not None:
            index.set_param(param, value)
        D, I = _found(data, *index.search(xq, width))
        timing = {
            "train_time_s": index.train_time_,
            "add_time_s": index.add_time_,
            "search_time_s": index.search_time_,
        }
        sweeps.append(Sweep(param, value, *_pad(D, I, cfg.kmax + 1), timing, nbytes, variant))
        if cfg.query_expansion and metric in SIMILARITY_METRICS:
            base = data.database if xb is None else xb
            xq2 = alpha_qe(xq, base, D, I, metric, cfg.query_expansion, cfg.qe_alpha)
            D2, I2 = _found(data, *index.search(xq2, width))
            timing2 = {**timing, "search_time_s": timing["search_time_s"] + index.search_time_}
            name = "+".join(v for v in (variant, "aqe") if v)
            sweeps.append(Sweep(param, value, *_pad(D2, I2, cfg.kmax + 1), timing2, nbytes, name))
    del index
    return sweeps


def _variants(cfg, data, metric: str) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, queries, database or None for the stored one) of every search to run for `metric`."""
    out = [("", data.queries, None)]
    needs_db = cfg.query_expansion or cfg.dba or cfg.adaptation
    if needs_db and data.database is None:
        raise RuntimeError(
            "query expansion, DBA and adaptation need the database in memory (no --block-size)"
        )
    if cfg.dba and metric in SIMILARITY_METRICS:
        xb = data.database
        Dd, Id, _ = block_search(xb, array_blocks(xb), min(cfg.dba + 1, len(xb)), metric, progress=True)
        out.append(("dba", data.queries, alpha_qe(xb, xb, Dd, Id, metric, cfg.dba + 1, cfg.qe_alpha)))
    if cfg.adaptation is not None and not data.binary:
        W, b = load_adaptation(cfg.adaptation)
        out.append(("adapt", adapt(data.queries, W, b), adapt(data.database, W, b)))
    return out


def _background(cfg, data, metric: str) -> np.ndarray | None:
    """Distances of every query to its ``snorm_n`` nearest background items (None: no normalisation)."""
    if not cfg.background or metric not in NORMALISABLE_METRICS:
        return None
    blocks = database_blocks(sorted(cfg.background), cfg.method, cfg.features_root, cfg.block_size or 65536)
    D, _, _ = block_search(data.queries, blocks, cfg.snorm_n, metric, progress=True)
    return D


def _score_sweep(cfg, data, info, folder: Path, factory: str, metric: str, s: Sweep) -> dict:
    """One row of results.json: every measure of a sweep, its timings, and its (D, I) saved to runs/."""
    kmax = cfg.kmax
    key = run_key(factory, metric, s.param, s.value) + (f"--{s.variant}" if s.variant else "")
    if s.variant:
        vs_exact = None  # another query or database: exact results of the plain features do not apply
    elif is_exact(factory):
        vs_exact = 1.0
    else:
        D_exact, I_exact = exact_results(cfg, data, info, metric, kmax, folder)
        vs_exact = M.recall_vs_exact(s.I, I_exact, kmax, s.D, D_exact)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    run_sha256 = file_sha256(save_npz(folder / "runs" / _file_name(key), D=s.D, I=s.I))
    search_s = s.timing["search_time_s"]
    run = {
        "key": key,
        "index": factory,
        "metric": metric,
        "k": kmax,
        "exact": is_exact(factory),
        "param": s.param,
        "value": s.value,
        "variant": s.variant,
        **score(s.D, s.I, data.positives, cfg.ks, data.truth.categories, data.truth.instances, data.attacks),
        **_by_negative_kind(cfg, data, s),
        "recall_vs_exact": vs_exact,
        **s.timing,
        "queries_per_s": len(data.queries) / search_s if search_s > 0 else None,
        "index_bytes": int(s.nbytes),
        "file": f"runs/{_file_name(key)}",
        "sha256": run_sha256,  # readers check it: a damaged file is named, never read as other numbers
    }
    log.info("%s: recall@1=%s", key, run["recall_at_k"].get("1"))
    return run


def _by_negative_kind(cfg, data, s: Sweep) -> dict:
    """``{"by_negative_kind": ...}`` when the negatives are of known kinds (the demo's), else {}."""
    kinds = [generator_kind(q) or "" for q in data.query_ids]
    if not any(kinds):
        return {}
    return {"by_negative_kind": per_negative_kind(s.D, s.I, data.positives, cfg.ks, kinds)}


def check_background_generators(cfg, data) -> None:
    """Refuse a score-normalisation background made by a generator that also made negative queries."""
    if not cfg.background:
        return
    negatives = [q for q, p in zip(data.query_ids, data.positives, strict=True) if not (p >= 0).any()]
    background = [i for name in sorted(cfg.background) for i in read_ids(name, cfg.method, cfg.features_root)]
    shared = shared_generators(background, negatives)
    if shared:
        raise ValueError(
            f"background {sorted(cfg.background)} shares generator(s) {', '.join(shared[:5])}"
            f"{' ...' if len(shared) > 5 else ''} with negative queries: score normalisation would be judged on "
            "negatives drawn like its background, which flatters it; use a background of other images"
        )


def _run_index(cfg, data, info, folder: Path, factory: str, metric: str, auto=None) -> list[dict]:
    """Every row of one (index, metric): its sweep, then each search-time improvement asked for."""
    sweeps: list[Sweep] = []
    for variant, xq, xb in _variants(cfg, data, metric):
        sweeps += _search_sweeps(cfg, data, info, factory, metric, xq, xb, variant, auto)
        if auto is not None and auto.factory != factory:  # auto replaced a slower index by exact search
            factory, auto = auto.factory, None
    plain = [s for s in sweeps if not s.variant]
    if is_exact(factory) and plain:
        save_exact(
            exact_cache_path(folder, metric), plain[-1].D, plain[-1].I, _fingerprint(cfg, info, metric)
        )
    D_background = _background(cfg, data, metric)
    if D_background is not None:
        sweeps += [
            replace(
                s,
                D=score_normalise(s.D, D_background, metric, cfg.snorm_beta, cfg.snorm_n),
                variant="+".join(v for v in (s.variant, "snorm") if v),
            )
            for s in list(sweeps)
        ]
    return [_score_sweep(cfg, data, info, folder, factory, metric, s) for s in sweeps]


SELF_MATCHES = (
    "queries that are also database items (same id) never match themselves: their own item is removed from "
    "their results and from their positives"
)


def _exclude_self(data) -> None:
    """Queries that are database items: drop themselves from their positives (an image is not its own copy)."""
    pos = data.truth.positives
    pos[pos == data.self_positions[:, None]] = -1
    order = np.argsort(pos < 0, axis=1, kind="stable")  # positives first, -1 padding last
    data.truth.positives = np.take_along_axis(pos, order, axis=1)
    log.warning("%d queries are also database items: %s", data.n_self, SELF_MATCHES)


def _start(cfg: ExperimentConfig, plan: Plan, data, threads: int) -> dict:
    """The results dict before any run: parameters, machine, data counts, ground truth; resumed runs kept."""
    truth = data.truth
    result = {
        "schema": SCHEMA,
        "name": cfg.name,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "complete": False,
        "machine": machine_info(),
        "threads": threads,
        "versions": library_versions(),
        "params": asdict(cfg),
        "stores": _stamps(plan.info),
        "data": {
            "method": cfg.method,
            "dim": data.dim,
            "binary": data.binary,
            "n_database": len(data.database_ids),
            "n_queries": len(data.query_ids),
            "n_positive": data.n_positive,
            "n_negative": data.n_negative,
            "ground_truth": truth.sources,
            "self_matches_excluded": {"n_queries": data.n_self, "rule": SELF_MATCHES} if data.n_self else None,
        },
        "runs": [],
        "errors": [],
    }
    if plan.previous is not None:
        previous = plan.previous
        result.update(runs=previous["runs"], errors=previous["errors"], created=previous["created"])
    return result


def _save_ids(folder: Path, data) -> str:
    """Write ``ids.npz``; returns its sha256 (results.json records it as ``ids_sha256``)."""
    return file_sha256(save_npz(
        folder / "ids.npz",
        query_ids=np.array(data.query_ids, dtype=str),
        database_ids=np.array(data.database_ids, dtype=str),
        targets=data.targets,
        positives=data.positives,
        categories=np.array(
            data.truth.categories if data.truth.categories is not None else [""] * len(data.query_ids),
            dtype=str,
        ),
        attacks=np.array(data.attacks, dtype=str),
    ))


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
    threads, batch_size, block_size, train_size, features_root, results_root, targets,
    ground_truth, query_expansion, qe_alpha, dba, background, snorm_beta, snorm_n, adaptation).
    Raises before any work on a bad name, an existing experiment (unless `overwrite`), mismatched
    or empty stores, k larger than the database, an unknown factory string or metric, NaN/inf
    features, queries without any ground truth. With `resume`, an interrupted experiment
    (``complete: false``) with the same parameters keeps its finished (index, metric) groups.
    Datasets are processed in sorted order, so the order they are given in changes nothing.
    """
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: finish the interrupted run, or replace it")
    cfg = ExperimentConfig.from_params(name, method, database, queries, **params)
    plan = _validate(cfg, overwrite, resume)
    database_sorted, queries_sorted = cfg.sorted_sources()
    data = load_search_data(
        method,
        database_sorted,
        queries_sorted,
        cfg.features_root,
        load_database=cfg.block_size is None,
        targets=cfg.targets,
        ground_truth=cfg.ground_truth,
    )
    if not data.truth.sources:
        log.warning(NO_GROUND_TRUTH, queries_sorted)
    if data.n_self:
        _exclude_self(data)
    check_background_generators(cfg, data)
    threads = cfg.threads or os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    final = plan.folder
    # --overwrite builds the new experiment beside the old one and swaps them at the end: a kill
    # leaves the old complete experiment, never its results.json over emptied runs/
    folder = _staging(final) if overwrite and final.exists() else final
    if folder != final:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    ids_sha256 = _save_ids(folder, data)
    result = _start(cfg, plan, data, threads)
    result["ids_sha256"] = ids_sha256
    done = {(r["index"], r["metric"]) for r in result["runs"] + result["errors"]}
    for factory in cfg.indexes:
        auto = plan.auto if factory == "auto" else None
        factory = auto.factory if auto is not None else factory
        for metric in cfg.metrics:
            if (factory, metric) in done:
                log.info("%s--%s: already done, skipped (resume)", factory, metric)
                continue
            try:
                result["runs"].extend(_run_index(cfg, data, plan.info, folder, factory, metric, auto))
                if auto is not None:
                    result.setdefault("auto_index", {})[metric] = auto.as_dict()
            except (RuntimeError, MemoryError) as err:  # faiss failure: record and go on
                log.warning("%s--%s failed: %s", factory, metric, err)
                result["errors"].append(
                    {"index": factory, "metric": metric, "error": str(err).strip()[-500:]}
                )
            save_json(result, folder / "results.json")
    result["complete"] = True
    save_json(result, folder / "results.json")
    if folder != final:
        _replace_folder(folder, final)
    return result


def _staging(folder: Path) -> Path:
    """Where ``--overwrite`` builds the new experiment: a hidden sibling of `folder`."""
    return folder.parent / f".{folder.name}.overwrite"


def _replace_folder(new: Path, folder: Path) -> None:
    """Put the finished experiment `new` in place of `folder` (two renames; `recover_experiment`
    finishes the swap if a kill lands between them)."""
    old = folder.parent / f".{folder.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    move_folder(folder, old)
    move_folder(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def recover_experiment(folder: Path) -> None:
    """Finish an ``--overwrite`` swap interrupted between its two renames (the folder is missing)."""
    old, new = folder.parent / f".{folder.name}.old", _staging(folder)
    if folder.exists() or not old.exists():
        return
    done = (new / "results.json").is_file() and load_json(new / "results.json").get("complete")
    move_folder(new if done else old, folder)


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
