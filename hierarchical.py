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

from clustering.spaces import LINKAGES, METRICS
from helpers import cli
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

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
    p.add_argument("--method", default=METHOD, help="feature method (store name), default %(default)s")
    p.add_argument("--datasets", nargs="+", default=DATASETS, help="datasets whose features are clustered together")
    p.add_argument("--metric", choices=METRICS, default=METRIC)
    p.add_argument("--linkage", choices=LINKAGES, default=LINKAGE)
    p.add_argument("--partition", choices=["full", "clean"], default=PARTITION, help="clean drops the noisy meme templates")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--clusters", nargs="+", type=cli.int_in(1), default=None, help=f"numbers of clusters (default {CLUSTERS})")
    cut.add_argument("--threshold", nargs="+", type=cli.float_in(0), default=THRESHOLD, help="cut at these distances instead")
    p.add_argument("--negatives", choices=["singleton", "exclude"], default=NEGATIVES,
                   help="distractors and negative queries: own group, or left out")  # fmt: skip
    p.add_argument("--memory-budget-gb", type=cli.float_in(0, lo_open=True), default=MEMORY_BUDGET_GB, help="dense path only below this")
    p.add_argument("--n-neighbors", type=cli.int_in(1), default=N_NEIGHBORS, help="k of the kNN graph of the sparse path")
    p.add_argument("--max-grids", type=cli.int_in(0), default=MAX_GRIDS, help="image grids for this many largest clusters")
    p.add_argument("--no-metrics", action="store_true", help="no ground truth needed: skip the scores")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=SAVE, help="write assignments and figures")
    p.add_argument("--run-name", type=cli.name, default=None)
    p.add_argument("--features-root", type=cli.folder, default=FEATURES_DIR)
    p.add_argument("--datasets-root", type=cli.folder, default=DATASETS_DIR)
    p.add_argument("--results-root", type=cli.folder, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.clusters is None and args.threshold is None:
        args.clusters = CLUSTERS
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from clustering.experiment import cluster_experiment  # after --help: faiss loads here

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cluster_experiment(
            args.method, args.datasets, linkage=args.linkage, metric=args.metric, n_clusters=args.clusters,
            distance_threshold=args.threshold, partition=args.partition, negatives=args.negatives,
            memory_budget_gb=args.memory_budget_gb, n_neighbors=args.n_neighbors, score=not args.no_metrics,
            save=args.save, max_grids=args.max_grids, run_name=args.run_name, features_root=args.features_root,
            datasets_root=args.datasets_root, results_root=args.results_root,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        print(f"{Path(__file__).name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run(main)
