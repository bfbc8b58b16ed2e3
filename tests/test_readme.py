"""Every Python snippet of the README runs as is on the demo set (a small one here, `make demo`'s for users)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = "<!-- readme-test: skip"  # a README block that needs files the demo lacks (weights, ILIAS) says so


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block not preceded by a `readme-test: skip` comment."""
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        before = text[: m.start()].rstrip().splitlines()
        if before and before[-1].startswith(SKIP):
            continue
        blocks.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


BLOCKS = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_blocks_found():
    assert len(BLOCKS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_snippet_runs(small_demo_root, line, code):
    env = {**os.environ, "IMSIM_DATA_ROOT": str(small_demo_root), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=small_demo_root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"README.md line {line} failed:\n{proc.stderr[-3000:]}"
