"""The documentation: the site builds with warnings as errors, README links resolve, every Python snippet runs.

Snippets run as is on a small demo set (`make demo`'s for users), from README.md and every page of docs/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# A block that needs files the demo lacks (weights, ILIAS, a cluster), or that only sketches signatures, says so
# on the line above it: `<!-- docs-test: skip (why) -->`.
SKIP = "<!-- docs-test: skip"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block not preceded by a `docs-test: skip` comment."""
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        before = text[: m.start()].rstrip().splitlines()
        if before and before[-1].startswith(SKIP):
            continue
        blocks.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


def _page_blocks() -> list[tuple[str, int, str]]:
    """(page relative to the repository, line, code) of every runnable snippet of every page."""
    return [(page.relative_to(ROOT).as_posix(), line, code)
            for page in PAGES for line, code in python_blocks(page.read_text(encoding="utf-8"))]


BLOCKS = _page_blocks()


def test_python_blocks_respects_skip_marker():
    text = "```python\na = 1\n```\n\n<!-- docs-test: skip (weights) -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(1, "a = 1\n")]


def test_blocks_found():
    """The pages that carried tested snippets still do (a renamed marker or page would silently drop them)."""
    pages = {page for page, _, _ in BLOCKS}
    assert {"README.md", "docs/python-api.md", "docs/datasets.md", "docs/extractor.md",
            "docs/fast_search.md"} <= pages
    assert len(BLOCKS) >= 6


def test_readme_links_resolve():
    """Every relative link of the README names a file of the repository (GitHub renders the README, not MkDocs)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t and not t.startswith("#")]
    assert targets
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= 10 * 1024


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    """`mkdocs build --strict`: a broken link, anchor, nav entry or API reference fails the build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "extractor" / "index.html").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("page, line, code", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS])
def test_snippet_runs(small_demo_root, page, line, code):
    env = {**os.environ, "IMSIM_DATA_ROOT": str(small_demo_root), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=small_demo_root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{page} line {line} failed:\n{proc.stderr[-3000:]}"
