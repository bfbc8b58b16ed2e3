"""Dataset -> DataLoader workers -> batched extractor -> resumable HDF5 store.

`extract_dataset` runs four steps, each small enough to test alone: `plan_extraction` (which
images, which store file, what produced it: an `ExtractionPlan`), `open_writer` (lock, resume or
refuse a partial file), `feed` (DataLoader workers decode and transform; the main process runs the
extractor on each batch and appends the finished rows every 256 images or 2 s) and `publish`
(errors file, rename). An extractor whose decoding releases the GIL (`Extractor.threaded`: the
fast hashes, and neural models on a CPU) is fed by threads instead of processes: no start-up, no
pickled batches.

Workers turn an image that cannot be decoded or transformed into a (path, reason) sentinel; any
other exception (a missing package, a programming error) stops the run with its real message. A
rerun resumes after the last append; memory does not grow with the number of images.
Skipped files land in the store's ``skipped`` dataset and in ``<method>.errors.tsv`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from data_retrieval.datasets import ImageList, load_dataset, unique_ids
from extractor.base import Extractor
from extractor.code_digest import code_record
from extractor.extraction_config import ExtractionConfig
from extractor.registry import create_extractor
from extractor.store import (
    FeatureWriter,
    StoreError,
    StoreExistsError,
    ids_digest,
    provenance_differences,
    read_attrs,
    store_path,
)
from helpers import atomic, images
from helpers.blas import single_threaded_blas
from helpers.images import BadImageError
from helpers.paths import DATASETS_DIR, FEATURES_DIR

#: What a transform may raise on an odd image (a per-image skip); anything else stops the run.
IMAGE_ERRORS = (BadImageError, ValueError, ArithmeticError, OSError)


class _Images:
    """Decode + transform one image per item; failures come back as (index, None, reason)."""

    def __init__(self, paths: Sequence[str | os.PathLike], extractor: Extractor) -> None:
        # one numpy block: no per-item refcounts in workers; tar members come as numpy arrays already
        self.paths = paths if hasattr(paths, "read") else np.array([os.fsdecode(p) for p in paths])
        self.extractor = extractor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        path = str(self.paths[i])
        try:
            data = self.paths.read(i) if hasattr(self.paths, "read") else None  # a tar member's bytes
            image = self.extractor.decode(path, data=data)
        except BadImageError as e:
            return i, None, str(e).removeprefix(f"{path}: ")
        try:
            return i, self.extractor.transform(image), None
        except IMAGE_ERRORS as e:  # image content the transform cannot handle: skip it with the reason
            return i, None, f"transform failed ({type(e).__name__}: {e})"


class _Collate:
    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor

    def __call__(self, items: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
        good = [(i, x) for i, x, err in items if err is None]
        bad = [(i, err) for i, _, err in items if err is not None]
        batch = self.extractor.collate([x for _, x in good]) if good else None
        return [i for i, _ in good], batch, bad


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)


Batch = tuple[list[int], Any, list[tuple[int, str]]]


def _thread_batches(images: _Images, collate: _Collate, batch_size: int, threads: int) -> Iterator[Batch]:
    """The DataLoader's batches, in order, decoded by `threads` threads (at most 2 batches each in flight)."""
    def load(start: int) -> Batch:
        return collate([images[i] for i in range(start, min(start + batch_size, len(images)))])

    starts = iter(range(0, len(images), batch_size))
    with single_threaded_blas(), ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        pending = deque(pool.submit(load, s) for s in islice(starts, 2 * threads))
        while pending:
            batch = pending.popleft().result()
            start = next(starts, None)
            if start is not None:
                pending.append(pool.submit(load, start))
            yield batch


def _batches(ext: Extractor, images: _Images, batch_size: int, workers: int, cuda: bool) -> Iterator[Batch]:
    """(good indices, collated batch or None, [(index, reason)]) per batch, from threads or processes."""
    collate = _Collate(ext)
    if workers and ext.threaded:
        return _thread_batches(images, collate, batch_size, workers)
    if not workers and ext.binary:  # hashes in process: no torch (a command's start-up stays short)
        return (collate([images[i] for i in range(s, min(s + batch_size, len(images)))])
                for s in range(0, len(images), batch_size))
    from torch.utils.data import DataLoader

    return iter(DataLoader(
        images,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=_worker_init if workers else None,
        pin_memory=cuda,
        prefetch_factor=4 if workers else None,
    ))


def _listing(dataset: Any, datasets_root: str | os.PathLike, name: str | None) -> ImageList:
    """An ImageList from a dataset name, a folder, an ImageList, or a sequence of image paths."""
    if isinstance(dataset, ImageList):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        return load_dataset(dataset, root=datasets_root, name=name)
    if isinstance(dataset, Sequence) and dataset:
        paths = [Path(p) for p in dataset]
        folder = Path(os.path.commonpath([p.resolve().parent for p in paths]))
        name = name or folder.name or "files"
        ids = unique_ids(name, folder, [p.resolve() for p in paths])
        if len(set(ids)) != len(ids):
            raise ValueError(f"the file list names one file twice under {folder}")
        return ImageList(name=name, folder=folder, paths=paths, ids=ids)
    raise TypeError(f"dataset must be a dataset name, a folder, an ImageList or a list of paths; got {dataset!r}")


def shard_bounds(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """[start, stop) of the k-th of `n_shards` contiguous, near-equal parts of n items."""
    if shard is None:
        return 0, n
    k, n_shards = shard
    if not (isinstance(k, int) and isinstance(n_shards, int) and 0 <= k < n_shards):
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    return k * n // n_shards, (k + 1) * n // n_shards


def _printable(text: str) -> str:
    """`text` with undecodable bytes of a file name shown as backslash escapes (valid UTF-8)."""
    return os.fsencode(text).decode("utf-8", "backslashreplace") if isinstance(text, str) else str(text)


def files_fingerprint(ids: Sequence[str], paths: Sequence[str | os.PathLike]) -> str:
    """sha1 over (id, size, modification time) of each file: changes when any file is added,
    removed, renamed, replaced or edited (``touch`` included)."""
    digest = hashlib.sha1()
    if hasattr(paths, "tars"):  # tar members: each tar's size and mtime, then each member's place in it
        for tar in paths.tars:
            st = os.stat(tar)
            digest.update(f"{_printable(tar)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        digest.update(np.ascontiguousarray(paths.offsets).tobytes() + np.ascontiguousarray(paths.sizes).tobytes())
        for image_id in ids:
            digest.update(f"{_printable(image_id)}\n".encode())
        return digest.hexdigest()
    for image_id, path in zip(ids, paths, strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}\t{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{_printable(image_id)}\t{stamp}\n".encode())
    return digest.hexdigest()


_WEIGHTS_HASHES: dict[tuple[str, int, int], str] = {}


def weights_digest(weights: Any) -> str | None:
    """sha256 of a weights file (cached per path, size and mtime), or None when `weights` is no file."""
    if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
        return None
    st = os.stat(weights)
    key = (os.path.realpath(weights), st.st_size, st.st_mtime_ns)
    if key not in _WEIGHTS_HASHES:
        digest = hashlib.sha256()
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _WEIGHTS_HASHES[key] = digest.hexdigest()
    return _WEIGHTS_HASHES[key]


def errors_path(store: Path) -> Path:
    """``<method>.errors.tsv`` beside ``<method>.h5`` (``.h5.partial``, ``.hdf5`` too)."""
    return store.with_name(re.sub(r"\.(h5|hdf5)(\.partial)?$", "", store.name) + ".errors.tsv")


def _write_errors(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    clean = [(_printable(str(p)).replace("\t", " "), " ".join(str(r).split())) for p, r in rows]
    atomic.write_text(path, "path\treason\n" + "".join(f"{p}\t{r}\n" for p, r in clean))


def summarize_skipped(rows: Sequence[tuple[str, str]]) -> str:
    """'3 skipped: 2 cannot decode, 1 empty file' style summary."""
    if not rows:
        return "0 skipped"
    kinds = Counter(r.split(" (")[0].split(":")[0] for _, r in rows)
    return f"{len(rows)} skipped: " + ", ".join(f"{c} {k}" for k, c in kinds.most_common())


@dataclass(frozen=True)
class RunCfg:
    """How to feed images: batch size, decoding processes (threads), stop at the first bad file, progress bar."""

    batch_size: int = 64
    workers: int = 2
    strict: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {self.workers!r}")

    def workers_for(self, n_images: int) -> int:
        """No more decoding processes than batches to decode (5 images never start 53 processes)."""
        return min(self.workers, max(0, -(-n_images // self.batch_size)))


@dataclass(frozen=True)
class ExtractionPlan:
    """One store to write: the selected images, the file, and the provenance it will record."""

    dataset: str
    out: Path
    paths: Sequence[Path]  # or data_retrieval.tars.TarMembers
    ids: list[str]
    listing_skipped: list[tuple[str, str]] = field(default_factory=list)
    shard: tuple[int, int] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def make_provenance(
    ext: Extractor, listing: ImageList, paths: Sequence[Path], ids: Sequence[str], limit: int | None,
    shard: tuple[int, int] | None,
) -> dict[str, Any]:
    """What produced a store (the ``provenance`` attribute; docs/extractor.md lists the keys)."""
    params = ext.params
    record = {
        "folder": _printable(str(Path(listing.folder).resolve())),
        "dataset": listing.name,
        "n_files": len(ids),
        "files_sha1": files_fingerprint(ids, paths),
        "extractor": ext.name,
        "params": params,
        "weights_sha256": weights_digest(params.get("weights")),
        "precision": params.get("precision"),
        "code": code_record(ext),
        "limit": limit,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "max_pixels": images.MAX_PIXELS,  # a lower limit skips more files: not the same store
        "listing_sha1": ids_digest(listing.ids),  # the whole folder's ids: shards of one generation agree
    }
    return json.loads(json.dumps(record, sort_keys=True, default=str))  # as it reads back from the file


def plan_extraction(
    ext: Extractor,
    dataset: str | os.PathLike | ImageList | Sequence[str | os.PathLike],
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    name: str | None = None,
    out: str | os.PathLike | None = None,
) -> ExtractionPlan:
    """List the dataset, select `limit` / `shard`, name the store file (`out` overrides it) and
    record the provenance."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    listing = _listing(dataset, datasets_root, name)
    paths, ids = listing.paths[:limit], listing.ids[:limit]
    start, stop = shard_bounds(len(paths), shard)
    paths, ids = paths[start:stop], list(ids[start:stop])
    return ExtractionPlan(
        dataset=listing.name,
        out=store_path(listing.name, ext.name, features_root, shard) if out is None else Path(out),
        paths=paths,
        ids=ids,
        listing_skipped=list(listing.skipped) if shard is None or shard[0] == 0 else [],
        shard=shard,
        provenance=make_provenance(ext, listing, paths, ids, limit, shard),
    )


def check_existing(plan: ExtractionPlan) -> bool:
    """True when a complete store already holds exactly what `plan` would write.

    Raises `StoreError` naming every difference when it was produced from other inputs or settings.
    """
    if not plan.out.exists():
        return False
    differences = provenance_differences(read_attrs(plan.out).get("provenance"), plan.provenance)
    if differences:
        raise StoreError(
            f"{plan.out} was produced from other inputs or settings: {'; '.join(differences)}. "
            "Rerun with --overwrite (overwrite=True in Python) to extract it again"
        )
    return True


def writer_kwargs(ext: Extractor, plan: ExtractionPlan, chunk_rows: int = 256, dtype: str | None = None) -> dict:
    """The `FeatureWriter` arguments for `plan` (all but the path): every executor writes the same store."""
    return dict(
        method=ext.name,
        dim=ext.dim,
        binary=ext.binary,
        dtype="uint8" if ext.binary else (dtype or "float32"),
        dataset=plan.dataset,
        params=ext.params,
        n_total=len(plan.ids),
        shard="" if plan.shard is None else f"{plan.shard[0]}/{plan.shard[1]}",
        chunk_rows=chunk_rows,
        provenance=plan.provenance,
        extra_attrs={"folder": plan.provenance["folder"], "inputs_sha1": plan.provenance["files_sha1"]},
    )


def open_writer(
    ext: Extractor, plan: ExtractionPlan, overwrite: bool = False, chunk_rows: int = 256, dtype: str | None = None
) -> FeatureWriter:
    """Lock the store and open (or resume) its partial file for `plan` (`dtype` "float16": half features)."""
    return FeatureWriter(plan.out, overwrite=overwrite, **writer_kwargs(ext, plan, chunk_rows, dtype))


#: `feed` appends to the store once this many images are done, or this many seconds after the last append.
WRITE_ROWS, WRITE_SECONDS = 256, 2.0


@dataclass
class _Pending:
    """Rows computed but not yet written. They go to the store in groups of at least `WRITE_ROWS` (or
    every `WRITE_SECONDS`): each append flushes the HDF5 file, ~2 ms, which once per 32-image batch
    cost hashes 14 % of their speed."""

    ids: list[str] = field(default_factory=list)
    feats: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)

    def add(self, ids: list[str], feats: np.ndarray, skipped: list[tuple[str, str]]) -> None:
        self.ids += ids
        self.feats.append(feats)
        self.skipped += skipped

    def due(self) -> bool:
        rows = len(self.ids) + len(self.skipped)
        return rows >= WRITE_ROWS or (rows > 0 and time.monotonic() - self.since >= WRITE_SECONDS)

    def write(self, writer: FeatureWriter) -> None:
        if self.feats:  # one array per batch added, empty for a batch of skips only
            writer.append(self.ids, np.concatenate(self.feats), skipped=self.skipped)
        self.ids, self.feats, self.skipped, self.since = [], [], [], time.monotonic()


def feed(ext: Extractor, writer: FeatureWriter, plan: ExtractionPlan, run: RunCfg) -> None:
    """Feed images from `writer.n_seen` on through the extractor into the writer.

    Finished rows are appended in groups (`_Pending`); an interruption writes what is finished
    first, and a rerun resumes after the last append.
    """
    begin = writer.n_seen
    paths, ids = plan.paths, plan.ids
    if begin >= len(paths):
        return
    width = ext.dim // 8 if ext.binary else ext.dim
    out_dtype = np.uint8 if ext.binary else np.float32
    cuda = getattr(getattr(ext, "device", None), "type", "cpu") == "cuda"
    workers = run.workers_for(len(paths) - begin)
    loader = _batches(ext, _Images(paths[begin:], ext), run.batch_size, workers, cuda)
    bar = tqdm(total=len(paths), initial=begin, unit="img", desc=ext.name, disable=not run.progress, smoothing=0.1)
    pending = _Pending()
    try:
        for good, batch, bad in loader:
            bad_rows = [(_printable(str(paths[begin + i])), reason) for i, reason in bad]
            if run.strict and bad_rows:
                raise BadImageError(f"strict mode: {bad_rows[0][0]}: {bad_rows[0][1]}")
            feats = ext(batch) if batch is not None else np.empty((0, width), out_dtype)
            pending.add([ids[begin + i] for i in good], feats, bad_rows)
            if pending.due():
                pending.write(writer)
            bar.update(len(good) + len(bad))
    except BaseException:
        try:  # keep the finished work (Ctrl-C, a strict-mode stop, a failing model)
            pending.write(writer)
        except Exception:  # the store itself failed: the original error says why
            pass
        raise
    else:
        pending.write(writer)
    finally:
        bar.close()


def publish(writer: FeatureWriter, plan: ExtractionPlan, run: RunCfg) -> Path:
    """Write ``<method>.errors.tsv``, mark the store complete and rename it; returns its path."""
    skipped = plan.listing_skipped + writer.skipped()
    _write_errors(errors_path(plan.out), skipped)
    n_rows = writer.n_rows
    path = writer.finish()
    if run.progress:
        print(f"{writer.method} on {plan.dataset}: {n_rows} features -> {path}; {summarize_skipped(skipped)}"
              + (f" (see {errors_path(plan.out)})" if skipped else ""), file=sys.stderr)
    return path


def extract_dataset(
    ext: Extractor | str,
    dataset: str | os.PathLike | ImageList | Sequence[str | os.PathLike],
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    batch_size: int = 64,
    workers: int = 2,
    device: str | None = None,
    precision: str | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    strict: bool = False,
    *,
    name: str | None = None,
    overwrite: bool = False,
    if_changed: str = "refuse",
    progress: bool = True,
    out: str | os.PathLike | None = None,
    dtype: str | None = None,
    config: ExtractionConfig | None = None,
) -> Path:
    """Extract `ext` features of every image of `dataset` into its store; returns the .h5 path.

    `config` (an `ExtractionConfig`, shared with the Ray and ILIAS entry points) gives features_root,
    datasets_root, batch_size, workers, limit, strict, overwrite and progress at once; the arguments of
    the same names must then be left at their defaults.

    `device`/`precision` None keep the extractor's own (cpu / auto). `limit` takes the first
    images, `shard=(k, n)` the k-th of n contiguous parts. A finished store produced by the same
    inputs and settings is returned as is; one produced otherwise raises `StoreError` naming the
    differences, unless `overwrite` (always redo) or ``if_changed="redo"`` (redo only then). An
    unfinished one is resumed. `strict` raises `BadImageError` at the first file that cannot be
    used. `out` writes to this file instead of the store's path (ILIAS's
    ``features_<partition>.hdf5``); `dtype` ``"float16"`` stores half-precision features.
    """
    if config is not None:
        given = dict(features_root=features_root, datasets_root=datasets_root, batch_size=batch_size, workers=workers,
                     limit=limit, strict=strict, overwrite=overwrite, progress=progress)
        changed = sorted(k for k, v in given.items() if v != getattr(ExtractionConfig, k))
        if changed:
            raise TypeError(f"extract_dataset: give {changed} in `config`, not beside it")
        (features_root, datasets_root, batch_size, workers, limit, strict, overwrite, progress) = (
            config.features_root, config.datasets_root, config.batch_size, config.workers, config.limit,
            config.strict, config.overwrite, config.progress)
    if isinstance(ext, str):
        ext = create_extractor(ext, device=device, precision=precision)
    elif device is not None or precision is not None:
        ext = ext.to(device, precision)
    run = RunCfg(batch_size=batch_size, workers=workers, strict=strict, progress=progress)
    if if_changed not in ("refuse", "redo"):
        raise ValueError(f"if_changed must be 'refuse' or 'redo', got {if_changed!r}")
    plan = plan_extraction(ext, dataset, features_root, datasets_root, limit=limit, shard=shard, name=name, out=out)
    if not overwrite:
        try:
            if check_existing(plan):
                if progress:
                    print(f"{plan.out} is already complete; skipping (--overwrite, or overwrite=True in Python, redoes it)", file=sys.stderr)
                return plan.out
        except StoreError as e:
            if if_changed != "redo":
                raise
            print(f"{str(e).split('. Rerun with')[0]}; extracting it again", file=sys.stderr)  # no flag hint: redo
            overwrite = True
    try:
        writer = open_writer(ext, plan, overwrite=overwrite, chunk_rows=max(batch_size, 256), dtype=dtype)
    except StoreExistsError:  # another process finished it between our check and our lock
        check_existing(plan)  # ... from the same inputs, or say what differs
        return plan.out
    with writer:
        feed(ext, writer, plan, run)
        return publish(writer, plan, run)
