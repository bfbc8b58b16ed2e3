"""For kill-and-resume tests: a process that SIGKILLs itself right after writing its n-th store chunk.

A test's child script calls ``kill_after_chunks(n)`` before extracting; the parent checks that a
rerun resumes the ``.partial`` store to the same file as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal

from extractor import pipeline
from extractor.store import FeatureWriter


def kill_after_chunks(n: int) -> None:
    """SIGKILL this process right after `FeatureWriter.append` has written its n-th chunk (0: never).

    Every batch is appended on its own here (the pipeline groups small batches otherwise), so that
    the kill lands mid-run.
    """
    if not n:
        return
    pipeline.WRITE_ROWS = 1
    append = FeatureWriter.append
    written = 0

    def killing_append(self, *args, **kwargs):
        nonlocal written
        append(self, *args, **kwargs)
        written += 1
        if written >= n:
            os.kill(os.getpid(), signal.SIGKILL)

    FeatureWriter.append = killing_append
