"""Checksums of the files the library writes and reads back: one sha256 per file, checked on every read.

A saved artefact (an app index, on-disk IVF files, a results ``.npz``) records the sha256 of its bytes
in the JSON that describes it; a reader recomputes it (`verify`) and names the file when it differs,
so a flipped byte can only give an error or a rebuild, never a different number.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any


class ChecksumError(ValueError):
    """A file whose bytes are not the ones that were written (damaged, truncated or replaced)."""


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | os.PathLike, sha256: str | None, redo: str = "") -> None:
    """Raise `ChecksumError` naming `path` (and how to redo it) unless its sha256 is `sha256`.

    `sha256` None (a file written before checksums were recorded) is accepted as is.
    """
    if sha256 is None:
        return
    try:
        have = file_sha256(path)
    except OSError as e:
        raise ChecksumError(f"{path}: cannot be read ({e.strerror or e}){'; ' + redo if redo else ''}") from None
    if have != sha256:
        raise ChecksumError(f"{path} is damaged (its sha256 differs from the one recorded when it was written)"
                            + (f"; {redo}" if redo else ""))


def load_npz(path: str | os.PathLike, sha256: str | None = None, redo: str = "") -> dict[str, Any]:
    """Every array of an ``.npz`` (no pickle), checked against `sha256` when given; any damage is a
    `ChecksumError` naming the file, never a zipfile traceback."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ChecksumError(f"{path} is missing" + (f"; {redo}" if redo else ""))
    verify(path, sha256, redo)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ChecksumError(f"{path} is damaged or not an .npz file ({first})" + (f"; {redo}" if redo else "")) from None
