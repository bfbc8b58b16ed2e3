"""Agglomerative clustering of stored features, scored against ground-truth groups.

    python hierarchical.py --method simclr_v1_r50_2x --datasets Kaggle_memes Kaggle_templates \
        --metric euclidean --linkage ward --partition clean --clusters 400 300 200 100

The tree is built once (dense when it fits --memory-budget-gb, else on a faiss kNN graph) and
cut at every --clusters value (or --threshold); results go to
<results-root>/clustering/<datasets>/<partition>_<metric>_<linkage>_<method>/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from clustering.config import AgglomerativeConfig, add_common_args, from_args, source_and_output
from clustering.spaces import LINKAGES, METRICS
from helpers import cli

# Editable defaults (each is also a flag).
METHOD = "dhash"  # the demo's data (`make demo`); the seed's: simclr_v1_r50_2x on Kaggle_memes Kaggle_templates
DATASETS = ["demo_original", "demo_attacks"]
METRIC = "hamming"
LINKAGE = "average"
PARTITION = "full"
CLUSTERS = [40, 30, 23, 15]
THRESHOLD = None
NEGATIVES = "singleton"
MEMORY_BUDGET_GB = 4.0
N_NEIGHBORS = 15
MAX_GRIDS = 10
SAVE = True


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, method=METHOD, datasets=DATASETS, partition=PARTITION, negatives=NEGATIVES,
                    max_grids=MAX_GRIDS, save=SAVE)  # fmt: skip
    p.add_argument("--metric", choices=METRICS, default=METRIC)
    p.add_argument("--linkage", choices=LINKAGES, default=LINKAGE)
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--clusters", nargs="+", type=cli.int_in(1), default=None, help=f"numbers of clusters (default {CLUSTERS})")
    cut.add_argument("--threshold", nargs="+", type=cli.float_in(0), default=THRESHOLD, help="cut at these distances instead")
    p.add_argument("--memory-budget-gb", type=cli.float_in(0, lo_open=True), default=MEMORY_BUDGET_GB, help="dense path only below this")
    p.add_argument("--n-neighbors", type=cli.int_in(1), default=N_NEIGHBORS, help="k of the kNN graph of the sparse path")
    args = p.parse_args(argv)
    if args.clusters is None and args.threshold is None:
        args.clusters = CLUSTERS
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from clustering.experiment import cluster_experiment  # after --help: faiss loads here

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    source, output = source_and_output(args)
    config = from_args(AgglomerativeConfig, args, n_clusters=args.clusters, distance_threshold=args.threshold)
    try:
        cluster_experiment(source, config, output)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{Path(__file__).name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run(main)
