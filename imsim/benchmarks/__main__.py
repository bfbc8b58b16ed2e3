"""Run the benchmarks: `python -m imsim.benchmarks [NAME ...]` (all `imsim/benchmarks/bench_*.py` by default).

Each module has a `main()` that prints its own timings and ratios against a baseline measured in
the same run and returns its raw numbers; each run's printed table (headed by its commit and
machine) and those numbers (JSON) are written side by side under ``Results/benchmarks/<name>/``
(`imsim.benchmarks.record`). Nothing here asserts a speed; the tables go to docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import sys
import time
from pathlib import Path

from imsim.benchmarks import record


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    if not wanted:
        print(f"no benchmark matches {argv}; available: {', '.join(names)}")
        return 2
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        with _Tee() as printed:
            print(record.header(name), flush=True)  # the table names its commit and machine
            results = importlib.import_module(f"imsim.benchmarks.{name}").main()
        path = record.save_run(name, results, printed.getvalue())
        print(f"--- {name}: {time.perf_counter() - start:.1f} s; raw numbers: {path}", flush=True)
    return 0


class _Tee(contextlib.AbstractContextManager):
    """Copy what is printed while the block runs (it is still printed)."""

    def __enter__(self) -> io.StringIO:
        self.buffer, self.stdout = io.StringIO(), sys.stdout
        outer, buffer = self.stdout, self.buffer

        class Both(io.TextIOBase):
            def write(self, text: str) -> int:
                buffer.write(text)
                return outer.write(text)

            def flush(self) -> None:
                outer.flush()

        sys.stdout = Both()
        return self.buffer

    def __exit__(self, *exc) -> None:
        sys.stdout = self.stdout


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
