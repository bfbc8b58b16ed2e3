"""Figures and summary of an experiment: `python process.py NAME` -> PNG + PDF, summary.md/.csv.

    python process.py              # the most recent experiment under Results/
    python process.py demo-dhash   # one experiment (`make demo` writes demo-<method>)
    python process.py --list       # the experiments, most recent first
    python process.py --heatmap demo-dhash demo-phash --out attacks.png   # methods x attack families
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
    p.add_argument("--heatmap", nargs="+", type=cli.name, metavar="NAME",
                   help="draw one heat map of these experiments' methods x attack families and exit")
    p.add_argument("--measure", default="recall_at_fpr_1pct", choices=["recall_at_1", "recall_at_10", "recall_at_fpr_1pct"],
                   help="the heat map's measure (default: recall at the run's 1 %% FPR threshold)")
    p.add_argument("--out", default=None, help="heat map file (.png or .pdf; default: RESULTS_ROOT/attack_heatmap.png)")
    args = p.parse_args(argv)
    if args.heatmap:
        return _heatmap(args)
    from fast_search import format_table, process_experiment, summary_rows  # after --help: faiss loads here
    from fast_search.results import choose_experiment

    try:
        args.name = choose_experiment(args.name, args.results_root, args.list, cli.prog())
        if args.name is None:
            return 0
        paths = process_experiment(args.name, args.results_root)
    except (ValueError, FileNotFoundError) as err:
        print(f"{cli.prog()}: error: {err}", file=sys.stderr)
        return 2
    print(format_table(summary_rows(args.name, args.results_root)))
    for path in paths:
        print(path)
    return 0


def _heatmap(args) -> int:
    from fast_search.report import plot_attack_heatmap

    out = args.out or f"{args.results_root}/attack_heatmap.png"
    try:
        print(plot_attack_heatmap(args.heatmap, out, args.results_root, args.measure))
    except (ValueError, FileNotFoundError) as err:
        print(f"{cli.prog()}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run(main)
