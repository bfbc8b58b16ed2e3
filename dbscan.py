"""DBSCAN (an eps sweep on one faiss neighbour graph) or HDBSCAN of stored features, scored.

    python dbscan.py --method simclr_v1_r50_2x --metric cosine --eps 0.18 0.2 0.22 --min-samples 5
    python dbscan.py --hdbscan --min-cluster-size 5

Noise (label -1) counts as singletons in the scores unless --noise says otherwise. Results go to
<results-root>/clustering/<datasets>/<partition>_<metric>_DBSCAN_<m>-samples_<method>/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from clustering.config import DBSCANConfig, add_common_args, from_args, source_and_output
from clustering.spaces import DEFAULT_EPS, METRICS, NOISE_MODES
from helpers import cli

# Editable defaults (each is also a flag). EPS None = the seed's sweep for the metric (DEFAULT_EPS).
METHOD = "dhash"  # the demo's data (`make demo`); the seed's: simclr_v1_r50_2x on Kaggle_memes Kaggle_templates
DATASETS = ["demo_original", "demo_attacks"]
METRIC = "hamming"
EPS = None
MIN_SAMPLES = 5
HDBSCAN = False
MIN_CLUSTER_SIZE = 5
GRAPH = "range"
N_NEIGHBORS = 50
NOISE = "singleton"
PARTITION = "full"
NEGATIVES = "singleton"
MEMORY_BUDGET_GB = 4.0
MAX_GRIDS = 10
SAVE = True


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, method=METHOD, datasets=DATASETS, partition=PARTITION, negatives=NEGATIVES,
                    max_grids=MAX_GRIDS, save=SAVE)  # fmt: skip
    p.add_argument("--metric", choices=METRICS, default=METRIC)
    p.add_argument("--eps", nargs="+", type=cli.float_in(0, lo_open=True), default=EPS, help=f"eps sweep (default per metric: {DEFAULT_EPS})")
    p.add_argument("--min-samples", type=cli.int_in(1), default=MIN_SAMPLES)
    p.add_argument("--hdbscan", action=argparse.BooleanOptionalAction, default=HDBSCAN, help="HDBSCAN instead of DBSCAN")
    p.add_argument("--min-cluster-size", type=cli.int_in(2), default=MIN_CLUSTER_SIZE, help="HDBSCAN only")
    p.add_argument("--graph", choices=["range", "knn"], default=GRAPH, help="range search within eps, or kNN")
    p.add_argument("--n-neighbors", type=cli.int_in(1), default=N_NEIGHBORS, help="k for --graph knn")
    p.add_argument("--noise", choices=NOISE_MODES, default=NOISE, help="how noise points count in the scores")
    p.add_argument("--memory-budget-gb", type=cli.float_in(0, lo_open=True), default=MEMORY_BUDGET_GB, help="cap on the range graph")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from clustering.experiment import dbscan_experiment  # after --help: faiss loads here

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    source, output = source_and_output(args)
    try:
        dbscan_experiment(source, from_args(DBSCANConfig, args), output)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{Path(__file__).name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run(main)
