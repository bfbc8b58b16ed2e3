"""helpers.atomic: a file appears whole under its final name or not at all."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from helpers import atomic
from helpers.paths import REPO_ROOT


def test_write_then_replace_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic.write_json(path, {"a": 1})
    atomic.write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_error_inside_the_block_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_write(path) as f:
        f.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_npz_npy_and_paths_keep_their_suffix(tmp_path):
    atomic.save_npz(tmp_path / "x.npz", D=np.arange(3))
    atomic.save_npy(tmp_path / "y.npy", np.arange(4))
    with atomic.atomic_path(tmp_path / "z.npz") as tmp:
        assert tmp.suffix == ".npz" and tmp.name.startswith(atomic.TMP_PREFIX)
        np.savez(tmp, a=np.zeros(2))
    assert np.load(tmp_path / "x.npz")["D"].tolist() == [0, 1, 2] and np.load(tmp_path / "y.npy").sum() == 6
    assert np.load(tmp_path / "z.npz")["a"].shape == (2,)


def _writes_outside_helper(path: Path) -> list[str]:
    """Calls that write a file directly (write_text, np.savez, torch.save to a path, open(..., 'w'))."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("write_text", "write_bytes", "savez", "savez_compressed", "savefig") and isinstance(
            func, ast.Attribute
        ) and getattr(func.value, "id", "") not in ("atomic",):
            bad.append(f"{path.name}:{node.lineno} {name}")
        if name == "open" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            if str(node.args[1].value).startswith(("w", "a")):
                bad.append(f"{path.name}:{node.lineno} open(.., {node.args[1].value!r})")
    return bad


def test_every_library_file_write_goes_through_the_helper():
    folders = ["extractor", "fast_search", "clustering", "finetuning", "helpers", "data_retrieval", "imsim/scaleout", "SimCLRv1",
               "SimCLRv2"]
    allowed = {"atomic.py", "download.py"}  # the helper itself; downloads append to a .part file they verify
    bad = []
    for folder in folders:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if path.name not in allowed:
                bad += _writes_outside_helper(path)
    assert not bad, f"direct file writes (use helpers.atomic): {bad}"
