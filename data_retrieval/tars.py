"""Webdataset-style tar shards as an image dataset, indexed with the standard `tarfile` module.

A tar holds samples: consecutive members sharing a key (the member path up to the first dot of
its file name: ``1234.jpg``, ``1234.json``), one member per extension, as webdataset writes them.
An image's id is ``<tar basename>/<key>`` (``00042.tar/1234``), exactly as ILIAS names its
distractors. Each tar's headers are read once; members are then read by offset, so an extraction
can start at any image and resumes exactly where a killed run stopped.

Bad input is skipped with a reason, never fatal: a damaged or truncated tar (the members before
the damage are kept), a member cut short, a sample without a ``jpg`` member, a key seen twice in
one tar (the first is kept), a member that is not a regular file or has no extension. A
selection (`--selected-ids`) keeps only listed ids; a listed line matches a full id or a bare key
(ILIAS's mini-ILIAS list holds keys), and listed ids found in no tar are counted and returned.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_retrieval.datasets import DatasetError, ImageList
from helpers.images import BadImageError

#: Member extensions taken as the image of a sample, in order of preference (ILIAS: jpg only).
IMAGE_KEYS = ("jpg",)
#: webdataset's split of a member name into (key, extension): the extension starts at the first
#: dot of the file name.
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


class TarMembers(Sequence):
    """The image member of each sample, as numpy arrays: cheap to copy into DataLoader workers.

    ``members[i]`` is ``"<tar path>/<member name>"`` (for messages), ``members[a:b]`` a view, and
    ``members.read(i)`` the member's bytes (one ``os.pread``; each process opens each tar once).
    """

    def __init__(
        self, tars: Sequence[str], tar_index: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, names: np.ndarray
    ) -> None:
        self.tars = tuple(str(t) for t in tars)
        self.tar_index = np.asarray(tar_index, dtype=np.int32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.names = np.asarray(names, dtype=object).astype(np.bytes_) if len(names) else np.array([], "S1")
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return TarMembers(self.tars, self.tar_index[i], self.offsets[i], self.sizes[i], self.names[i])
        return f"{self.tars[self.tar_index[i]]}/{self.names[i].decode('utf-8', 'surrogateescape')}"

    def read(self, i: int) -> bytes:
        """The bytes of member `i`; `BadImageError` if the tar ends before the member does."""
        t = int(self.tar_index[i])
        fd = self._fds.get(t)
        if fd is None:  # decoding threads may race here: one descriptor wins, the other is closed
            new = os.open(self.tars[t], os.O_RDONLY)
            fd = self._fds.setdefault(t, new)
            if fd != new:
                os.close(new)
        size = int(self.sizes[i])
        data = os.pread(fd, size, int(self.offsets[i]))
        if len(data) != size:
            raise BadImageError(f"{self[i]}: truncated member ({len(data)} of {size} bytes)")
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}  # each worker process opens its own descriptors

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


@dataclass
class TarImageList(ImageList):
    """An `ImageList` whose `paths` are tar members; `unknown_ids`: selected ids found in no tar."""

    tars: list[Path] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)


def list_tars(folder: str | os.PathLike, start: int = 0, total: int | None = None) -> list[Path]:
    """The ``*.tar`` files of `folder` sorted by name, then ``[start : start + total]`` (ILIAS's order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"tar folder {folder} {'is a file, not a folder' if folder.exists() else 'does not exist'}")
    if start < 0 or (total is not None and total < 1):
        raise ValueError(f"start_tar must be >= 0 and total_tars >= 1, got {start} and {total}")
    tars = sorted(p for p in folder.glob("*.tar") if p.is_file())
    if not tars:
        raise DatasetError(f"no .tar files in {folder}")
    if start >= len(tars):
        raise DatasetError(f"start_tar={start} but {folder} holds only {len(tars)} tars")
    return tars[start : None if total is None else start + total]


def read_selected_ids(path: str | os.PathLike) -> list[str]:
    """Ids listed in a text file, one a line (first comma-separated field, as ILIAS reads it).

    Blank lines and lines starting with ``#`` are ignored; order is kept, repeats dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"selected ids file {path} does not exist")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split(",")[0].strip()
        if line and not line.startswith("#"):
            ids.append(line)
    if not ids:
        raise ValueError(f"selected ids file {path} lists no ids")
    return list(dict.fromkeys(ids))


def _nonzero_block(path: Path, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        return any(f.read(tarfile.BLOCKSIZE))


def _members(path: Path, skipped: list[tuple[str, str]]) -> Iterator[tuple[str, str, tarfile.TarInfo]]:
    """(key, extension, member) of each regular member, logging what cannot be used."""
    disk_size = path.stat().st_size
    try:
        tf = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as e:
        skipped.append((str(path), f"cannot read as an uncompressed tar ({type(e).__name__}: {e})"))
        return
    with tf:
        n = 0
        while True:
            try:
                member = tf.next()
            except (tarfile.TarError, EOFError, OSError) as e:
                skipped.append((str(path), f"tar damaged after {n} members ({type(e).__name__}: {e}); rest skipped"))
                return
            if member is None:  # tarfile also stops silently at a bad header: tell that from the real end
                if tf.offset < disk_size and _nonzero_block(path, tf.offset):
                    skipped.append((str(path), f"tar damaged after {n} members (invalid header at byte "
                                                f"{tf.offset}); rest skipped"))
                return
            tf.members.clear()  # tarfile keeps every header otherwise: memory would grow with the tar
            n += 1
            where = f"{path}/{member.name}"
            if member.isdir():
                continue
            if not member.isfile():
                skipped.append((where, "not a regular file"))
                continue
            if member.offset_data + member.size > disk_size:
                have = max(0, disk_size - member.offset_data)
                skipped.append((where, f"truncated member ({have} of {member.size} bytes in the tar)"))
                continue
            m = _KEY_RE.match(member.name)
            if not m:
                skipped.append((where, "no extension in the member name (not a key.ext webdataset member)"))
                continue
            yield m[1], m[2].lower(), member


def _index_tar(
    path: Path,
    image_keys: Sequence[str],
    selected: Collection[str] | None,
    found: set[str],
    skipped: list[tuple[str, str]],
    bar: tqdm,
) -> Iterator[tuple[str, int, int, str]]:
    """(id, offset, size, member name) of the image of each usable sample of one tar."""
    base = path.name
    seen: set[str] = set()
    key, sample = None, {}

    def flush() -> Iterator[tuple[str, int, int, str]]:
        image_id, where = f"{base}/{key}", f"{path}/{key}"
        if selected is not None:
            hits = {image_id, key} & selected
            if not hits:
                return
            found.update(hits)
        if key in seen:
            skipped.append((where, f"duplicate key {key!r} in {base} (the first sample is kept)"))
            return
        seen.add(key)
        ext = next((e for e in image_keys if e in sample), None)
        if ext is None:
            skipped.append((where, f"no {'/'.join(image_keys)} member (has: {', '.join(sorted(sample))})"))
            return
        member = sample[ext]
        yield image_id, member.offset_data, member.size, member.name

    for k, ext, member in _members(path, skipped):
        bar.update(1)
        if k != key:
            if key is not None:
                yield from flush()
            key, sample = k, {}
        if ext in sample:
            skipped.append((f"{path}/{member.name}", f"duplicate member {ext!r} for key {k!r} (the first is kept)"))
            continue
        sample[ext] = member
    if key is not None:
        yield from flush()


def load_tars(
    tars: Sequence[str | os.PathLike],
    name: str,
    folder: str | os.PathLike | None = None,
    selected_ids: Sequence[str] | None = None,
    image_keys: Sequence[str] = IMAGE_KEYS,
    progress: bool = True,
) -> TarImageList:
    """Index `tars` (in the given order) into a `TarImageList` named `name`."""
    tars = [Path(t) for t in tars]
    if not tars:
        raise DatasetError(f"dataset {name!r}: no tars given")
    selected = None if selected_ids is None else set(selected_ids)
    found: set[str] = set()
    skipped: list[tuple[str, str]] = []
    ids, tar_index, offsets, sizes, names = [], [], [], [], []
    with tqdm(desc=f"indexing {len(tars)} tars", unit="member", disable=not progress, miniters=1000) as bar:
        for t, path in enumerate(tars):
            if not path.is_file():
                raise DatasetError(f"tar {path} does not exist")
            for image_id, offset, size, member in _index_tar(path, image_keys, selected, found, skipped, bar):
                ids.append(image_id)
                tar_index.append(t)
                offsets.append(offset)
                sizes.append(size)
                names.append(member.encode("utf-8", "surrogateescape"))
    members = TarMembers([str(p.resolve()) for p in tars], tar_index, offsets, sizes, names)
    unknown = [] if selected_ids is None else [i for i in selected_ids if i not in found]
    folder = Path(folder) if folder is not None else tars[0].parent
    return TarImageList(name=name, folder=folder, paths=members, ids=ids, skipped=skipped, tars=tars,
                        unknown_ids=unknown)


def load_tar_dataset(
    folder: str | os.PathLike,
    start_tar: int = 0,
    total_tars: int | None = None,
    selected_ids: str | os.PathLike | Sequence[str] | None = None,
    name: str | None = None,
    progress: bool = True,
) -> TarImageList:
    """The tars of `folder` (sorted, ``[start_tar : start_tar + total_tars]``) as one dataset.

    `selected_ids` is a file of ids or a list of ids. The default name is the folder's, with
    ``_tars<start>-<stop>`` when only some tars are taken, so two batches never share a store.
    """
    folder = Path(folder)
    tars = list_tars(folder, start_tar, total_tars)
    if name is None:
        name = folder.resolve().name
        n_all = len(list_tars(folder))
        if start_tar or len(tars) < n_all:
            name += f"_tars{start_tar}-{start_tar + len(tars)}"
    if isinstance(selected_ids, (str, os.PathLike)):
        selected_ids = read_selected_ids(selected_ids)
    return load_tars(tars, name, folder, selected_ids, progress=progress)
