"""Run the benchmarks: `python -m imsim.benchmarks [NAME ...]` (all `imsim/benchmarks/bench_*.py` by default).

Each module has a `main()` that prints its own timings and ratios against a baseline measured in
the same run. Nothing here asserts a speed; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    if not wanted:
        print(f"no benchmark matches {argv}; available: {', '.join(names)}")
        return 2
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"imsim.benchmarks.{name}").main()
        print(f"--- {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
