"""Figures and summary of an experiment: `python process.py NAME` -> PNG + PDF, summary.md/.csv.

    python process.py              # the most recent experiment under Results/
    python process.py demo-dhash   # one experiment (`make demo` writes demo-<method>)
    python process.py --list       # the experiments, most recent first
"""

from __future__ import annotations

import argparse
import sys

from helpers import cli
from helpers.paths import RESULTS_DIR

NAME = None  # None: the most recent experiment


def main(argv=None) -> int:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", type=cli.name, default=NAME,
                   help="experiment name under the results root (default: latest)")
    p.add_argument("--list", action="store_true", help="list the experiments, most recent first, and exit")
    p.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    from fast_search import format_table, process_experiment, summary_rows  # after --help: faiss loads here
    from fast_search.results import choose_experiment

    try:
        args.name = choose_experiment(args.name, args.results_root, args.list, "process.py")
        if args.name is None:
            return 0
        paths = process_experiment(args.name, args.results_root)
    except (ValueError, FileNotFoundError) as err:
        print(f"process.py: error: {err}", file=sys.stderr)
        return 2
    print(format_table(summary_rows(args.name, args.results_root)))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    cli.run(main)
