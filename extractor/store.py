"""The feature store: one HDF5 file per (dataset, method), ILIAS's ``features`` + ``index`` layout.

File ``Features/<dataset>/<method>.h5`` (or ``<method>.shard-K-of-N.h5`` for shards):

- ``features``: (N, D) float32/float16, or (N, bits/8) uint8 for binary hashes (``np.packbits``,
  most significant bit first, as faiss binary indexes expect);
- ``index``: (N,) UTF-8 ids, dataset-qualified (``BSDS500_original/100007``);
- ``index_lines`` (optional, written since store format 2): the same ids as one uint8 array of
  UTF-8 bytes, each id followed by ``\n``; its sha1 is ``index_sha1``, so readers verify it in one
  hash and split it in one call instead of decoding N variable-length strings (5x faster on 1M
  ids). Readers fall back to ``index`` where it is absent (older stores, ILIAS's files) or where an
  id holds a newline (then the lines do not split into N ids);
- ``skipped``: (M, 2) UTF-8 (path, reason) of input files that could not be used;
- attributes: ``method``, ``dataset``, ``dim`` (features, or bits), ``binary``, ``dtype``,
  ``params`` (JSON), ``versions`` (JSON), ``created``, ``n_seen`` (inputs consumed, skipped
  included), ``n_total`` (inputs expected), ``shard`` ("K/N" or ""), ``complete``,
  ``provenance`` (JSON: what produced the store, see docs/extractor.md) and ``index_sha1``.

Files written without these attributes (ILIAS's own ``store_features``: ``features`` and
``index`` only, ``.hdf5``) load too: ``dim``, ``binary`` (float features) and ``dtype`` are read
from the data, ``method`` is the one asked for (or the file's folder, ILIAS's
``<root>/<model>/`` layout); what cannot be inferred is asked for with a message naming
`annotate_store`, which writes the missing attributes into the file.


A writer holds ``<name>.h5.lock`` (helpers.lock: pid inside, stale locks taken over), works on
``<name>.h5.partial`` and renames it only when complete, so a file with the final name is always
whole and only the process that wrote it publishes it. Every appended chunk updates ``n_seen``
after the data is flushed; a resumed run truncates to it, so a kill at any moment loses at most
one chunk of work. Feature chunks carry HDF5 Fletcher-32 checksums and ``index_sha1`` hashes the
ids: readers verify both and name the damaged file (`StoreError`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from helpers.atomic import publish
from helpers.lock import FileLock, LockError
from helpers.paths import FEATURES_DIR

_STR = h5py.string_dtype("utf-8")
#: Store format: 2 adds ``index_lines`` (ids as one byte array); format-1 files read as before.
FORMAT = 2
_SHARD_RE = re.compile(r"\.shard-(\d+)-of-(\d+)\.h5$")


class StoreError(ValueError):
    """A feature file that is missing, incomplete, or does not match what is asked of it."""


class StoreExistsError(StoreError):
    """The store is already complete (perhaps finished by another process meanwhile)."""


def _versions() -> dict[str, str]:
    """Versions of the libraries that made a store, read from their installed metadata (no torch import)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(*dists: str) -> str:
        for dist in dists:
            try:
                return version(dist)
            except PackageNotFoundError:
                continue
        return "?"

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "torch": installed("torch"),
        "faiss": installed("faiss-cpu", "faiss-gpu", "faiss"),
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
    folder = Path(root) / dataset
    shards = {}
    for path in folder.glob(f"{method}.shard-*-of-*.h5"):
        m = _SHARD_RE.search(path.name)
        if m and path.name == f"{method}.shard-{m[1]}-of-{m[2]}.h5":
            shards[(int(m[1]), int(m[2]))] = path
    if single.is_file():
        if shards:  # which one is current cannot be told: never read one and hide the other
            names = ", ".join(p.name for _, p in sorted(shards.items()))
            raise StoreError(
                f"{folder}: both a single store {single.name} and shards of {method!r} ({names}) exist; "
                "delete the one that is out of date (or extract again with --overwrite after deleting both)"
            )
        return [single]
    if not shards:
        partial = single.with_name(single.name + ".partial")
        hint = (" (an unfinished extraction exists: rerun it to resume)" if partial.exists() else
                f"; extract it first: `extract_features.py --method {method} --dataset {dataset}` (a registered "
                f"dataset) or `--folder FOLDER` (a folder named {dataset!r})")
        raise StoreError(f"no features for dataset {dataset!r}, method {method!r} at {single}{hint}")
    counts = {n for _, n in shards}
    if len(counts) != 1:
        raise StoreError(f"{folder}: shards of {method!r} split in different counts {sorted(counts)}")
    n = counts.pop()
    missing = [k for k in range(n) if (k, n) not in shards]
    if missing:
        raise StoreError(f"{folder}: {method!r} shards {missing} of {n} are missing or unfinished")
    files = [shards[(k, n)] for k in range(n)]
    _check_generation(files)
    return files


def _check_generation(files: Sequence[Path]) -> None:
    """Refuse shards extracted from different listings of the folder (a file added between two shards):
    their rows would overlap or leave gaps. Uses ``provenance.listing_sha1``; older shards pass."""
    groups: dict[str, list[str]] = {}
    for path in files:
        listing = (read_attrs(path).get("provenance") or {}).get("listing_sha1")
        if listing is None:
            return
        groups.setdefault(listing, []).append(path.name)
    if len(groups) > 1:
        parts = "; ".join(", ".join(names) for names in sorted(groups.values(), key=len, reverse=True))
        raise StoreError(
            f"{files[0].parent}: shards of one store were extracted from different contents of the folder "
            f"(files added or removed in between: {parts}); extract the minority again with --overwrite "
            "(or all of them)"
        )


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


_REDO = "delete it and extract again (extract_features.py --overwrite)"


def _damaged(path: str | os.PathLike, err: Exception) -> StoreError:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return StoreError(f"{path} is damaged or not a feature store ({first}); {_REDO}")


#: What h5py raises on a damaged file, depending on where the damage is (a flipped bit in an
#: attribute's dataspace message is a RuntimeError, in a chunk an OSError, in a type a ValueError).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a store for reading; a truncated, empty, foreign or damaged file, wherever the damage is
    found while the block reads it, becomes a `StoreError` naming the file."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise StoreError(f"no feature store at {path}") from None
    except H5_ERRORS as e:
        raise _damaged(path, e) from None
    try:
        with f:
            yield f
    except StoreError:
        raise
    except H5_ERRORS as e:
        raise _damaged(path, e) from None


def _read(path: str | os.PathLike, dataset: h5py.Dataset, sel: Any = slice(None), strings: bool = False) -> np.ndarray:
    """Read `dataset[sel]` (checksums verified by HDF5); any read error names the file to redo."""
    try:
        return dataset.asstr()[sel] if strings else dataset[sel]
    except H5_ERRORS as e:
        raise _damaged(path, e) from None


def _get(path: str | os.PathLike, f: h5py.File, name: str) -> h5py.Dataset:
    if name not in f:
        raise StoreError(f"{path} has no {name!r} dataset; {_REDO}")
    return f[name]


def id_lines(ids: Sequence[str]) -> bytes:
    """The ids as UTF-8 bytes, one per line: what ``index_sha1`` hashes and ``index_lines`` holds."""
    if not len(ids):
        return b""
    return ("\n".join(map(str, ids)) + "\n").encode("utf-8", "surrogateescape")


def ids_digest(ids: Sequence[str]) -> str:
    """sha1 of the ids, one per line: the ``index_sha1`` attribute that guards the id strings."""
    return hashlib.sha1(id_lines(ids)).hexdigest()


def _split_lines(blob: np.ndarray, n: int) -> list[str] | None:
    """The ids held in ``index_lines``, or None when they do not split into `n` ids (a newline in an id)."""
    text = blob.tobytes().decode("utf-8", "surrogateescape")
    if not text.endswith("\n") and n:
        return None
    ids = text[:-1].split("\n") if n else []
    return ids if len(ids) == n else None


def _decode(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
    for key in ("params", "versions", "provenance"):
        if isinstance(out.get(key), (str, bytes)):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    return out


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Attributes of one store file, JSON fields decoded (empty for stores written without any)."""
    with _open(path) as f:
        attrs = dict(f.attrs)
    return _decode(attrs)


def _bad_ids(path: str | os.PathLike) -> StoreError:
    return StoreError(f"{path}: the ids do not match their checksum (index_sha1): the file is damaged; {_REDO}")


def _check_whole(path: str | os.PathLike, f: h5py.File) -> np.ndarray:
    """The ids of a whole file (object array), verified against ``index_sha1``; refuse unfinished files.

    Reads ``index_lines`` (one hash, one split) where the file has it and its ids split
    cleanly, else decodes the variable-length ``index``.
    """
    attrs = f.attrs
    if "complete" in attrs and not bool(attrs["complete"]):
        raise StoreError(f"{path} is marked unfinished (complete=False); {_REDO}")
    want = attrs.get("index_sha1")
    n = _get(path, f, "index").shape[0]
    if "index_lines" in f and want is not None:
        blob = _read(path, f["index_lines"])
        if hashlib.sha1(blob.data).hexdigest() != want:
            raise _bad_ids(path)
        ids = _split_lines(blob, n)
        if ids is not None:
            out = np.empty(n, dtype=object)
            out[:] = ids
            return out
    ids = _read(path, _get(path, f, "index"), strings=True).astype(object)
    if want is not None and ids_digest(ids) != want:
        raise _bad_ids(path)
    return ids


def read_index(path: str | os.PathLike) -> np.ndarray:
    """The ids of one store file, checked against ``index_sha1``, without reading features."""
    with _open(path) as f:
        return _check_whole(path, f)


#: Provenance keys recorded since stores were first written, with the value an older store was made
#: with: a store that lacks the key matches when the value asked for is that one.
PROVENANCE_SINCE: dict[str, Any] = {"max_pixels": 16384 * 16384, "listing_sha1": None}


def provenance_differences(have: dict[str, Any] | None, want: dict[str, Any]) -> list[str]:
    """Human-readable 'key: stored X, now Y' for every provenance entry that differs."""
    if not have:
        return ["provenance: the store does not record what produced it"]
    out = []
    for key in sorted(set(have) | set(want)):
        if key not in have and key in PROVENANCE_SINCE and PROVENANCE_SINCE[key] in (None, want.get(key)):
            continue
        if have.get(key) != want.get(key):
            out.append(f"{key}: stored {_short(have.get(key))}, now {_short(want.get(key))}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
    with _open(path) as f:
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
    if len(paths) == 1:
        with _open(paths[0]) as f:
            ids = _check_whole(paths[0], f)
            features = _read(paths[0], _get(paths[0], f, "features"))
    else:  # shards: one array, each file read straight into its rows (no concatenation copy)
        rows = []
        for path in paths:
            with _open(path) as f:
                data = _get(path, f, "features")
                rows.append(data.shape[0])
                shape, dtype = data.shape[1:], data.dtype
        features = np.empty((sum(rows), *shape), dtype=dtype)
        parts, start = [], 0
        for path, n in zip(paths, rows, strict=True):
            with _open(path) as f:
                parts.append(_check_whole(path, f))
                data = _get(path, f, "features")
                if data.shape[0] != n or len(parts[-1]) != n:
                    raise StoreError(f"{path} changed while being read, or its ids and features differ in length")
                if n:
                    try:
                        data.read_direct(features, dest_sel=np.s_[start : start + n])
                    except (OSError, KeyError, ValueError, TypeError) as e:
                        raise _damaged(path, e) from None
                start += n
        ids = np.concatenate(parts)
        if len(set(ids.tolist())) != len(ids):
            raise StoreError(f"{paths[0].parent}: the shards of {attrs.get('method')!r} hold the same id twice "
                             "(extracted from different listings); extract them again with --overwrite")
    binary = bool(attrs.get("binary", features.dtype == np.uint8))
    return Features(
        ids=ids,
        features=features,
        method=attrs.get("method", method or Path(paths[0]).stem),
        binary=binary,
        dim=int(attrs.get("dim", features.shape[1] * (8 if binary else 1))),
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
        with _open(path) as f:
            ids = _check_whole(path, f)  # once per file: verified before any row is yielded
            features = _get(path, f, "features")
            n = features.shape[0]
            for start in range(0, n, chunk_size):
                sel = slice(start, min(start + chunk_size, n))
                yield ids[sel], _read(path, features, sel)


def store_info(
    dataset_or_path: str | os.PathLike, method: str | None = None, root: str | os.PathLike = FEATURES_DIR
) -> dict[str, Any]:
    """Attributes plus the total row count ``n``, without reading features."""
    paths = _resolve(dataset_or_path, method, root)
    attrs = _check_same(paths, method)
    n = 0
    for path in paths:
        with _open(path) as f:
            if "complete" in f.attrs and not bool(f.attrs["complete"]):
                raise StoreError(f"{path} is marked unfinished (complete=False); {_REDO}")
            n += _get(path, f, "features").shape[0]
    return {**attrs, "n": n, "files": [str(p) for p in paths]}


class FeatureWriter:
    """Append features chunk by chunk to ``<path>.partial``; `finish()` renames it to `path`.

    The writer holds ``<path>.lock`` from construction to `finish`/`close`: a second writer of the
    same store gets a `StoreError` naming the holder. Reopening an unfinished file resumes it
    (`n_seen` says how many inputs are done) when it was written for the same method, dimension,
    dtype, kind of feature and `provenance`; otherwise the error names what differs. A complete
    file is never appended to: `overwrite=True` deletes it (and any partial file) first.
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
        provenance: dict[str, Any] | None = None,
        overwrite: bool = False,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if binary and dim % 8:
            raise ValueError(f"binary features need a multiple of 8 bits, got {dim}")
        self.binary = binary
        self.method = method
        self._file: h5py.File | None = None
        self._lock = FileLock(self.path, what="feature extraction")
        try:
            self._lock.acquire()
        except LockError as e:
            raise StoreError(str(e)) from None
        try:
            self._open(method, dim, binary, dtype, dataset, params, n_total, shard, chunk_rows, provenance,
                       overwrite, extra_attrs)
        except BaseException:
            self.close()
            raise

    def _open(self, method, dim, binary, dtype, dataset, params, n_total, shard, chunk_rows, provenance, overwrite,
              extra_attrs) -> None:
        if overwrite:
            self.path.unlink(missing_ok=True)
            self.partial.unlink(missing_ok=True)
        if self.path.exists():
            raise StoreExistsError(f"{self.path} is already complete; delete it or extract again with --overwrite (overwrite=True in Python)")
        width = dim // 8 if binary else dim
        want = {"method": method, "dim": int(dim), "binary": bool(binary), "dtype": "uint8" if binary else dtype}
        params_json = json.dumps(params or {}, sort_keys=True, default=str)
        provenance_json = json.dumps(provenance, sort_keys=True, default=str) if provenance is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                self._resume(want, params_json, provenance)
            except StoreError:
                raise
            except H5_ERRORS as e:  # damaged metadata found while checking it: start again
                self._drop_partial(f"damaged ({(str(e).splitlines() or [type(e).__name__])[0]})")
        if self._file is None:
            self._file = f = h5py.File(self.partial, "w")
            f.create_dataset(
                "features", shape=(0, width), maxshape=(None, width), dtype=want["dtype"], chunks=(chunk_rows, width),
                fletcher32=True,
            )
            f.create_dataset("index", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(chunk_rows,))
            f.create_dataset("index_lines", shape=(0,), maxshape=(None,), dtype="uint8", chunks=(1 << 16,))
            f.create_dataset("skipped", shape=(0, 2), maxshape=(None, 2), dtype=_STR, chunks=(256, 2))
            f.attrs.update(want)
            f.attrs.update(
                dataset=dataset,
                params=params_json,
                versions=json.dumps(_versions()),
                created=_dt.datetime.now().isoformat(timespec="seconds"),
                shard=shard,
                n_total=-1 if n_total is None else int(n_total),
                n_seen=0,
                n_rows=0,
                n_skipped=0,
                n_index_bytes=0,
                complete=False,
                format=FORMAT,
            )
            if provenance_json is not None:
                f.attrs["provenance"] = provenance_json
            f.attrs.update(extra_attrs or {})
            f.flush()

    def _resume(self, want: dict[str, Any], params_json: str, provenance: dict[str, Any] | None) -> None:
        """Open the partial file to append to it, or start again when it cannot be trusted."""
        try:
            self._file = h5py.File(self.partial, "r+")
            attrs = _decode(dict(self._file.attrs))
        except H5_ERRORS:  # killed while HDF5 metadata was being written, or damaged: start again
            self._drop_partial("unreadable")
            return
        if attrs.get("n_seen") != attrs.get("n_rows", 0) + attrs.get("n_skipped", 0):
            self._drop_partial("inconsistent counters after a crash")
            return
        have = {k: attrs.get(k) for k in want}
        differences = [f"{k}: partial {have[k]!r}, now {want[k]!r}" for k in want if have[k] != want[k]]
        if self._file.attrs.get("params") != params_json:
            differences.append(f"params: partial {self._file.attrs.get('params')}, now {params_json}")
        if provenance is not None:
            differences += provenance_differences(attrs.get("provenance"), provenance)
        if differences:
            raise StoreError(
                f"{self.partial} was started with other inputs or settings ({'; '.join(differences)}): refusing to append; "
                "rerun with the same settings, or overwrite (extract_features.py --overwrite)"
            )
        self._truncate_to(int(self._file.attrs["n_rows"]))
        damage = self._damage()
        if damage:
            self._drop_partial(f"damaged ({damage}), not resumed")

    def _damage(self, block_rows: int = 1 << 16) -> str | None:
        """Why the rows kept for a resume cannot be trusted, or None: every features chunk is read
        (HDF5 verifies its Fletcher-32 checksum) and the ids are compared with ``index_lines``."""
        f = self._file
        features, n = f["features"], int(f.attrs["n_rows"])
        try:
            for start in range(0, n, block_rows):
                features[start:min(n, start + block_rows)]
            ids = f["index"].asstr()[:n]
        except H5_ERRORS as e:
            return (str(e).splitlines() or [type(e).__name__])[0]
        if "index_lines" in f:
            lines = np.frombuffer(id_lines(ids), dtype=np.uint8)
            have = f["index_lines"][: int(f.attrs.get("n_index_bytes", 0))]
            if not any("\n" in i for i in ids) and not np.array_equal(have, lines):
                return "its ids and their byte copy differ"
        return None

    def _drop_partial(self, why: str) -> None:
        print(f"{self.partial}: {why}; starting again", file=sys.stderr)
        if self._file is not None:
            try:
                self._file.close()
            except H5_ERRORS:  # a damaged file may fail to close cleanly: it is deleted anyway
                pass
            self._file = None
        self.partial.unlink(missing_ok=True)

    def _truncate_to(self, n_rows: int) -> None:
        f = self._file
        f["features"].resize(n_rows, axis=0)
        f["index"].resize(n_rows, axis=0)
        if "index_lines" in f:  # absent in partial files of format 1: they keep ``index`` only
            f["index_lines"].resize(int(f.attrs.get("n_index_bytes", 0)), axis=0)
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
        """Write one chunk: the features of `ids`, plus the inputs of this chunk that were skipped.

        A write that fails (a full disk) is a `StoreError` naming the partial file; what was appended
        before stays, and a rerun resumes from it."""
        try:
            self._append(ids, features, skipped)
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(f"{self.partial}: cannot write ({(str(e).splitlines() or [type(e).__name__])[0]}); "
                             "free some space and rerun to resume") from e

    def _append(self, ids: Sequence[str], features: np.ndarray, skipped: Sequence[tuple[str, str]] = ()) -> None:
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
        counters = {}
        if "index_lines" in f:
            lines = np.frombuffer(id_lines(ids), dtype=np.uint8)
            b = int(f.attrs.get("n_index_bytes", 0))
            f["index_lines"].resize(b + len(lines), axis=0)
            f["index_lines"][b:] = lines
            counters["n_index_bytes"] = b + len(lines)
        if skipped:
            f["skipped"].resize(m + len(skipped), axis=0)
            f["skipped"][m:] = np.asarray([[str(p), str(r)] for p, r in skipped], dtype=object)
        f.flush()  # data first, then the counters that make it count
        f.attrs.update(n_rows=n + len(ids), n_skipped=m + len(skipped), n_seen=self.n_seen + len(ids) + len(skipped),
                       **counters)
        f.flush()

    def skipped(self) -> list[tuple[str, str]]:
        """All (path, reason) pairs skipped so far."""
        return [tuple(row) for row in self._file["skipped"].asstr()[:]]

    def finish(self) -> Path:
        """Mark complete, sync, move the file to its final name and release the lock.

        Only the lock holder gets here, so the file renamed is the one this process wrote.
        """
        if not self._lock.held or self._file is None:
            raise StoreError(f"{self.partial}: this writer is closed; only an open writer publishes its file")
        f = self._file
        f.attrs["index_sha1"] = digest = ids_digest(f["index"].asstr()[:])  # from the strings: guards both forms
        if "index_lines" in f and hashlib.sha1(f["index_lines"][:].data).hexdigest() != digest:
            del f["index_lines"]  # never publish two forms of the ids that disagree; readers use ``index``
        f.attrs["complete"] = True
        f.close()
        self._file = None
        publish(self.partial, self.path)  # fsync the file, rename, fsync the folder
        self._lock.release()
        return self.path

    def close(self) -> None:
        """Close without finishing (the partial file stays, to resume later) and release the lock."""
        if self._file is not None and self._file.id.valid:
            self._file.close()
        self._file = None
        self._lock.release()

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
