"""An exclusive, per-file writer lock: ``<target>.lock`` holding the owner's pid and host.

The lock is an ``fcntl.flock`` on the lock file, so the kernel releases it when its owner dies:
a lock file left behind by a killed process is stale by construction and is taken over (with a
note naming the dead owner). A second writer gets `LockError` naming the holder's pid, host and
start time. Lock files are removed on release; a holder re-checks after locking that the file it
holds is still the one on disk, so removing and re-creating can never give two owners.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import logging
import os
import socket
import weakref
from pathlib import Path

log = logging.getLogger(__name__)

#: Locks held by this process. A forked child (a DataLoader worker) closes its copies of their file
#: descriptors, so the lock dies with the process that took it, not with its last worker.
_HELD: weakref.WeakSet = weakref.WeakSet()


def _close_in_child() -> None:
    for lock in list(_HELD):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None


os.register_at_fork(after_in_child=_close_in_child)


class LockError(RuntimeError):
    """Another live process holds the lock."""


def lock_path(target: str | os.PathLike) -> Path:
    """``<target>.lock`` beside the file it protects."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


def _read_owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        return ""


class FileLock:
    """Hold ``<target>.lock`` exclusively: ``with FileLock(path): ...`` or `acquire`/`release`."""

    def __init__(self, target: str | os.PathLike, what: str = "writer") -> None:
        self.target = Path(target)
        self.path = lock_path(target)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FileLock:
        """Take the lock or raise `LockError` naming the live holder; never blocks."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd) or "unknown process"
                os.close(fd)
                raise LockError(
                    f"{self.target} is being written by another {self.what} ({owner}; lock {self.path}); "
                    "wait for it to finish, or stop it first"
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:  # the holder before us may have removed the file between our open and our lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            stale = _read_owner(fd)
            if stale:
                log.warning("%s: taking over a stale lock (%s, no longer running)", self.path, stale)
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
            os.fsync(fd)
            self._fd = fd
            self._pid = os.getpid()
            _HELD.add(self)
            return self

    def release(self) -> None:
        """Remove the lock file and unlock (safe to call twice; a forked child never releases)."""
        if self._fd is None or self._pid != os.getpid():
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            _HELD.discard(self)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass
