"""helpers.atomic: a file appears whole under its final name or not at all."""

from __future__ import annotations

import ast
import errno
import os
import stat
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


def _atomic_targets(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as tmp``: a faiss/torch writer may write to those."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                func = getattr(call, "func", None)
                name = getattr(func, "attr", None) or getattr(func, "id", "")
                if name == "atomic_path" and isinstance(item.optional_vars, ast.Name):
                    names.add(item.optional_vars.id)
    return names


def _is_atomic_target(arg: ast.AST, targets: set[str]) -> bool:
    """`tmp` or `str(tmp)` where tmp came from atomic_path."""
    if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "str" and arg.args:
        arg = arg.args[0]
    return isinstance(arg, ast.Name) and arg.id in targets


def _writes_outside_helper(path: Path) -> list[str]:
    """Calls that write a file directly (write_text, np.savez, open(..., 'w'), faiss.write_index to a final
    path) or publish one by hand (os.replace / os.rename: a hand-made atomic write that skips the fsync)."""
    bad = []
    tree = ast.parse(path.read_text())
    targets = _atomic_targets(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name in ("write_text", "write_bytes", "savez", "savez_compressed", "savefig") and isinstance(
            func, ast.Attribute
        ) and owner not in ("atomic",):
            bad.append(f"{path.name}:{node.lineno} {name}")
        if name == "open" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            if str(node.args[1].value).startswith(("w", "a")) and not _is_atomic_target(node.args[0], targets):
                bad.append(f"{path.name}:{node.lineno} open(.., {node.args[1].value!r})")
        if name in ("write_index", "write_index_binary", "write_VectorTransform") and not (
            len(node.args) >= 2 and _is_atomic_target(node.args[1], targets)
        ):
            bad.append(f"{path.name}:{node.lineno} {name} (write to `with atomic_path(...) as tmp`)")
        if name in ("replace", "rename") and owner == "os":
            bad.append(f"{path.name}:{node.lineno} os.{name} (use helpers.atomic.publish: it fsyncs)")
    return bad


def test_the_check_catches_direct_writes(tmp_path):
    """The scanner below flags each kind of direct write it is meant to catch, and accepts the helper."""
    src = tmp_path / "m.py"
    src.write_text(
        "import os, faiss\n"
        "from helpers.atomic import atomic_path\n"
        "faiss.write_index(index, str(path))\n"
        "os.replace(tmp, path)\n"
        "p.write_text('x')\n"
        "open(p, 'w')\n"
        "with atomic_path(path) as tmp:\n"
        "    faiss.write_index(index, str(tmp))\n"
        "    tarfile.open(tmp, 'w')\n"
    )
    assert [b.split()[0] for b in _writes_outside_helper(src)] == ["m.py:3", "m.py:4", "m.py:5", "m.py:6"]


#: every package, and the root scripts
LIBRARY = ["extractor", "fast_search", "clustering", "finetuning", "helpers", "data_retrieval", "imsim", "SimCLRv1",
           "SimCLRv2"]


def test_every_library_file_write_goes_through_the_helper():
    allowed = {"atomic.py", "download.py"}  # the helper itself; downloads append to a .part file they verify
    paths = [p for folder in LIBRARY for p in sorted((REPO_ROOT / folder).rglob("*.py"))]
    paths += sorted(REPO_ROOT.glob("*.py"))
    bad = []
    for path in paths:
        if path.name not in allowed:
            bad += _writes_outside_helper(path)
    assert not bad, f"direct file writes (use helpers.atomic): {bad}"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert atomic.current_umask() == umask
        paths = [atomic.write_json(tmp_path / "results.json", {"a": 1}), atomic.save_npz(tmp_path / "r.npz", D=np.zeros(2)),
                 atomic.write_text(tmp_path / "errors.tsv", "path\treason\n")]
        with atomic.atomic_path(tmp_path / "page.html") as tmp:
            tmp.write_text("<html></html>")
        paths.append(tmp_path / "page.html")
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(OSError, match="results.json") as info, atomic.atomic_write(path) as f:
        f.write("x")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and "No space left" in str(info.value)
    assert list(tmp_path.iterdir()) == []
