"""No function of the library or its scripts is longer than 80 lines (split it into named steps)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["extractor", "fast_search", "clustering", "finetuning", "data_retrieval", "helpers", "imsim", "SimCLRv1",
            "SimCLRv2"]
MAX_LINES = 80


def long_functions(path: Path, limit: int = MAX_LINES) -> list[str]:
    """`file:line name (n lines)` of every function or method of `path` longer than `limit` lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_long_functions_are_found(tmp_path):
    src = tmp_path / "probe.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    src.write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert [f.split()[1] for f in long_functions(src)] == ["long"]


def test_no_function_over_80_lines():
    paths = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))] + sorted(ROOT.glob("*.py"))
    found = [f for p in paths for f in long_functions(p)]
    assert not found, f"functions over {MAX_LINES} lines: {found}"
