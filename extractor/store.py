"""The feature store: one HDF5 file per (dataset, method), ILIAS's ``features`` + ``index`` layout.

File ``Features/<dataset>/<method>.h5`` (or ``<method>.shard-K-of-N.h5`` for shards):

- ``features``: (N, D) float32/float16, or (N, bits/8) uint8 for binary hashes (``np.packbits``,
  most significant bit first, as faiss binary indexes expect);
- ``index``: (N,) UTF-8 ids, dataset-qualified (``BSDS500_original/100007``);
- ``skipped``: (M, 2) UTF-8 (path, reason) of input files that could not be used;
- attributes: ``method``, ``dataset``, ``dim`` (features, or bits), ``binary``, ``dtype``,
  ``params`` (JSON), ``versions`` (JSON), ``created``, ``n_seen`` (inputs consumed, skipped
  included), ``n_total`` (inputs expected), ``shard`` ("K/N" or ""), ``complete``.

Files written without these attributes (ILIAS's own ``store_features``: ``features`` and
``index`` only, ``.hdf5``) load too: ``dim``, ``binary`` (float features) and ``dtype`` are read
from the data, ``method`` is the one asked for (or the file's folder, ILIAS's
``<root>/<model>/`` layout); what cannot be inferred is asked for with a message naming
`annotate_store`, which writes the missing attributes into the file.

A writer works on ``<name>.h5.partial`` and renames it only when complete, so a file with the
final name is always whole. Every appended chunk updates ``n_seen`` after the data is flushed; a
resumed run truncates to it, so a kill at any moment loses at most one chunk of work.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from helpers.paths import FEATURES_DIR

_STR = h5py.string_dtype("utf-8")
_SHARD_RE = re.compile(r"\.shard-(\d+)-of-(\d+)\.h5$")


class StoreError(ValueError):
    """A feature file that is missing, incomplete, or does not match what is asked of it."""


def _versions() -> dict[str, str]:
    import faiss  # noqa: F401  (imported lazily: optional for readers)
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "torch": torch.__version__,
        "faiss": getattr(faiss, "__version__", "?"),
    }


def store_path(
    dataset: str, method: str, root: str | os.PathLike = FEATURES_DIR, shard: tuple[int, int] | None = None
) -> Path:
    """Path of the store for (dataset, method); `shard=(k, n)` names the k-th of n shard files."""
    if "/" in method or "/" in dataset:
        raise ValueError(f"dataset {dataset!r} and method {method!r} must not contain '/'")
    name = method if shard is None else f"{method}.shard-{shard[0]}-of-{shard[1]}"
    return Path(root) / dataset / f"{name}.h5"


def store_files(dataset: str, method: str, root: str | os.PathLike = FEATURES_DIR) -> list[Path]:
    """The file(s) that hold (dataset, method): one file, or all N shards in order.

    Raises `StoreError` naming what is missing (no file, a missing or unfinished shard).
    """
    single = store_path(dataset, method, root)
    if single.is_file():
        return [single]
    folder = Path(root) / dataset
    shards = {}
    for path in folder.glob(f"{method}.shard-*-of-*.h5"):
        m = _SHARD_RE.search(path.name)
        if m and path.name == f"{method}.shard-{m[1]}-of-{m[2]}.h5":
            shards[(int(m[1]), int(m[2]))] = path
    if not shards:
        partial = single.with_name(single.name + ".partial")
        hint = " (an unfinished extraction exists: rerun it to resume)" if partial.exists() else ""
        raise StoreError(f"no features for dataset {dataset!r}, method {method!r} at {single}{hint}")
    counts = {n for _, n in shards}
    if len(counts) != 1:
        raise StoreError(f"{folder}: shards of {method!r} split in different counts {sorted(counts)}")
    n = counts.pop()
    missing = [k for k in range(n) if (k, n) not in shards]
    if missing:
        raise StoreError(f"{folder}: {method!r} shards {missing} of {n} are missing or unfinished")
    return [shards[(k, n)] for k in range(n)]


@dataclass
class Features:
    """Features and ids read from a store; `attrs` are the first file's attributes."""

    ids: np.ndarray
    features: np.ndarray
    method: str
    binary: bool
    dim: int
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Attributes of one store file, JSON fields decoded."""
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    for key in ("params", "versions"):
        if key in attrs:
            attrs[key] = json.loads(attrs[key])
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}


#: Attributes a reader needs; `file_attrs` infers them for files written without them.
_NEEDED = ("method", "dim", "binary", "dtype")


def file_attrs(path: str | os.PathLike, method: str | None = None) -> dict[str, Any]:
    """`read_attrs`, completed for files that lack ours (ILIAS's): inferred keys listed in ``inferred``.

    ``dim`` and ``dtype`` come from the ``features`` dataset; float features are not ``binary``;
    ``method`` is `method` if given, else the name of the file's folder. Integer features without
    a ``binary`` attribute raise `StoreError` asking for it (packed bits or not cannot be told).
    """
    attrs = read_attrs(path)
    if all(k in attrs for k in _NEEDED):
        return attrs
    with h5py.File(path, "r") as f:
        missing = [k for k in ("features", "index") if k not in f]
        if missing:
            raise StoreError(f"{path} has no {' or '.join(missing)} dataset: not a feature file")
        shape, dtype = f["features"].shape, f["features"].dtype
    if len(shape) != 2:
        raise StoreError(f"{path}: 'features' has shape {shape}, expected (rows, dim)")
    inferred = []
    if "binary" not in attrs:
        if dtype.kind != "f":
            raise StoreError(
                f"{path} holds {dtype} features and no 'binary' attribute: packed bits (np.packbits, as faiss "
                "binary indexes take) or integer features cannot be told apart. Say which once with "
                f"extractor.store.annotate_store({str(path)!r}, binary=True) (or binary=False)"
            )
        attrs["binary"] = False
        inferred.append("binary")
    if "dim" not in attrs:
        attrs["dim"] = int(shape[1]) * (8 if attrs["binary"] else 1)
        inferred.append("dim")
    if "dtype" not in attrs:
        attrs["dtype"] = str(dtype)
        inferred.append("dtype")
    if "method" not in attrs:
        attrs["method"] = method or Path(path).resolve().parent.name
        inferred.append("method")
    attrs["inferred"] = inferred
    return attrs


def annotate_store(path: str | os.PathLike, **attrs: Any) -> None:
    """Write missing attributes (``method``, ``binary``, ``dim``, ``dataset``) into a feature file."""
    allowed = {"method", "binary", "dim", "dataset"}
    if not attrs or set(attrs) - allowed:
        raise ValueError(f"annotate_store sets {sorted(allowed)}, got {sorted(attrs)}")
    with h5py.File(path, "r+") as f:
        f.attrs.update(attrs)


def _check_same(paths: Sequence[Path], method: str | None = None) -> dict[str, Any]:
    first = file_attrs(paths[0], method)
    for path in paths[1:]:
        other = file_attrs(path, method)
        for key in ("method", "dim", "binary", "dtype"):
            if other.get(key) != first.get(key):
                raise StoreError(f"{path}: {key}={other.get(key)!r} but {paths[0]} has {first.get(key)!r}")
    return first


def _resolve(dataset_or_path: str | os.PathLike, method: str | None, root) -> list[Path]:
    """The files of a (dataset, method) store, of one feature file (.h5, .hdf5), or of a glob of files."""
    path = Path(dataset_or_path)
    if path.suffix in (".h5", ".hdf5"):
        if path.is_file():
            return [path]
        if any(c in path.name for c in "*?["):
            files = sorted(p for p in path.parent.glob(path.name) if p.is_file())
            if not files:
                raise StoreError(f"no feature file matches {path}")
            return files
        if path.parent != Path(".") or path.suffix == ".hdf5":
            raise StoreError(f"feature file {path} does not exist")
    if method is None:
        raise ValueError("give a method, or the path of an .h5/.hdf5 file")
    return store_files(str(dataset_or_path), method, root)


def load_features(
    dataset_or_path: str | os.PathLike, method: str | None = None, root: str | os.PathLike = FEATURES_DIR
) -> Features:
    """All features and ids of (dataset, method), shards concatenated in order, or of .h5/.hdf5 file(s).

    `dataset_or_path` may be a file path or a glob (``hdf5/siglip/features_distractors_*.hdf5``).
    """
    paths = _resolve(dataset_or_path, method, root)
    attrs = _check_same(paths, method)
    ids, feats = [], []
    for path in paths:
        with h5py.File(path, "r") as f:
            ids.append(f["index"].asstr()[:])
            feats.append(f["features"][:])
    return Features(
        ids=np.concatenate(ids).astype(object),
        features=np.concatenate(feats),
        method=attrs["method"],
        binary=bool(attrs["binary"]),
        dim=int(attrs["dim"]),
        attrs=attrs,
    )


def iter_chunks(
    dataset_or_path: str | os.PathLike,
    method: str | None = None,
    root: str | os.PathLike = FEATURES_DIR,
    chunk_size: int = 65536,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (ids, features) blocks of at most `chunk_size` rows, over every shard in order."""
    paths = _resolve(dataset_or_path, method, root)
    _check_same(paths, method)
    for path in paths:
        with h5py.File(path, "r") as f:
            n = f["features"].shape[0]
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                yield f["index"].asstr()[start:stop].astype(object), f["features"][start:stop]


def store_info(
    dataset_or_path: str | os.PathLike, method: str | None = None, root: str | os.PathLike = FEATURES_DIR
) -> dict[str, Any]:
    """Attributes plus the total row count ``n``, without reading features."""
    paths = _resolve(dataset_or_path, method, root)
    attrs = _check_same(paths, method)
    n = 0
    for path in paths:
        with h5py.File(path, "r") as f:
            n += f["features"].shape[0]
    return {**attrs, "n": n, "files": [str(p) for p in paths]}


class FeatureWriter:
    """Append features chunk by chunk to ``<path>.partial``; `finish()` renames it to `path`.

    Reopening an unfinished file resumes it: `n_seen` says how many inputs are done. A file
    written for another method, dimension, dtype or kind of feature is never appended to.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        method: str,
        dim: int,
        binary: bool = False,
        dtype: str = "float32",
        dataset: str = "",
        params: dict[str, Any] | None = None,
        n_total: int | None = None,
        shard: str = "",
        chunk_rows: int = 1024,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.path.exists():
            raise StoreError(f"{self.path} is already complete; delete it to extract again")
        self.binary = binary
        width = dim // 8 if binary else dim
        if binary and dim % 8:
            raise ValueError(f"binary features need a multiple of 8 bits, got {dim}")
        want = {"method": method, "dim": int(dim), "binary": bool(binary), "dtype": "uint8" if binary else dtype}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                self._file = h5py.File(self.partial, "r+")
            except OSError:  # killed while HDF5 metadata was being written: start again
                self.partial.unlink()
        if self.partial.exists():
            have = {k: self._file.attrs.get(k) for k in want}
            have = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in have.items()}
            if have != want:
                self._file.close()
                raise StoreError(f"{self.partial} holds {have}, not {want}: refusing to append; delete it")
            self._truncate_to(int(self._file.attrs["n_rows"]))
        else:
            self._file = h5py.File(self.partial, "w")
            f = self._file
            f.create_dataset(
                "features", shape=(0, width), maxshape=(None, width), dtype=want["dtype"], chunks=(chunk_rows, width)
            )
            f.create_dataset("index", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(chunk_rows,))
            f.create_dataset("skipped", shape=(0, 2), maxshape=(None, 2), dtype=_STR, chunks=(256, 2))
            f.attrs.update(want)
            f.attrs.update(
                dataset=dataset,
                params=json.dumps(params or {}, sort_keys=True, default=str),
                versions=json.dumps(_versions()),
                created=_dt.datetime.now().isoformat(timespec="seconds"),
                shard=shard,
                n_total=-1 if n_total is None else int(n_total),
                n_seen=0,
                n_rows=0,
                n_skipped=0,
                complete=False,
            )
            f.attrs.update(extra_attrs or {})
            f.flush()

    def _truncate_to(self, n_rows: int) -> None:
        f = self._file
        f["features"].resize(n_rows, axis=0)
        f["index"].resize(n_rows, axis=0)
        f["skipped"].resize(int(f.attrs["n_skipped"]), axis=0)

    @property
    def n_seen(self) -> int:
        """How many inputs (written or skipped) are done; resume from this position."""
        return int(self._file.attrs["n_seen"])

    @property
    def attrs(self) -> dict[str, Any]:
        """The partial file's attributes as stored (JSON fields not decoded)."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._file.attrs.items()}

    @property
    def n_rows(self) -> int:
        return int(self._file.attrs["n_rows"])

    def append(self, ids: Sequence[str], features: np.ndarray, skipped: Sequence[tuple[str, str]] = ()) -> None:
        """Write one chunk: the features of `ids`, plus the inputs of this chunk that were skipped."""
        f = self._file
        features = np.asarray(features)
        if len(ids) != len(features):
            raise ValueError(f"{len(ids)} ids for {len(features)} feature rows")
        if features.ndim != 2 or features.shape[1] != f["features"].shape[1]:
            raise StoreError(f"features of shape {features.shape} do not fit {self.partial} (width {f['features'].shape[1]})")
        n, m = self.n_rows, int(f.attrs["n_skipped"])
        f["features"].resize(n + len(ids), axis=0)
        f["features"][n:] = features.astype(f["features"].dtype, copy=False)
        f["index"].resize(n + len(ids), axis=0)
        f["index"][n:] = np.asarray(list(ids), dtype=object)
        if skipped:
            f["skipped"].resize(m + len(skipped), axis=0)
            f["skipped"][m:] = np.asarray([[str(p), str(r)] for p, r in skipped], dtype=object)
        f.flush()  # data first, then the counters that make it count
        f.attrs.update(n_rows=n + len(ids), n_skipped=m + len(skipped), n_seen=self.n_seen + len(ids) + len(skipped))
        f.flush()

    def skipped(self) -> list[tuple[str, str]]:
        """All (path, reason) pairs skipped so far."""
        return [tuple(row) for row in self._file["skipped"].asstr()[:]]

    def finish(self) -> Path:
        """Mark complete, close, and move the file to its final name."""
        self._file.attrs["complete"] = True
        self._file.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing (the partial file stays, to resume later)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_features(
    path: str | os.PathLike,
    ids: Sequence[str],
    features: np.ndarray,
    *,
    method: str,
    binary: bool = False,
    dim: int | None = None,
    **attrs: Any,
) -> Path:
    """Write a whole array in one go (tests, adapted features, small sets)."""
    features = np.asarray(features)
    dim = dim if dim is not None else (features.shape[1] * 8 if binary else features.shape[1])
    dtype = "uint8" if binary else str(features.dtype)
    with FeatureWriter(path, method=method, dim=dim, binary=binary, dtype=dtype, n_total=len(ids), **attrs) as w:
        if len(ids):
            w.append(ids, features)
        return w.finish()
