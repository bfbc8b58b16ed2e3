"""IVF indexes larger than memory: train on a sample, add block by block to shard indexes, merge on disk.

The faiss recipe (faiss/contrib/ondisk.py, the wiki's "Indexes that do not fit in RAM"):

1. train the IVF (``IVF4096,PQ32``, ``IVF4096,SQ8``, ``OPQ32,IVF65536_HNSW32,PQ32``...) on a sample;
2. add the database block by block to copies of the trained index, each written to disk as one
   shard index once it holds ``shard_rows`` vectors (memory: one shard's codes, never the database);
3. merge the shards' inverted lists into one ``merged.ivfdata`` with `faiss.contrib.ondisk.merge_ondisk`
   (`OnDiskInvertedLists`), and write ``merged.index`` that points at it;
4. search ``merged.index`` memory-mapped: only the coarse quantizer and the lists probed are paged in.

Every file is checksummed when written: shard indexes before they are merged, ``merged.index`` and
``merged.ivfdata`` (``checksums.json``, sha256) before they are opened, so a flipped byte is an error
naming the file (`helpers.digest.ChecksumError`), never other neighbours.

Only IVF indexes keep their codes in inverted lists, so only they memory-map (faiss issues 1262, 1403).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk
from tqdm.auto import tqdm

from fast_search.index import FaissIndex, content_keys, content_order, prepare, sweep_param
from helpers.atomic import atomic_path, write_json
from helpers.digest import ChecksumError, file_sha256, verify

#: Vectors per shard index before it is written to disk (1M PQ32 codes: ~40 MB with their ids).
SHARD_ROWS = 1_000_000
#: sha256 of ``merged.index`` and ``merged.ivfdata``, written after the merge, checked by `open_ondisk`.
CHECKSUMS = "checksums.json"
_REDO = "build the on-disk index again (rerun the experiment with --overwrite)"


def check_ondisk(factory: str, binary: bool) -> None:
    """Refuse (ValueError) what cannot be merged on disk: binary indexes and non-IVF indexes."""
    if binary:
        raise ValueError(f"--ondisk needs float features; faiss merges only float IVF indexes on disk, not {factory!r}")
    if sweep_param(factory) != "nprobe" or "IVF" not in factory:
        raise ValueError(
            f"--ondisk needs an IVF index (e.g. 'IVF4096,PQ32', 'IVF1024,SQ8'); {factory!r} keeps no inverted "
            "lists, so it cannot be memory-mapped"
        )


def sample_rows(blocks: Iterable[tuple[object, np.ndarray]], n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """`n` rows chosen by their content from the concatenated blocks, in one streaming pass.

    The rows whose content hash (`content_keys`, salted by `seed`) is smallest: a uniform sample
    spread over the whole database, not its first rows (stores list originals before distractors,
    shards one after another), and the same sample whatever the order of the rows or the names of
    their files. Returned in content order.
    """
    n = min(n, n_total)
    keys, rows, offset = np.zeros(0, np.uint64), None, 0
    for _, block in blocks:
        block = np.asarray(block)
        offset += len(block)
        if not len(block):
            continue
        k = content_keys(block, seed)
        keys = np.r_[keys, k]
        rows = block if rows is None else np.concatenate([rows, block])
        if len(keys) > 2 * max(n, 1):  # keep the n smallest keys seen so far
            keep = np.argpartition(keys, n - 1)[:n] if n else np.zeros(0, np.int64)
            keys, rows = keys[keep], rows[keep]
    if rows is None or offset < n_total:
        raise ValueError(f"sample_rows: the blocks hold {offset} rows, fewer than the {n_total} announced")
    return np.ascontiguousarray(rows[content_order(rows, keys)[:n]])


class OnDiskIVF(FaissIndex):
    """A `FaissIndex` whose inverted lists live in ``folder/merged.ivfdata``, searched memory-mapped.

    `fit` trains on a sample (kept in memory: the caller bounds it), `add` appends a block to the
    current shard index (written to disk every `shard_rows` vectors), `merge` (called by the first
    `search`) merges the shards on disk and reopens the result memory-mapped.
    """

    def __init__(self, factory: str, metric: str, folder: str | os.PathLike, shard_rows: int = SHARD_ROWS,
                 batch_size: int = 4096) -> None:
        super().__init__(factory, metric, binary=False, batch_size=batch_size)
        check_ondisk(factory, False)
        self.folder = Path(folder)
        self.shard_rows = shard_rows

    # ---- build -----------------------------------------------------------------------------
    def fit(self, x: np.ndarray) -> OnDiskIVF:
        """Train on `x` and write ``trained.index``; any earlier build in `folder` is removed."""
        super().fit(x)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        with atomic_path(self.folder / "trained.index") as tmp:
            faiss.write_index(self.index_, str(tmp))
            self._trained_sha256 = file_sha256(tmp)
        self.shards_: list[Path] = []
        self.shard_sha256_: dict[str, str] = {}
        self._shard = None
        self._merged = False
        return self

    def _new_shard(self):
        verify(self.folder / "trained.index", self._trained_sha256, _REDO)
        return faiss.read_index(str(self.folder / "trained.index"))

    def _flush(self) -> None:
        if self._shard is None or self._shard.ntotal == 0:
            return
        path = self.folder / f"shard_{len(self.shards_):05d}.index"
        with atomic_path(path) as tmp:  # a shard file is whole or absent
            faiss.write_index(self._shard, str(tmp))
            self.shard_sha256_[path.name] = file_sha256(tmp)
        self.shards_.append(path)
        self._shard = None

    def add(self, x: np.ndarray) -> OnDiskIVF:
        """Add a block; ids are positions in the concatenated database, as for in-memory indexes."""
        self._check_fitted()
        if self._merged:
            raise RuntimeError("this on-disk index is merged already; build a new one to add vectors")
        x = prepare(x, self.metric)
        start = time.perf_counter()
        pos = 0
        while pos < len(x):
            if self._shard is None:
                self._shard = self._new_shard()
            take = min(len(x) - pos, self.shard_rows - self._shard.ntotal)
            ids = np.arange(self.ntotal_, self.ntotal_ + take, dtype=np.int64)
            self._shard.add_with_ids(x[pos : pos + take], ids)
            self.ntotal_ += take
            pos += take
            if self._shard.ntotal >= self.shard_rows:
                self._flush()
        self.add_time_ += time.perf_counter() - start
        return self

    def merge(self) -> OnDiskIVF:
        """Merge every shard's lists into ``merged.ivfdata``, write ``merged.index``, reopen it memory-mapped."""
        self._check_fitted()
        if self._merged:
            return self
        start = time.perf_counter()
        self._flush()
        index = self._new_shard()
        for path in self.shards_:  # a shard damaged on disk since it was written is not merged
            verify(path, self.shard_sha256_[path.name], _REDO)
        merge_ondisk(index, [str(p) for p in self.shards_], str(self.folder / "merged.ivfdata"))
        with atomic_path(self.folder / "merged.index") as tmp:  # written last: it exists only over a whole .ivfdata
            faiss.write_index(index, str(tmp))
        del index
        write_json(self.folder / CHECKSUMS, {name: file_sha256(self.folder / name)
                                             for name in ("merged.index", "merged.ivfdata")}, indent=1)
        for path in self.shards_:
            path.unlink()
        self.index_ = open_ondisk(self.folder)
        self._merged = True
        self.add_time_ += time.perf_counter() - start
        return self

    # ---- search ----------------------------------------------------------------------------
    def set_param(self, name: str, value: int) -> OnDiskIVF:
        self.merge()
        return super().set_param(name, value)

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.merge()
        return super().search(xq, k)

    def memory_bytes(self) -> int:
        """Bytes on disk: the index file plus its inverted lists (the resident part is far smaller)."""
        self.merge()
        return sum((self.folder / n).stat().st_size for n in ("merged.index", "merged.ivfdata"))


def open_ondisk(folder: str | os.PathLike):
    """``folder/merged.index`` with its lists memory-mapped from ``merged.ivfdata`` beside it, after
    both files are checked against ``checksums.json`` (`ChecksumError` naming the damaged one)."""
    folder = Path(folder)
    try:
        sums = json.loads((folder / CHECKSUMS).read_text())
    except (OSError, ValueError) as e:
        raise ChecksumError(f"{folder / CHECKSUMS} is missing or damaged ({type(e).__name__}): the on-disk index "
                            f"cannot be checked; {_REDO}") from None
    for name in ("merged.index", "merged.ivfdata"):
        if not isinstance(sums, dict) or not isinstance(sums.get(name), str):
            raise ChecksumError(f"{folder / CHECKSUMS} records no checksum of {name}; {_REDO}")
        verify(folder / name, sums[name], _REDO)
    return faiss.read_index(str(folder / "merged.index"), faiss.IO_FLAG_ONDISK_SAME_DIR)


def build_ondisk(
    factory: str,
    metric: str,
    blocks: Iterable[tuple[object, np.ndarray]] | Iterator[tuple[object, np.ndarray]],
    train: np.ndarray,
    folder: str | os.PathLike,
    shard_rows: int = SHARD_ROWS,
) -> OnDiskIVF:
    """Train on `train`, add every block, merge: the searchable on-disk index (see `OnDiskIVF`)."""
    index = OnDiskIVF(factory, metric, folder, shard_rows=shard_rows).fit(train)
    for _, block in blocks:
        index.add(block)
    return index.merge()



def build_experiment_index(cfg, data, factory: str, metric: str, folder: Path, xb: np.ndarray | None = None) -> OnDiskIVF:
    """The on-disk index of one experiment configuration: a uniform training sample of the database
    (``cfg.train_size``, default 100,000 rows), then the database block by block. `xb`: an
    in-memory (adapted) database instead of the stored one."""
    from fast_search.block import array_blocks
    from fast_search.data import database_blocks

    xb = data.database if xb is None else xb

    def blocks():
        if xb is not None:
            return array_blocks(xb, cfg.block_size or 65536)
        return database_blocks(cfg.sorted_sources()[0], cfg.method, cfg.features_root, cfg.block_size)

    n = len(data.database_ids)
    train = sample_rows(blocks(), n, min(n, cfg.train_size or 100_000))
    index = OnDiskIVF(factory, metric, folder, batch_size=cfg.batch_size).fit(train)
    del train
    for _, block in tqdm(blocks(), desc=f"adding to {factory} (on disk)", unit="block"):
        index.add(block)
    return index.merge()
