"""The command line of `python -m fast_search.duplicates`: find the duplicates of a folder, or score them
against a ground-truth pairs file (``--ground-truth``, `fast_search.folder_eval`).

It sits above `fast_search.duplicates` and `fast_search.folder_eval` (which uses duplicates), so neither
imports the other's caller.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fast_search.duplicates import DEFAULT_MAX_DISTANCE, _fmt, find_duplicates
from fast_search.folder_eval import evaluate_folder
from helpers import cli
from helpers.paths import FEATURES_DIR, RESULTS_DIR


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(
        prog="python -m fast_search.duplicates",
        description="Find duplicate and near-duplicate images in a folder: pairs.csv, groups.csv, index.html.",
        epilog="examples:\n"
               "  python -m fast_search.duplicates my_photos\n"
               "  python -m fast_search.duplicates my_photos --method dhash --max-distance 6\n"
               "  python -m fast_search.duplicates my_photos --remove-list > to_delete.txt\n"
               "  python -m fast_search.duplicates my_photos --ground-truth pairs.csv   # precision/recall/F1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="a folder of images (or a registered dataset name)")
    p.add_argument("--method", default="phash", help="extractor name (default phash; e.g. dhash, efficientnet_lite0)")
    p.add_argument("--max-distance", type=cli.float_in(0), default=None,
                   help="match threshold (default per method: " +
                   ", ".join(f"{k} {_fmt(v)}" for k, v in DEFAULT_MAX_DISTANCE.items()) + ")")
    p.add_argument("--out", type=lambda t: Path(cli.folder(t)), default=None, help="output folder (default Results/duplicates/<folder>-<method>)")
    p.add_argument("--index", default=None, help="faiss factory string (default: Flat up to 200,000 images, else IVF)")
    p.add_argument("--recursive", action="store_true", help="include sub-folders")
    p.add_argument("--remove-list", action="store_true", help="print the files to delete (one kept per group) and exit")
    p.add_argument("--workers", type=cli.workers, default=2, help="decoding processes")
    p.add_argument("--features-root", type=cli.folder, default=FEATURES_DIR)
    p.add_argument("--results-root", type=cli.folder, default=RESULTS_DIR)
    p.add_argument("--ground-truth", type=cli.existing_file, default=None, metavar="CSV",
                   help="evaluate against true pairs (rows image,duplicate): pair precision/recall/F1 and "
                        "retrieval measures per image (fast_search.folder_eval)")
    args = p.parse_args(argv)
    if args.ground_truth is not None:
        return _evaluate(args)
    try:
        dups = find_duplicates(args.folder, args.method, args.max_distance, index=args.index,
                               features_root=args.features_root, recursive=args.recursive, workers=args.workers,
                               progress=not args.remove_list)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"duplicates: error: {err}", file=sys.stderr)
        return 2
    if args.remove_list:
        print("\n".join(dups.remove_list()))
        return 0
    out = args.out or Path(args.results_root) / "duplicates" / f"{Path(args.folder).name}-{dups.method}"
    files = dups.save(out)
    print(f"{len(dups.pairs)} pairs in {len(dups.groups)} groups among {len(dups.paths)} images "
          f"({dups.method}, distance <= {_fmt(dups.max_distance)}); {len(dups.remove_list())} files to remove")
    for path in files.values():
        print(path)
    return 0


def _evaluate(args) -> int:
    """--ground-truth: print the folder evaluation (fast_search.folder_eval) and where it was written."""
    try:
        rep = evaluate_folder(args.folder, args.method, args.ground_truth, args.max_distance,
                              features_root=args.features_root, results_root=args.results_root,
                              recursive=args.recursive, workers=args.workers)  # fmt: skip
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"duplicates: error: {err}", file=sys.stderr)
        return 2
    pairs = rep["pairs"]
    print(f"{rep['method']}, distance <= {_fmt(rep['max_distance'])}: {pairs['n_predicted']} pairs found, "
          f"{pairs['n_true']} true, {pairs['tp']} right: precision {pairs['precision']}, recall {pairs['recall']}, "
          f"F1 {pairs['f1']}")  # fmt: skip
    print("per image (self-matches excluded): " + ", ".join(f"{k} {v:.4f}" for k, v in rep["retrieval"].items()
                                                            if isinstance(v, float)))  # fmt: skip
    return 0


