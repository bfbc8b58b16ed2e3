"""Learn an adaptation of frozen features (seed 003) and write the adapted features as a new method.

    python train_adaptation.py -d demo_attacks --database demo_original --method resnet18_random \
        --model linear -e 150 -r 3 -t 0.07 --test-split 0.25 -k 1 3 5 --pca 128

Pairs are (query, its original) from the feature store. `-r` runs, each on its own split held
out by ORIGINAL, report top-k accuracy before/after adaptation; a final module trained on all
pairs then adapts every dataset of --write into Features/<dataset>/<method>+adapt.h5.
Note: `-t` is a temperature (logits divided by it); the seed's `-t 15` multiplied them (t = 1/15).
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from data_retrieval.datasets import SPECS
from finetuning.names import ADAPTATION_MODELS
from helpers import cli
from helpers.jsonio import save_json
from helpers.paths import FEATURES_DIR, RESULTS_DIR

# Editable defaults (each is also a flag).
QUERIES = "demo_attacks"
DATABASE = None  # None: the dataset the queries copy (demo_original for demo_attacks)
METHOD = "resnet18_random"
MODEL = "linear"
EPOCHS = 150
RUNS = 3
TEMPERATURE = 0.07
TEST_SPLIT = 0.25
TOPK = [1, 3, 5]
PCA = None
BATCH_SIZE = None  # None: full batch
LR = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--queries", default=QUERIES, help="query dataset (copies of the originals)")
    p.add_argument("--database", default=DATABASE, help="dataset holding the originals")
    p.add_argument("--method", default=METHOD, help="feature method in the store")
    p.add_argument("--model", default=MODEL, choices=ADAPTATION_MODELS, help="adaptation module")
    p.add_argument("--out-dim", type=cli.int_in(1), default=None, help="output size (default: input size; 1024 for original)")
    p.add_argument("-e", "--epochs", type=cli.int_in(1), default=EPOCHS)
    p.add_argument("-r", "--runs", type=cli.int_in(1), default=RUNS, help="held-out runs (one split each)")
    p.add_argument("-t", "--temperature", type=cli.float_in(0, lo_open=True), default=TEMPERATURE, help="InfoNCE temperature")
    p.add_argument("--test-split", type=cli.float_in(0, 1, lo_open=True), default=TEST_SPLIT, help="share of ORIGINALS held out per run")
    p.add_argument("-k", "--topk", type=cli.int_in(1), nargs="+", default=TOPK, help="top-k accuracies to report")
    p.add_argument("--same-families", action="store_true",
                   help="score the attack families trained on too (default: each run also holds out --test-split "
                        "of the attack families, so no family is both learnt and scored)")
    p.add_argument("--pca", type=cli.int_in(1), default=PCA, help="PCA size, fitted on the training split only")
    p.add_argument("-b", "--batch-size", type=cli.int_in(2), default=BATCH_SIZE, help="pairs per step (default: all)")
    p.add_argument("--lr", type=cli.float_in(0, lo_open=True), default=LR)
    p.add_argument("--device", type=cli.concrete_device, default="cpu")
    p.add_argument("--write", nargs="*", default=None,
                   help="datasets to write adapted features for (default: queries and database; none: nothing)")  # fmt: skip
    p.add_argument("--name", type=cli.name, default=None, help="results folder (default: adaptation_<method>)")
    p.add_argument("--features-root", type=cli.folder, default=str(FEATURES_DIR))
    p.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    return p.parse_args(argv)


def pair_families(query_ids) -> list[str]:
    """The attack family of each pair's query ("" when its name carries no catalogue attack)."""
    from data_retrieval.attacks import attack_family, query_attack

    return [attack_family(a) if (a := query_attack(str(q))) else "" for q in query_ids]


def _mean(results: list[dict], key: str) -> dict[str, float]:
    return {k: float(np.mean([r[key][k] for r in results])) for k in results[0][key]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"train_adaptation.py: error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Cross-validated runs, then the final module and the adapted features."""
    from finetuning.adapt_store import adapted_method, load_pairs, write_adapted  # torch loads here
    from finetuning.adaptation import AdaptationTrainer, cross_validate

    database = args.database or (SPECS[args.queries].targets if args.queries in SPECS else None)
    if database is None:
        raise ValueError(f"cannot tell which dataset {args.queries!r} copies: pass --database")
    pairs = load_pairs(args.queries, database, args.method, args.features_root)
    params = dict(
        model=args.model, out_dim=args.out_dim, pca=args.pca, temperature=args.temperature, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, device=args.device,
    )  # fmt: skip
    families = None if args.same_families else pair_families(pairs.query_ids)
    runs = cross_validate(
        pairs.queries, pairs.originals, pairs.groups, runs=args.runs, test_split=args.test_split, ks=args.topk,
        families=families, **params,
    )
    results = [vars(r) for r in runs]
    summary = {"baseline": _mean(results, "baseline"), "adapted": _mean(results, "adapted")}
    for r in results:
        print(f"run {r['run']}: baseline {r['baseline']}  adapted {r['adapted']}")
    print(f"mean over {len(results)} runs: baseline {summary['baseline']}  adapted {summary['adapted']}")
    name = args.name or adapted_method(f"adaptation_{args.method}", "")
    written = []
    targets = [args.queries, database] if args.write is None else args.write
    if targets:
        final = AdaptationTrainer(**params).fit(pairs.queries, pairs.originals, pairs.groups)
        for dataset in targets:
            written.append(str(write_adapted(final, dataset, args.method, args.features_root, params=params)))
            print(f"wrote {written[-1]}")
    out = {
        "params": {**params, "queries": args.queries, "database": database, "method": args.method,
                   "runs": args.runs, "test_split": args.test_split, "topk": args.topk,
                   "families_held_out": not args.same_families},
        "n_pairs": len(pairs.queries), "n_negative_queries": pairs.n_negative,
        "runs": results, "mean": summary, "written": written,
    }  # fmt: skip
    path = save_json(out, f"{args.results_root}/{name}/adaptation.json")
    print(f"results: {args.results_root}/{name}/adaptation.json" if path is None else path)
    return 0


if __name__ == "__main__":
    cli.run(main)
