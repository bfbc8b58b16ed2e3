"""The root scripts carry their editable defaults at the top (the design card), equal to the commands' own
in the repository, and a script runs with what its top says."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["extract_features", "search_experiment", "process", "search_app", "demo"]


def _defaults(path: Path) -> dict[str, str]:
    """UPPER_CASE name -> source of its value, for the module-level assignments before the first def."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ends = [n.lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))] or [10**9]
    out = {}
    for n in tree.body:
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.lineno < min(ends):
            target = n.targets[0] if isinstance(n, ast.Assign) else n.target
            if isinstance(target, ast.Name) and target.id.isupper():
                out[target.id] = ast.unparse(n.value)
    return out


@pytest.mark.parametrize("name", SCRIPTS)
def test_root_script_shows_the_commands_editable_defaults(name):
    script = _defaults(REPO / f"{name}.py")
    assert script, f"{name}.py has no editable defaults at its top"
    assert script == _defaults(REPO / "imsim" / "commands" / f"{name}.py")


def test_an_edited_default_at_the_top_of_a_script_is_used(tmp_path):
    source = (REPO / "process.py").read_text(encoding="utf-8")
    assert "\nNAME = None" in source
    edited = tmp_path / "process.py"
    edited.write_text(source.replace("\nNAME = None", "\nNAME = 'no-such-experiment'"), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(edited), "--results-root", str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "no-such-experiment" in proc.stderr
