"""Evaluate a fine-tuning run at chosen epochs: retrieval of copies and cluster geometry, with figures.

    python evaluate_finetuning.py --name demo_r18 --epochs 0 4 \
        --database demo_original demo_distractors --queries demo_attacks demo_negatives

Features go to Features/<dataset>/<name>-epoch<e>.h5; the search experiments to
Results/<name>/search/epoch<e>/; the summary to Results/<name>/evaluation.{json,csv,png}.
Epoch 0 is the encoder before training (the baseline).
"""

from __future__ import annotations

import argparse
import logging
import sys

from helpers import cli
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

# Editable defaults (each is also a flag).
NAME = "finetune"
EPOCHS = None  # None: every checkpoint of the run
DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]
KS = [1, 5, 10]
BATCH_SIZE = 64
WORKERS = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", type=cli.name, default=NAME, help="run name given to finetune.py")
    p.add_argument("--epochs", type=cli.int_in(1), nargs="+", default=EPOCHS, help="epochs to evaluate (default: all)")
    p.add_argument("--database", nargs="+", default=DATABASE, help="database datasets")
    p.add_argument("--queries", nargs="+", default=QUERIES, help="query datasets")
    p.add_argument("--cluster-datasets", nargs="+", default=None,
                   help="datasets whose ground-truth groups get the geometry (default: queries + database)")  # fmt: skip
    p.add_argument("-k", "--ks", type=cli.int_in(1), nargs="+", default=KS, help="recall@k values")
    p.add_argument("--batch-size", type=cli.int_in(1), default=BATCH_SIZE, help="extraction batch size")
    p.add_argument("--workers", type=cli.workers, default=WORKERS, help="extraction worker processes")
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False,
                   help="extract again even if the features exist")  # fmt: skip
    p.add_argument("--checkpoints-root", type=cli.folder, default=str(CHECKPOINTS_DIR))
    p.add_argument("--features-root", type=cli.folder, default=str(FEATURES_DIR))
    p.add_argument("--datasets-root", type=cli.folder, default=str(DATASETS_DIR))
    p.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from finetuning.evaluation import evaluate_run  # after --help: torch loads here

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        rows = evaluate_run(
            args.name, args.database, args.queries, epochs=args.epochs, cluster_datasets=args.cluster_datasets,
            ks=args.ks, checkpoints_root=args.checkpoints_root, features_root=args.features_root,
            datasets_root=args.datasets_root, results_root=args.results_root, batch_size=args.batch_size,
            workers=args.workers, overwrite=args.overwrite,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"evaluate_finetuning.py: error: {err}", file=sys.stderr)
        return 2
    for row in rows:
        recalls = "  ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("recall@"))
        print(
            f"epoch {row['epoch']:>3}: {recalls}  micro-AP={row['micro_ap']:.4f}  "
            f"SNR diam/sep={row['median_snr_diameter_separation']:.3f}"
        )
    return 0


if __name__ == "__main__":
    cli.run(main)
