"""Figures and summary of an experiment: `python process.py NAME` -> PNG + PDF, summary.md/.csv."""

from __future__ import annotations

import argparse
import sys

from helpers.paths import RESULTS_DIR

NAME = "demo"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("name", nargs="?", default=NAME, help="experiment name under the results root")
    p.add_argument("--results-root", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    from fast_search import format_table, process_experiment, summary_rows  # after --help: faiss loads here

    try:
        paths = process_experiment(args.name, args.results_root)
    except (ValueError, FileNotFoundError) as err:
        print(f"process.py: error: {err}", file=sys.stderr)
        return 2
    print(format_table(summary_rows(args.name, args.results_root)))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
