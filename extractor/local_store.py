"""Local (patch token) features: a variable number of (dim,) tokens per image, streamed to one HDF5 file.

File ``Features/<dataset>/<method>.tokens.h5``:

- ``tokens``: (T, D) float32/float16, every image's tokens one after the other;
- ``offsets``: (N + 1,) int64, image i owns ``tokens[offsets[i]:offsets[i + 1]]``;
- ``index``: (N,) UTF-8 ids; ``skipped``: (M, 2) (path, reason);
- attributes ``method``, ``dataset``, ``dim``, ``dtype``, ``params`` (JSON), ``inputs_sha1``,
  ``n_seen`` (inputs consumed), ``n_total``, ``complete``, ``provenance`` (JSON, the keys of feature
  stores plus ``dtype``) and ``index_sha1``.

Each batch is appended and flushed, so memory does not grow with the number of images or tokens;
the writer works on ``.partial`` and resumes after the last complete batch (a rerun equals an
uninterrupted run). As for feature stores: the writer holds ``<file>.lock`` (a second writer is
refused naming the first), ``tokens`` and ``offsets`` carry Fletcher-32 checksums, ``index_sha1``
guards the ids, and a complete file made from other inputs or settings (files, precision, pixel
limit, dtype) is refused naming what differs. `LocalFeatures` reads any image's tokens back
without loading the others, and names the file when any of it is damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from extractor.store import H5_ERRORS, StoreError, ids_digest, provenance_differences
from helpers.atomic import publish
from helpers.lock import FileLock, LockError
from helpers.paths import DATASETS_DIR, FEATURES_DIR

_STR = h5py.string_dtype("utf-8")
SUFFIX = ".tokens.h5"


def tokens_path(dataset: str, method: str, root: str | os.PathLike = FEATURES_DIR) -> Path:
    """``<root>/<dataset>/<method>.tokens.h5``."""
    if "/" in dataset or "/" in method:
        raise ValueError(f"dataset {dataset!r} and method {method!r} must not contain '/'")
    return Path(root) / dataset / f"{method}{SUFFIX}"


class LocalWriter:
    """Append (id, tokens) per image to a ``.partial`` file; `finish` renames it when complete."""

    def __init__(self, path: str | os.PathLike, *, method: str, dim: int, dtype: str = "float32",
                 dataset: str = "", params: dict[str, Any] | None = None, n_total: int = 0,
                 inputs_sha1: str = "", chunk_tokens: int = 4096, provenance: dict[str, Any] | None = None,
                 boxes: bool = False) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = None
        self._lock = FileLock(self.path, what="token extraction")
        try:
            self._lock.acquire()
        except LockError as e:
            raise StoreError(str(e)) from None
        try:
            self._open(method, dim, dtype, dataset, params, n_total, inputs_sha1, chunk_tokens, provenance, boxes)
        except BaseException:
            self.close()
            raise

    def _open(self, method, dim, dtype, dataset, params, n_total, inputs_sha1, chunk_tokens, provenance,
              boxes=False) -> None:
        attrs = {"method": method, "dataset": dataset, "dim": int(dim), "dtype": dtype, "local": True,
                 "params": json.dumps(params or {}, sort_keys=True, default=str), "inputs_sha1": inputs_sha1,
                 "n_total": int(n_total)}
        if provenance is not None:
            attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
        if self.partial.exists():
            try:
                self.file = h5py.File(self.partial, "a")
                for key in ("method", "dim", "dtype", "params", "inputs_sha1", "provenance"):
                    if key in attrs and self.file.attrs.get(key) != attrs[key]:
                        raise StoreError(f"{self.partial} was started with another {key} (other images or settings); "
                                         "delete it to start again")
                self._truncate()
                damage = self._damage()
            except StoreError:
                raise
            except H5_ERRORS as e:  # unreadable metadata after a kill, or damage
                damage = (str(e).splitlines() or [type(e).__name__])[0]
            if damage:
                print(f"{self.partial}: damaged ({damage}), not resumed; starting again", file=sys.stderr)
                if self.file is not None:
                    try:
                        self.file.close()
                    except H5_ERRORS:
                        pass
                    self.file = None
                self.partial.unlink(missing_ok=True)
        if not self.partial.exists():
            self.file = h5py.File(self.partial, "w")
            self.file.attrs.update({**attrs, "committed": "[0, 0, 0]", "complete": False})
            self.file.create_dataset("tokens", (0, dim), dtype=dtype, maxshape=(None, dim),
                                     chunks=(max(1, chunk_tokens), dim), fletcher32=True)
            self.file.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,),
                                     fletcher32=True)
            self.file.create_dataset("index", (0,), dtype=_STR, maxshape=(None,), chunks=(4096,))
            self.file.create_dataset("skipped", (0, 2), dtype=_STR, maxshape=(None, 2), chunks=(256, 2))
            if boxes:  # region stores (extractor/regions.py): one (left, top, right, bottom) per row
                self.file.create_dataset("boxes", (0, 4), dtype="float32", maxshape=(None, 4),
                                         chunks=(max(1, chunk_tokens), 4))

    def _damage(self, block: int = 1 << 16) -> str | None:
        """Why the rows kept for a resume cannot be trusted (a checksum, offsets out of order), or None."""
        try:
            offsets = self.file["offsets"][:]
            tokens = self.file["tokens"]
            for start in range(0, tokens.shape[0], block):
                tokens[start:start + block]
        except H5_ERRORS as e:
            return (str(e).splitlines() or [type(e).__name__])[0]
        if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != tokens.shape[0]:
            return "offsets out of order"
        return None

    def _committed(self) -> tuple[int, int, int]:
        """(inputs consumed, images, skipped) as of the last complete batch (one attribute, written last)."""
        seen, images, skipped = json.loads(self.file.attrs["committed"])
        return int(seen), int(images), int(skipped)

    def _truncate(self) -> None:
        """Drop anything written after the last committed batch (a kill between two writes)."""
        _, n, m = self._committed()
        offsets = self.file["offsets"]
        self.file["index"].resize((n,))
        offsets.resize((n + 1,))
        self.file["tokens"].resize((int(offsets[n]), self.file["tokens"].shape[1]))
        if "boxes" in self.file:
            self.file["boxes"].resize((int(offsets[n]), 4))
        self.file["skipped"].resize((m, 2))

    @property
    def n_images(self) -> int:
        return self._committed()[1]

    @property
    def n_seen(self) -> int:
        return self._committed()[0]

    def append(self, ids: Sequence[str], tokens: Sequence[np.ndarray],
               skipped: Sequence[tuple[str, str]] = (), boxes: Sequence[np.ndarray] | None = None) -> None:
        """One batch: ids, one (n_i, dim) array per id, and the (path, reason) rows of skipped inputs.

        A file made with ``boxes=True`` takes one (n_i, 4) array of boxes per id, row for row.
        """
        if len(ids) != len(tokens):
            raise ValueError(f"{len(ids)} ids for {len(tokens)} token arrays")
        if ("boxes" in self.file) != (boxes is not None):
            raise ValueError("give boxes exactly when the file was made with boxes=True")
        if boxes is not None and [len(b) for b in boxes] != [len(t) for t in tokens]:
            raise ValueError("each image needs one box per token row")
        ds, offsets, index = self.file["tokens"], self.file["offsets"], self.file["index"]
        seen, n, m = self._committed()
        start = int(offsets[n])
        counts = np.array([len(t) for t in tokens], np.int64)
        if len(ids):
            block = np.concatenate([np.asarray(t, dtype=ds.dtype).reshape(-1, ds.shape[1]) for t in tokens])
            ds.resize((start + len(block), ds.shape[1]))
            ds[start:] = block
            if boxes is not None:
                self.file["boxes"].resize((start + len(block), 4))
                self.file["boxes"][start:] = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4)
                                                             for b in boxes])
            index.resize((n + len(ids),))
            index[n:] = list(ids)
            offsets.resize((n + len(ids) + 1,))
            offsets[n + 1:] = start + np.cumsum(counts)
        if skipped:
            sk = self.file["skipped"]
            sk.resize((m + len(skipped), 2))
            sk[m:] = np.array([[str(p), str(r)] for p, r in skipped], dtype=object)
        self.file.flush()
        seen, n, m = seen + len(ids) + len(skipped), n + len(ids), m + len(skipped)
        self.file.attrs["committed"] = json.dumps([seen, n, m])
        self.file.attrs["n_seen"] = seen
        self.file.flush()

    def skipped(self) -> list[tuple[str, str]]:
        return [(p.decode() if isinstance(p, bytes) else p, r.decode() if isinstance(r, bytes) else r)
                for p, r in self.file["skipped"][:]]

    def finish(self) -> Path:
        """Record ``index_sha1``, mark complete, sync, rename to the final name, release the lock."""
        self.file.attrs["index_sha1"] = ids_digest(self.file["index"].asstr()[:])
        self.file.attrs["complete"] = True
        self.file.close()
        publish(self.partial, self.path)
        self._lock.release()
        return self.path

    def close(self) -> None:
        if self.file is not None and self.file.id.valid:
            self.file.close()
        self._lock.release()

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalFeatures:
    """Read-only view of a tokens file: `ids`, `len`, `tokens(i or id)`, `iter_tokens()` (streamed)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise StoreError(f"no token store at {self.path}") from None
        except H5_ERRORS as e:
            raise self._damaged(e) from None
        try:
            self._check()
        except BaseException:
            self.file.close()
            raise
        self._row = {image_id: i for i, image_id in enumerate(self.ids)}
        self.dim = int(self.attrs.get("dim", self.file["tokens"].shape[1]))

    def _damaged(self, err: Exception) -> StoreError:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        return StoreError(f"{self.path} is damaged or not a token store ({first}); delete it and extract again "
                          "(extract_features.py --pooling local --overwrite)")

    def _check(self) -> None:
        """Offsets (checksummed, in order) and ids (``index_sha1``) verified; unfinished files refused."""
        f = self.file
        if "offsets" not in f or "tokens" not in f:
            raise StoreError(f"{self.path} is not a local-features file (no 'tokens'/'offsets')")
        try:
            self.attrs = dict(f.attrs)
            self.offsets = f["offsets"][:]
            self.ids = np.array(f["index"].asstr()[:], dtype=object)
        except H5_ERRORS as e:
            raise self._damaged(e) from None
        if "complete" in self.attrs and not bool(self.attrs["complete"]):
            raise StoreError(f"{self.path} is marked unfinished (complete=False); extract it again")
        want = self.attrs.get("index_sha1")
        if want is not None and ids_digest(self.ids) != want:
            raise self._damaged(ValueError("the ids do not match their checksum (index_sha1)"))
        n_tokens = f["tokens"].shape[0]
        if (len(self.offsets) != len(self.ids) + 1 or self.offsets[0] != 0 or (np.diff(self.offsets) < 0).any()
                or self.offsets[-1] != n_tokens):
            raise self._damaged(ValueError("offsets do not fit the tokens"))

    def _read(self, start: int, stop: int) -> np.ndarray:
        try:
            return self.file["tokens"][start:stop]
        except H5_ERRORS as e:  # a chunk whose checksum fails
            raise self._damaged(e) from None

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self) -> np.ndarray:
        """Number of tokens of each image."""
        return np.diff(self.offsets)

    def tokens(self, key: int | str) -> np.ndarray:
        """(n_i, dim) tokens of image `key` (row number or id)."""
        i = self._row[key] if isinstance(key, str) else int(key)
        return self._read(self.offsets[i], self.offsets[i + 1])

    def boxes(self, key: int | str) -> np.ndarray:
        """(n_i, 4) boxes of image `key`'s rows (region stores only)."""
        if "boxes" not in self.file:
            raise StoreError(f"{self.path} holds no boxes (not a region store)")
        i = self._row[key] if isinstance(key, str) else int(key)
        return self.file["boxes"][self.offsets[i]:self.offsets[i + 1]]

    def iter_tokens(self, block_tokens: int = 1 << 20) -> Iterator[tuple[str, np.ndarray]]:
        """(id, tokens) for every image in order, reading about `block_tokens` tokens at a time."""
        i, n = 0, len(self.ids)
        while i < n:
            j = i + 1
            while j < n and self.offsets[j + 1] - self.offsets[i] <= block_tokens:
                j += 1
            block = self._read(self.offsets[i], self.offsets[j])
            for k in range(i, j):
                yield self.ids[k], block[self.offsets[k] - self.offsets[i]:self.offsets[k + 1] - self.offsets[i]]
            i = j

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> LocalFeatures:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def ids_fingerprint(ids: Sequence[str]) -> str:
    """sha1 of the id list: a partial file is only resumed on the same inputs."""
    digest = hashlib.sha1()
    for image_id in ids:
        digest.update(str(image_id).encode() + b"\n")
    return digest.hexdigest()


def extract_local(
    ext,
    dataset,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    batch_size: int = 32,
    workers: int = 2,
    limit: int | None = None,
    *,
    name: str | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Patch tokens (`pooling='local'` extractor) of every image of `dataset` -> ``<method>.tokens.h5``.

    Resumable like `extract_dataset`; bad files are skipped and recorded. `dtype="float16"` halves the file.
    """
    import torch
    from tqdm.auto import tqdm

    from extractor.pipeline import _batches, _Images, _listing, make_provenance
    from extractor.store import read_attrs

    if not getattr(ext, "local", False):
        raise ValueError(f"{ext.name} gives global features; create it with pooling='local'")
    listing = _listing(dataset, datasets_root, name)
    paths, ids = listing.paths[:limit], listing.ids[:limit]
    out = tokens_path(listing.name, ext.name, features_root)
    provenance = {**make_provenance(ext, listing, paths, ids, limit, None), "dtype": dtype}
    if out.exists():
        if not overwrite:
            differences = provenance_differences(read_attrs(out).get("provenance"), provenance)
            if differences:
                raise StoreError(f"{out} was produced from other inputs or settings: {'; '.join(differences)}. "
                                 "Rerun with --overwrite (overwrite=True) to extract it again")
            return out
        out.unlink()
    with LocalWriter(out, method=ext.name, dim=ext.dim, dtype=dtype, dataset=listing.name, params=ext.params,
                     n_total=len(ids), inputs_sha1=ids_fingerprint(ids), provenance=provenance) as writer:
        begin = writer.n_seen
        if begin < len(paths):
            cuda = getattr(ext.device, "type", "cpu") == "cuda"
            loader = _batches(ext, _Images(paths[begin:], ext), batch_size, workers, cuda)
            bar = tqdm(total=len(paths), initial=begin, unit="img", desc=f"{ext.name} tokens", disable=not progress)
            with torch.inference_mode():
                for good, batch, bad in loader:
                    tokens = ext.tokens(batch) if batch is not None else []
                    writer.append([ids[begin + i] for i in good], tokens,
                                  skipped=[(str(paths[begin + i]), reason) for i, reason in bad])
                    bar.update(len(good) + len(bad))
            bar.close()
        n_skipped = len(writer.skipped())
        path = writer.finish()
    if progress:
        print(f"{ext.name} tokens on {listing.name}: -> {path}; {n_skipped} skipped", file=sys.stderr)
    return path
