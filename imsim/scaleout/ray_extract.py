"""Extraction on Ray Data: CPU decode tasks, the model in an actor pool, one write task per shard.

The images are split into ``shards`` contiguous parts exactly as ``--shard K/N`` splits them
(`extractor.shard_bounds`), and each part becomes the store file the single-process path would
write for it (``<method>.shard-K-of-N.h5``, or ``<method>.h5`` for one part), with the same ids,
features, attributes, skipped files and reasons. The pipeline:

    paths (Arrow blocks) -> map_batches(decode, CPU tasks) -> map_batches(model, actor pool)
        -> driver (order kept) -> one Ray task per shard writes it with `FeatureWriter`

A shard is the unit of work: its file is written under ``.partial`` and renamed once whole, so a
worker, actor or writer killed mid-shard makes Ray redo that work, never a half-written file; a
rerun skips the shards already complete (after checking they were made from the same images) and
redoes the others. Without an address a local Ray is started on this machine.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from data_retrieval.datasets import ImageList
from extractor.base import Extractor
from extractor.extraction_config import ExtractionConfig
from extractor.pipeline import (
    ExtractionPlan,
    _Images,
    _listing,
    _write_errors,
    check_existing,
    errors_path,
    plan_extraction,
    shard_bounds,
    summarize_skipped,
    writer_kwargs,
)
from extractor.registry import create_extractor
from extractor.store import FeatureWriter, StoreError, read_attrs, store_path
from helpers.images import BadImageError

#: Testing hook: a model actor exits (os._exit) in the middle of its work once, when this names a
#: file that does not exist yet (the file is created first, so the restarted actor carries on).
KILL_ONCE_ENV = "IMSIM_RAY_KILL_ONCE"
#: Rows per output shard when `shards` is not given.
ROWS_PER_SHARD = 50_000
#: Object store of a local Ray started here (bytes): small, the data streams through it.
LOCAL_OBJECT_STORE = 256 * 1024**2


class RayClusterError(ConnectionError):
    """The Ray cluster named by an address cannot be reached (nothing was written)."""


# ---- the cluster --------------------------------------------------------------------------
def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (a TCP connect) instead of Ray's long retries when host:port does not answer."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayClusterError(f"--ray-address must be host:port, ray://host:port or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise RayClusterError(
            f"cannot reach the Ray cluster at {address} ({err}); start it with `ray start --head` "
            "or omit --ray-address to run on a local Ray. Nothing was written."
        ) from None


def connect(address: str | None = None, num_cpus: int | None = None, object_store_bytes: int | None = None) -> bool:
    """Join the cluster at `address`, or start a local Ray; True when this call started it.

    An already initialised Ray (a notebook, a test fixture) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address is not None:
        _check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as err:
            raise RayClusterError(f"cannot join the Ray cluster at {address}: {err}. Nothing was written.") from None
        return True
    ray.init(num_cpus=num_cpus, object_store_memory=object_store_bytes or LOCAL_OBJECT_STORE, **kwargs)
    return True


# ---- the work on the workers -------------------------------------------------------------
def _transform_only(ext: Extractor) -> Extractor:
    """A shallow copy without the model: decode tasks need `transform` only, not the weights."""
    light = copy.copy(ext)
    if hasattr(light, "model"):
        light.model = None
    return light


def _sample_array(sample: Any) -> np.ndarray:
    return sample.numpy() if hasattr(sample, "numpy") else np.asarray(sample)


def _probe(ext: Extractor, paths: Sequence) -> np.ndarray:
    """A zero sample shaped like `transform`'s output: the placeholder row of a skipped file."""
    try:
        return np.zeros_like(_sample_array(ext.transform(Image.linear_gradient("L").convert("RGB"))))
    except Exception:  # a transform that needs a real picture: take the first file that decodes
        images = _Images(paths, ext)
        for i in range(len(paths)):
            _, sample, err = images[i]
            if err is None:
                return np.zeros_like(_sample_array(sample))
    return np.zeros((1,), np.uint8)  # nothing decodes: every row is a skip


class _Decode:
    """CPU task: decode + transform each path; a bad file keeps its row with its reason (as locally)."""

    def __init__(self, ext: Extractor, placeholder: np.ndarray, tars: tuple[str, ...] | None) -> None:
        self.ext = ext
        self.placeholder = placeholder
        self.tars = tars

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.tars is None:
            sources = list(batch["path"])
        else:  # tar members: read by offset, as the single-process path reads them
            from data_retrieval.tars import TarMembers

            sources = TarMembers(self.tars, batch["tar"], batch["offset"], batch["size"], batch["member"])
        images = _Images(sources, self.ext)
        samples, errors = [], []
        for i in range(len(batch["pos"])):
            _, sample, err = images[i]
            samples.append(self.placeholder if err is not None else _sample_array(sample))
            errors.append(err or "")
        return {"shard": batch["shard"], "pos": batch["pos"], "x": np.stack(samples), "error": np.array(errors, dtype=object)}


class _Embed:
    """Actor: one model per actor (on the GPU when it was given one), features of the good rows."""

    def __init__(self, ext: Extractor, use_gpu: bool, kill_marker: str | None) -> None:
        self.ext = ext.to("cuda") if use_gpu else ext
        self.kill_marker = kill_marker
        self.calls = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.kill_marker and self.calls == 2 and not os.path.exists(self.kill_marker):
            Path(self.kill_marker).touch()
            os._exit(9)  # a worker dying mid-shard (testing hook)
        ext = self.ext
        good = np.array([not e for e in batch["error"]], dtype=bool)
        width = ext.dim // 8 if ext.binary else ext.dim
        feats = np.zeros((len(good), width), np.uint8 if ext.binary else np.float32)
        if good.any():
            feats[good] = ext(ext.collate(list(batch["x"][good])))
        return {"shard": batch["shard"], "pos": batch["pos"], "error": batch["error"], "features": feats}


def _write_shard(out: str, writer_kwargs: dict, ids: list[str], feats: np.ndarray, skipped: list[tuple[str, str]],
                 listing_skips: list[tuple[str, str]], chunk_rows: int) -> dict:
    """Write one shard file from its rows (a Ray task): partial file, renamed once whole."""
    out = Path(out)
    if out.exists():  # an earlier attempt finished after all
        return {"path": str(out), "n_rows": int(read_attrs(out)["n_rows"]), "skipped": len(skipped) + len(listing_skips)}
    # a shard is redone whole (all its rows are here): overwrite drops a partial file under the store's lock
    with FeatureWriter(out, overwrite=True, **writer_kwargs) as writer:
        writer.append(ids[:chunk_rows], feats[:chunk_rows], skipped=skipped)
        for start in range(chunk_rows, len(ids), chunk_rows):
            writer.append(ids[start : start + chunk_rows], feats[start : start + chunk_rows])
        _write_errors(errors_path(out), list(listing_skips) + writer.skipped())
        n_rows = writer.n_rows
        writer.finish()
    return {"path": str(out), "n_rows": n_rows, "skipped": len(skipped) + len(listing_skips)}


# ---- the driver ------------------------------------------------------------------------
def _shard_plan(listing: ImageList, ids: list[str], n_shards: int, ext: Extractor, root, overwrite: bool,
                limit: int | None = None) -> list[tuple[int, Path, int, int, ExtractionPlan]]:
    """(k, out path, start, stop, plan) of every shard still to do; complete shards are checked against
    their provenance (`extractor.pipeline.check_existing`), not redone."""
    folder = Path(root) / listing.name
    own = {store_path(listing.name, ext.name, root, None if n_shards == 1 else (k, n_shards)) for k in range(n_shards)}
    others = [p for p in folder.glob(f"{ext.name}.shard-*-of-*.h5") if p not in own]
    if n_shards > 1 and store_path(listing.name, ext.name, root).exists():
        others.append(store_path(listing.name, ext.name, root))
    elif n_shards == 1:
        others += list(folder.glob(f"{ext.name}.shard-*-of-*.h5"))
    if others and not overwrite:
        raise StoreError(
            f"{folder} already holds {ext.name} files split otherwise ({sorted(p.name for p in others)[:3]}...) "
            f"than the {n_shards} shard(s) asked: delete them, pass overwrite, or ask the same number of shards"
        )
    todo = []
    for k in range(n_shards):
        start, stop = shard_bounds(len(ids), None if n_shards == 1 else (k, n_shards))
        plan = plan_extraction(ext, listing, root, limit=limit, shard=None if n_shards == 1 else (k, n_shards))
        out = plan.out
        if not overwrite and check_existing(plan):  # raises naming what differs when made from other inputs
            continue
        out.unlink(missing_ok=True)
        todo.append((k, out, start, stop, plan))
    return todo


def extract_dataset_ray(
    ext: Extractor | str,
    dataset: str | os.PathLike | ImageList | Sequence[str | os.PathLike],
    config: ExtractionConfig | None = None,
    *,
    shards: int | None = None,
    address: str | None = None,
    actors: int | None = None,
    num_cpus: int | None = None,
    name: str | None = None,
    **options: Any,
) -> list[Path]:
    """Extract `ext` features of `dataset` on Ray into `shards` store files; returns their paths.

    `config` (an `extractor.ExtractionConfig`; `options` override its fields, e.g. ``features_root=``,
    ``batch_size=``) is the one shared with `extract_dataset`; its `workers` is not used (Ray's tasks
    decode). `shards` None: one per ``ROWS_PER_SHARD`` images. `address` joins a running cluster
    (``host:port``, ``ray://host:port`` or ``auto``); None starts a local Ray (`num_cpus`, default all).
    `actors` model replicas (default: one per GPU, else half the CPUs). Read the result with
    `extractor.load_features(dataset, method)`: the shards read as one store.
    """
    cfg = ExtractionConfig.of(config, **options)
    features_root, batch_size, limit, strict, overwrite, progress = (
        cfg.features_root, cfg.batch_size, cfg.limit, cfg.strict, cfg.overwrite, cfg.progress)
    if isinstance(ext, str):
        ext = create_extractor(ext)
    listing = _listing(dataset, cfg.datasets_root, name)
    paths, ids = listing.paths[:limit], list(listing.ids[:limit])  # file paths, or tar members
    n_shards = shards if shards is not None else max(1, math.ceil(len(ids) / ROWS_PER_SHARD))
    if not isinstance(n_shards, int) or not 1 <= n_shards <= max(1, len(ids)):
        raise ValueError(f"shards must be an integer in [1, {max(1, len(ids))}] (the number of images), got {shards!r}")
    if address is not None:
        _check_reachable(address)  # before touching any file
    todo = _shard_plan(listing, ids, n_shards, ext, features_root, overwrite, limit)
    outs = [store_path(listing.name, ext.name, features_root, None if n_shards == 1 else (k, n_shards))
            for k in range(n_shards)]
    if not todo:
        if progress:
            print(f"{ext.name} on {listing.name}: all {n_shards} shard(s) already complete", file=sys.stderr)
        return outs

    import ray

    started = connect(address, num_cpus=num_cpus)
    try:
        results = _run(ray, ext, listing, paths, ids, todo, n_shards, batch_size, actors, strict, progress)
    finally:
        if started:
            ray.shutdown()
    if progress:
        n_rows = sum(r["n_rows"] for r in results)
        n_skip = sum(r["skipped"] for r in results)
        print(f"{ext.name} on {listing.name}: {n_rows} features in {len(results)} shard(s) written on Ray, "
              f"{n_skip} skipped; store {outs[0].parent}", file=sys.stderr)
    return outs


def _run(ray, ext, listing, paths, ids, todo, n_shards, batch_size, actors, strict, progress) -> list[dict]:
    import pyarrow as pa

    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) >= 1 and hasattr(ext, "model")
    n_actors = actors or (int(resources["GPU"]) if use_gpu else max(1, int(resources.get("CPU", 1)) // 2))
    tars = getattr(paths, "tars", None)  # a TarImageList: rows carry (tar, offset, size, member)
    tables = []
    for k, _, start, stop, _ in todo:
        for s in range(start, stop, batch_size * 4):  # small blocks: decode tasks spread over the cluster
            e = min(s + batch_size * 4, stop)
            cols = {"shard": np.full(e - s, k, np.int64), "pos": np.arange(s, e, dtype=np.int64)}
            if tars is None:
                cols["path"] = pa.array([str(p) for p in paths[s:e]], pa.string())
            else:
                cols.update(tar=paths.tar_index[s:e], offset=paths.offsets[s:e], size=paths.sizes[s:e],
                            member=pa.array(list(paths.names[s:e]), pa.binary()))
            tables.append(pa.table(cols))
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come back in path order: shards complete one by one
    ctx.enable_progress_bars = False
    light = _transform_only(ext)
    placeholder = _probe(light, paths[todo[0][2] : todo[0][3]])
    ds = ray.data.from_arrow(tables).map_batches(  # CPU tasks (num_cpus differs: not fused into the actors)
        _decode_batch, fn_args=(light, placeholder, tars), batch_size=batch_size, num_cpus=0.5,
    )
    ds = ds.map_batches(
        _Embed, fn_constructor_args=(ext, use_gpu, os.environ.get(KILL_ONCE_ENV)), batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors), num_cpus=1, num_gpus=1 if use_gpu else 0,
    )
    writer = ray.remote(num_cpus=0, max_retries=3)(_write_shard)
    chunk_rows = max(batch_size, 256)
    plan = {k: (out, start, stop, p) for k, out, start, stop, p in todo}
    pending, results = [], []
    current, rows = None, []
    total = sum(stop - start for _, _, start, stop, _ in todo)
    bar = tqdm(total=total, unit="img", desc=f"{ext.name} on Ray", disable=not progress, smoothing=0.1)

    def submit(k: int, parts: list[dict]) -> None:
        out, start, stop, shard_plan = plan[k]
        pos = np.concatenate([p["pos"] for p in parts])
        errs = np.concatenate([p["error"] for p in parts])
        feats = np.concatenate([p["features"] for p in parts])
        if len(pos) != stop - start or not np.array_equal(pos, np.arange(start, stop)):
            raise RuntimeError(f"shard {k}: rows came back out of order or incomplete ({len(pos)} of {stop - start})")
        good = np.array([not e for e in errs], dtype=bool)
        skipped = [(str(paths[p]), str(e)) for p, e in zip(pos, errs, strict=True) if e]
        if strict and skipped:
            raise BadImageError(f"strict mode: {skipped[0][0]}: {skipped[0][1]}")
        shard_ids = [ids[p] for p in pos[good]]
        own = writer_kwargs(ext, shard_plan, chunk_rows)
        listing_skips = shard_plan.listing_skipped
        pending.append(writer.remote(str(out), own, shard_ids, feats[good], skipped, listing_skips, chunk_rows))

    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for k in np.unique(batch["shard"]):
                sel = batch["shard"] == k
                part = {key: batch[key][sel] for key in ("pos", "error", "features")}
                if current is not None and k != current:
                    submit(current, rows)
                    rows = []
                current = int(k)
                rows.append(part)
            bar.update(len(batch["pos"]))
            while len(pending) > 2:  # bound the shards held in memory
                done, pending[:] = ray.wait(pending, num_returns=1)
                results.extend(ray.get(done))
        if current is not None:
            submit(current, rows)
        results.extend(ray.get(pending))
    finally:
        bar.close()
    return results


def _decode_batch(batch: dict[str, np.ndarray], ext: Extractor, placeholder: np.ndarray,
                  tars: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    return _Decode(ext, placeholder, tars)(batch)


__all__ = ["KILL_ONCE_ENV", "RayClusterError", "connect", "extract_dataset_ray", "summarize_skipped"]
