"""Where a benchmark run's numbers go: its printed table (.txt) and its raw numbers (.json), side by side.

Every run writes ``Results/benchmarks/<name>/<UTC time>-<commit>.{txt,json}``; the JSON holds the
numbers the benchmark's `main()` returned, the commit (and whether the tree was modified), the
machine (CPU model, cores, load), the package versions and the ``BENCH_*`` settings, so a later run
can be compared row by row with `load_runs`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers import atomic
from helpers.jsonio import load_json, save_json
from helpers.paths import REPO_ROOT, RESULTS_DIR

#: packages whose version changes the numbers
PACKAGES = ("numpy", "faiss-cpu", "torch", "torchvision", "timm", "scikit-learn", "Pillow", "simplejpeg", "h5py")


def commit() -> dict[str, Any]:
    """The checked-out commit and whether tracked files differ from it (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "short": sha[:7] if sha else None, "modified": bool(status) if status is not None else None}


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers depend on: CPU model, cores, load (a shared machine inflates times), platform."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_1min": round(load[0], 2) if load else None,
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def header(name: str) -> str:
    """The line printed above a benchmark's table: which commit and machine produced it."""
    c, m = commit(), machine()
    dirty = " (modified)" if c["modified"] else ""
    return (f"{name}: commit {c['short']}{dirty}, {m['cpu']}, {m['cores']} cores, load {m['load_1min']}, "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")


def save_run(name: str, results: Any, text: str, root: str | os.PathLike = RESULTS_DIR) -> Path:
    """Write the printed table and the raw numbers of one run; returns the JSON path."""
    c = commit()
    now = dt.datetime.now(dt.timezone.utc)
    stem = f"{now:%Y%m%dT%H%M%SZ}-{c['short'] or 'nogit'}"
    folder = Path(root) / "benchmarks" / name
    atomic.write_text(folder / f"{stem}.txt", text)
    path = folder / f"{stem}.json"
    save_json({
        "schema": "imsim.benchmarks.run/1", "benchmark": name, "created": now.isoformat(timespec="seconds"),
        "commit": c, "machine": machine(), "versions": versions(),
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")},
        "results": results,
    }, path)
    return path


def load_runs(name: str, root: str | os.PathLike = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every recorded run of benchmark `name`, oldest first."""
    return [load_json(p) for p in sorted((Path(root) / "benchmarks" / name).glob("*.json"))]
