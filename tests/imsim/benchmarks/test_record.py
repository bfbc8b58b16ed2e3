"""Every benchmark run leaves its printed table and its raw numbers (JSON, with commit and machine) side by side."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from imsim.benchmarks import record

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "imsim" / "benchmarks"


def test_every_benchmark_main_returns_its_numbers():
    """`main()` of each bench_*.py is annotated to return its numbers, a dict or a list of rows (the runner records
    what it returns beside the printed table)."""
    for path in sorted(BENCH.glob("bench_*.py")):
        mains = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        assert mains, f"{path.name} has no main()"
        returns = ast.unparse(mains[0].returns) if mains[0].returns else ""
        assert returns.startswith(("dict", "list")), \
            f"{path.name}: main() -> {returns or 'nothing'}; return the raw numbers (imsim/benchmarks/record.py)"


def test_save_run_writes_table_and_numbers_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_X_N", "7")
    path = record.save_run("bench_x", {"rows": [{"s": 0.5}]}, "a table\n", root=tmp_path)
    data = json.loads(path.read_text())
    assert path.with_suffix(".txt").read_text() == "a table\n"
    assert data["results"] == {"rows": [{"s": 0.5}]} and data["settings"]["BENCH_X_N"] == "7"
    assert data["machine"]["cores"] == os.cpu_count() and data["machine"]["cpu"]
    assert data["commit"]["sha"] and len(data["commit"]["short"]) == 7
    assert [r["results"] for r in record.load_runs("bench_x", root=tmp_path)] == [data["results"]]
    assert data["commit"]["short"] in record.header("bench_x")


def test_make_bench_records_a_run(tmp_path):
    """`python -m imsim.benchmarks duplicates` on a tiny size: the table is printed and recorded with its numbers."""
    env = {**os.environ, "IMSIM_DATA_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT), "BENCH_DUP_N": "3000",
           "BENCH_DUP_GROUPS": "20"}
    proc = subprocess.run([sys.executable, "-m", "imsim.benchmarks", "duplicates"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (json_path,) = (tmp_path / "Results" / "benchmarks" / "bench_duplicates").glob("*.json")
    data = json.loads(json_path.read_text())
    assert data["results"]["n"] == 3000 and data["results"]["planted_found"] == 1.0
    printed = json_path.with_suffix(".txt").read_text()
    assert printed.startswith("bench_duplicates: commit ") and "search_pairs on 3,000" in printed
    assert "search_pairs on 3,000" in proc.stdout
