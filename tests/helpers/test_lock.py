"""helpers.lock: one writer per file; a dead owner's lock is stale and taken over."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.lock import FileLock, LockError, lock_path
from helpers.paths import REPO_ROOT

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from helpers.lock import FileLock
lock = FileLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_second_holder_gets_an_error_naming_the_owner(tmp_path):
    target = tmp_path / "store.h5"
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(REPO_ROOT)), str(target)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=rf"pid {proc.pid} on"):
            FileLock(target).acquire()
    finally:
        proc.kill()
        proc.wait()
    # the owner was killed: its lock file is stale and is taken over
    assert lock_path(target).exists()
    with FileLock(target) as lock:
        assert lock.held and f"pid {__import__('os').getpid()}" in lock_path(target).read_text()
    assert not lock_path(target).exists()


def test_same_process_second_lock_is_refused_and_release_is_idempotent(tmp_path):
    first = FileLock(tmp_path / "x").acquire()
    with pytest.raises(LockError):
        FileLock(tmp_path / "x").acquire()
    first.release()
    first.release()
    FileLock(tmp_path / "x").acquire().release()


def test_forked_child_does_not_keep_the_lock_alive(tmp_path):
    """A DataLoader worker outliving a killed writer must not hold its lock."""
    import os
    import signal
    import time

    lock = FileLock(tmp_path / "x").acquire()
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:  # the child (its fork hooks have run) says so, then sleeps
        os.write(ready_w, b"1")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        os.close(lock._fd)  # the parent "dies": its descriptor goes away; only the child's copy could remain
        lock._fd = None
        FileLock(tmp_path / "x").acquire().release()  # free although the child still runs
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
