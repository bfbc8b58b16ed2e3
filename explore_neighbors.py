"""Neighbour galleries of an experiment: `python explore_neighbors.py NAME` -> Results/NAME/neighbors/index.html.

One image per failing query and per query of a random sample of the successes: the query, its true original and its k nearest
neighbours with distances, framed green (the original) or red, sorted into correct/ and incorrect/.

    python explore_neighbors.py                 # the most recent experiment under Results/
    python explore_neighbors.py demo-dhash --k 5
    python explore_neighbors.py --list          # the experiments, most recent first
"""

from __future__ import annotations

import argparse
import sys

from helpers import cli
from helpers.paths import DATASETS_DIR, RESULTS_DIR

NAME = None  # None: the most recent experiment
RUN = None  # a run key of results.json, e.g. "Flat--cosine"; None: the first exact run
K = 10
SAMPLE = 100  # successes drawn at random (every failure is drawn); 0: every query
SEED = 0


def _verifier():
    from fast_search.verify import KeypointVerifier

    return KeypointVerifier()


def main(argv=None) -> int:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", type=cli.name, default=NAME,
                   help="experiment name under the results root (default: latest)")
    p.add_argument("--list", action="store_true", help="list the experiments, most recent first, and exit")
    p.add_argument("--run", default=RUN, help="run key, e.g. 'IVF64,Flat--cosine--nprobe=16'")
    p.add_argument("--k", type=cli.int_in(1), default=K, help="neighbours shown per query")
    p.add_argument("--sample", type=cli.int_in(0), default=SAMPLE, help="random successes to draw (0: all); every failure is always drawn")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument(
        "--threshold",
        type=cli.float_in(0),
        default=None,
        help="decision threshold: a negative query under it is a false match, a right top-1 above it a miss "
             "(default: the 1%% FPR threshold)",
    )
    p.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    p.add_argument("--datasets-root", type=cli.folder, default=str(DATASETS_DIR))
    p.add_argument("--verify", action="store_true",
                   help="match each neighbour's keypoints (ORB + RANSAC) and draw the matched regions")
    args = p.parse_args(argv)
    from fast_search import explore_neighbors  # after --help: faiss loads here
    from fast_search.results import choose_experiment

    try:
        name = choose_experiment(args.name, args.results_root, args.list, "explore_neighbors.py")
        if name is None:
            return 0
        page = explore_neighbors(
            name,
            run=args.run,
            k=args.k,
            sample=args.sample or None,
            seed=args.seed,
            threshold=args.threshold,
            results_root=args.results_root,
            datasets_root=args.datasets_root,
            verifier=_verifier() if args.verify else None,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"explore_neighbors.py: error: {err}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    cli.run(main)
