"""Dataset -> DataLoader workers -> batched extractor -> resumable HDF5 store.

Workers decode and transform images (a bad file becomes a (path, reason) sentinel, never an
exception in the loader); the main process runs the extractor on each batch and appends it to a
`FeatureWriter` as one chunk. A rerun resumes after the last complete chunk; memory does not
grow with the number of images. Skipped files land in the store's ``skipped`` dataset and in
``<method>.errors.tsv`` beside it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from data_retrieval.datasets import ImageList, load_dataset, make_id
from extractor.base import Extractor
from extractor.registry import create_extractor
from extractor.store import FeatureWriter, StoreError, store_path
from helpers.images import BadImageError
from helpers.paths import DATASETS_DIR, FEATURES_DIR

#: Testing hook: the process exits (os._exit) right after writing this many chunks.
EXIT_AFTER_ENV = "IMSIM_EXTRACT_EXIT_AFTER_CHUNKS"


class _Images(Dataset):
    """Decode + transform one image per item; failures come back as (index, None, reason)."""

    def __init__(self, paths: Sequence[str | os.PathLike], extractor: Extractor) -> None:
        # one numpy block: no per-item refcounts in workers; tar members come as numpy arrays already
        self.paths = paths if hasattr(paths, "read") else np.array([str(p) for p in paths])
        self.extractor = extractor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        path = str(self.paths[i])
        try:
            data = self.paths.read(i) if hasattr(self.paths, "read") else None  # a tar member's bytes
            image = self.extractor.decode(path, data=data)
            return i, self.extractor.transform(image), None
        except BadImageError as e:
            return i, None, str(e).removeprefix(f"{path}: ")
        except Exception as e:  # a transform that fails on an odd image: skip it with the reason
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
    torch.set_num_threads(1)


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
        ids = [make_id(name, folder, p.resolve()) for p in paths]
        if len(set(ids)) != len(ids):
            raise ValueError(f"file list gives duplicate ids (same name, different extension?) under {folder}")
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


def _fingerprint(ids: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for image_id in ids:
        digest.update(image_id.encode() + b"\n")
    return digest.hexdigest()


def errors_path(store: Path) -> Path:
    """``<method>.errors.tsv`` beside ``<method>.h5`` (``.h5.partial``, ``.hdf5`` too)."""
    return store.with_name(re.sub(r"\.(h5|hdf5)(\.partial)?$", "", store.name) + ".errors.tsv")


def _write_errors(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    clean = [(str(p).replace("\t", " "), " ".join(str(r).split())) for p, r in rows]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("path\treason\n" + "".join(f"{p}\t{r}\n" for p, r in clean), encoding="utf-8")
    os.replace(tmp, path)


def summarize_skipped(rows: Sequence[tuple[str, str]]) -> str:
    """'3 skipped: 2 cannot decode, 1 empty file' style summary."""
    if not rows:
        return "0 skipped"
    kinds = Counter(r.split(" (")[0].split(":")[0] for _, r in rows)
    return f"{len(rows)} skipped: " + ", ".join(f"{c} {k}" for k, c in kinds.most_common())


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
    progress: bool = True,
    out: str | os.PathLike | None = None,
    dtype: str | None = None,
) -> Path:
    """Extract `ext` features of every image of `dataset` into its store; returns the .h5 path.

    `device`/`precision` None keep the extractor's own (cpu / auto). `limit` takes the first
    images, `shard=(k, n)` the k-th of n contiguous parts. A finished store is returned as is
    (unless `overwrite`); an unfinished one is resumed. `strict` raises `BadImageError` at the
    first file that cannot be used. `out` writes to this file instead of the store's path
    (ILIAS's ``features_<partition>.hdf5``); `dtype` ``"float16"`` stores half-precision features.
    """
    if isinstance(ext, str):
        ext = create_extractor(ext, device=device, precision=precision)
    elif device is not None or precision is not None:
        ext = ext.to(device, precision)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    listing = _listing(dataset, datasets_root, name)
    paths, ids = listing.paths[:limit], listing.ids[:limit]
    start, stop = shard_bounds(len(paths), shard)
    paths, ids = paths[start:stop], ids[start:stop]
    out = store_path(listing.name, ext.name, features_root, shard) if out is None else Path(out)
    if out.exists():
        if not overwrite:
            if progress:
                print(f"{out} is already complete; skipping (overwrite=True to redo)", file=sys.stderr)
            return out
        out.unlink()

    fingerprint = _fingerprint(ids)
    make_writer = functools.partial(
        FeatureWriter,
        out,
        method=ext.name,
        dim=ext.dim,
        binary=ext.binary,
        dtype="uint8" if ext.binary else (dtype or "float32"),
        dataset=listing.name,
        params=ext.params,
        n_total=len(ids),
        shard="" if shard is None else f"{shard[0]}/{shard[1]}",
        chunk_rows=max(batch_size, 256),
        extra_attrs={"folder": str(Path(listing.folder).resolve()), "inputs_sha1": fingerprint},
    )
    writer = make_writer()
    counts = writer.attrs
    if counts["n_seen"] != counts["n_rows"] + counts["n_skipped"]:  # killed between two counter updates
        print(f"{writer.partial}: inconsistent counters after a crash; starting again", file=sys.stderr)
        writer.close()
        writer.partial.unlink()
        writer = make_writer()
    with writer:
        if writer.attrs.get("inputs_sha1") != fingerprint:
            raise StoreError(
                f"{writer.partial} was started on a different list of images ({writer.attrs.get('n_total')} "
                f"images, now {len(ids)}): delete it to start again"
            )
        params = json.dumps(ext.params, sort_keys=True, default=str)
        if writer.attrs.get("params") != params:
            raise StoreError(
                f"{writer.partial} was started with other parameters ({writer.attrs.get('params')}, now {params}): "
                "refusing to mix features; delete it or use the same settings"
            )
        _run(ext, writer, paths, ids, batch_size, workers, strict, progress)
        listing_skips = listing.skipped if shard is None or shard[0] == 0 else []
        skipped = list(listing_skips) + writer.skipped()
        _write_errors(errors_path(out), skipped)
        n_rows = writer.n_rows
        path = writer.finish()
    if progress:
        print(f"{ext.name} on {listing.name}: {n_rows} features -> {path}; {summarize_skipped(skipped)}"
              + (f" (see {errors_path(out)})" if skipped else ""), file=sys.stderr)
    return path


def _run(
    ext: Extractor,
    writer: FeatureWriter,
    paths: Sequence[Path],
    ids: Sequence[str],
    batch_size: int,
    workers: int,
    strict: bool,
    progress: bool,
) -> None:
    """Feed images from writer.n_seen on through the extractor into the writer, one chunk per batch."""
    begin = writer.n_seen
    if begin >= len(paths):
        return
    width = ext.dim // 8 if ext.binary else ext.dim
    out_dtype = np.uint8 if ext.binary else np.float32
    cuda = getattr(getattr(ext, "device", None), "type", "cpu") == "cuda"
    loader = DataLoader(
        _Images(paths[begin:], ext),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_Collate(ext),
        worker_init_fn=_worker_init if workers else None,
        pin_memory=cuda,
        prefetch_factor=4 if workers else None,
    )
    exit_after = int(os.environ.get(EXIT_AFTER_ENV, "0") or 0)
    bar = tqdm(total=len(paths), initial=begin, unit="img", desc=ext.name, disable=not progress, smoothing=0.1)
    try:
        for chunk, (good, batch, bad) in enumerate(loader, start=1):
            bad_rows = [(str(paths[begin + i]), reason) for i, reason in bad]
            if strict and bad_rows:
                raise BadImageError(f"strict mode: {bad_rows[0][0]}: {bad_rows[0][1]}")
            feats = ext(batch) if batch is not None else np.empty((0, width), out_dtype)
            writer.append([ids[begin + i] for i in good], feats, skipped=bad_rows)
            bar.update(len(good) + len(bad))
            if exit_after and chunk >= exit_after:
                os._exit(17)
    finally:
        bar.close()
