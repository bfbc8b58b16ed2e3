"""The one way the library writes a file: temporary file, fsync, rename (`atomic_write`).

A reader never sees half a file under the final name, whatever kills the writer and whenever:
the bytes go to a hidden temporary file beside the target (same file system, so the rename is
atomic), are flushed to disk, then renamed over the target, and the folder entry is synced.
Writers that want a path rather than a file object (``np.savez``, ``torch.save``, ``savefig``)
use `atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Temporary files start with this, so cleaners and listings can recognise (and ignore) them.
TMP_PREFIX = ".tmp-"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or unlink in `folder` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status``; else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_for(path: Path) -> Path:
    """A new empty file beside `path`, with the mode a plain ``open(path, "w")`` would give it
    (0666 less the umask: mkstemp's 0600 would hide results from the group whatever the umask)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=path.suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def _named(err: OSError, path: Path) -> OSError:
    """`err` with `path` in its message when it names no file (a full disk: "No space left on device")."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or str(err), str(path))


def publish(tmp: str | os.PathLike, path: str | os.PathLike, durable: bool = True) -> Path:
    """fsync `tmp`, rename it to `path` and sync the folder: the last step of every atomic write.

    `durable=False` skips the two fsyncs: still atomic for readers and against a killed process,
    but not against a power cut (for many small files that are cheap to regenerate, e.g. images).
    """
    if durable:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(Path(path).parent)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed.

        with atomic_path(folder / "exact_L2.npz") as tmp:
            np.savez(tmp, D=D, I=I)   # np.savez appends .npz to names without it: tmp keeps the suffix
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = _temp_for(path)
    except OSError as e:
        raise _named(e, path) from e
    try:
        yield tmp
        publish(tmp, path, durable)
    except OSError as e:  # a full disk, a lost mount: the message names the file being written
        tmp.unlink(missing_ok=True)
        named = _named(e, path)
        if named is e:
            raise
        raise named from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", durable: bool = True, **open_kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` that publishes the file only if the block ends without an error.

    `mode` is "w" (text, UTF-8 unless `encoding` is given) or "wb"; ``newline=""`` etc. pass through.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path, durable) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        f.flush()


def write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Atomically replace `path` with `data` (`durable=False` skips the fsync: scratch and generated data)."""
    with atomic_write(path, "wb", durable=durable) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically replace `path` with `text`."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Atomically replace `path` with `obj` as JSON (``json.dumps`` keyword arguments pass through)."""
    return write_text(path, json.dumps(obj, **dumps_kwargs) + "\n")


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Atomically write an uncompressed ``.npz`` (the caches and runs of search experiments)."""
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Atomically write a matplotlib figure (format from the suffix of `path`)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or None, **savefig_kwargs)
    return Path(path)


def save_image(img: Any, path: str | os.PathLike, durable: bool = False, **save_kwargs: Any) -> Path:
    """Atomically write a PIL image (format from the suffix unless ``format=`` is given).

    Not fsynced by default: images are many, small and regenerated by a rerun (see `publish`).
    """
    path = Path(path)
    save_kwargs.setdefault("format", _image_format(path))
    with atomic_path(path, durable) as tmp:
        img.save(tmp, **save_kwargs)
    return path


def _image_format(path: Path) -> str | None:
    from PIL import Image

    Image.init()
    return Image.EXTENSION.get(path.suffix.lower())


def save_npy(path: str | os.PathLike, array: Any) -> Path:
    """Atomically write one array as ``.npy``."""
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.save(f, array)
    return Path(path)


def move_folder(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rename the folder `src` to `dst` (same file system, `dst` absent) and sync the parent: one step
    of a folder swap (an experiment rebuilt with --overwrite replaces the old one only when whole)."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    return Path(dst)
