"""The command line of `python -m fast_search.duplicates`: find the duplicates of a folder, review, quarantine
(and undo), or score them against a ground-truth pairs file (``--ground-truth``, `fast_search.folder_eval`).

It sits above `fast_search.duplicates` and `fast_search.folder_eval` (which uses duplicates), so neither
imports the other's caller.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fast_search.duplicates import OUTPUT_DIR, _fmt, find_duplicates, folder_key
from fast_search.folder_eval import evaluate_folder
from fast_search.keep import KEEP_POLICIES
from fast_search.quarantine import QuarantineError, quarantine, undo
from helpers import cli
from helpers.paths import FEATURES_DIR, RESULTS_DIR


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m fast_search.duplicates",
        description="Find duplicate and near-duplicate images in a folder: pairs.csv, groups.csv, remove_list.txt "
                    "and index.html (a review page: mark keep/remove per group, export the final list).",
        epilog="examples:\n"
               "  python -m fast_search.duplicates my_photos\n"
               "  python -m fast_search.duplicates my_photos --method dhash --precision 0.99\n"
               "  python -m fast_search.duplicates my_photos --remove-list > to_delete.txt\n"
               "  python -m fast_search.duplicates my_photos --quarantine my_photos_duplicates\n"
               "  python -m fast_search.duplicates --undo my_photos_duplicates/undo.json\n"
               "  python -m fast_search.duplicates my_photos --ground-truth pairs.csv   # precision/recall/F1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", nargs="?", help="a folder of images (or a registered dataset name)")
    p.add_argument("--method", default="phash", help="extractor name (default phash; e.g. dhash, efficientnet_lite0)")
    p.add_argument("--max-distance", type=cli.float_in(0), default=None,
                   help="match threshold (Hamming bits or cosine distance; default: calibrated on photographs)")
    p.add_argument("--precision", type=cli.float_in(0, 1, lo_open=True), default=None,
                   help="pick the threshold that reached this pair precision on the calibration photographs")
    p.add_argument("--keep", default="resolution", choices=KEEP_POLICIES,
                   help="which file of a group to keep (default resolution: the original, see fast_search/keep.py)")
    p.add_argument("--invariant", action="store_true", help="also match flipped and 90-degree-rotated copies (hashes)")
    p.add_argument("--output", "--out", dest="output", type=lambda t: Path(cli.folder(t)), default=None,
                   help="output folder (default ./duplicates/<folder>-<hash of its path>-<method>)")
    p.add_argument("--index", default=None, help="faiss factory string: approximate search (default: exact)")
    p.add_argument("--recursive", action="store_true", help="include sub-folders")
    p.add_argument("--remove-list", action="store_true", help="print the files to remove (one kept per group) and exit")
    p.add_argument("--quarantine", type=cli.folder, default=None,
                   help="move the files to remove into this folder (never deletes), with an undo file")
    p.add_argument("--undo", type=cli.existing_file, default=None, help="put back the files of a quarantine's undo.json")
    p.add_argument("--workers", type=cli.workers, default=2, help="decoding processes")
    p.add_argument("--features-root", type=cli.folder, default=FEATURES_DIR)
    p.add_argument("--results-root", type=cli.folder, default=None,
                   help="parent of the default output folder (default ./duplicates; with --ground-truth: Results/)")
    p.add_argument("--ground-truth", type=cli.existing_file, default=None, metavar="CSV",
                   help="evaluate against true pairs (rows image,duplicate): pair precision/recall/F1 and "
                        "retrieval measures per image (fast_search.folder_eval)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.undo is None and not args.folder:
        p.error("the folder is required (or --undo UNDO_FILE)")
    if args.max_distance is not None and args.precision is not None:
        p.error("argument --precision: not allowed with --max-distance")
    try:
        if args.undo:
            restored = undo(args.undo)
            print(f"{len(restored)} files put back", file=sys.stderr)
            return 0
        if args.ground_truth is not None:
            return _evaluate(args)
        return _find(args)
    except (ValueError, TypeError, FileNotFoundError, QuarantineError) as err:
        print(f"duplicates: error: {err}", file=sys.stderr)
        return 2


def _find(args) -> int:
    """Find, save the review files, and optionally print the remove list or quarantine it."""
    dups = find_duplicates(args.folder, args.method, args.max_distance, precision=args.precision, keep=args.keep,
                           invariant=args.invariant, index=args.index, features_root=args.features_root,
                           recursive=args.recursive, workers=args.workers, progress=not args.remove_list)
    if args.remove_list:
        print("\n".join(dups.remove_list()))
        return 0
    out = args.output or Path(args.results_root or OUTPUT_DIR) / f"{folder_key(args.folder)}-{dups.method}"
    files = dups.save(out)
    print(f"{len(dups.pairs)} pairs in {len(dups.groups)} groups among {len(dups.paths)} images "
          f"({dups.method}, distance <= {_fmt(dups.max_distance)}, keep {dups.keep_policy}); "
          f"{len(dups.remove_list())} files to remove")
    for path in files.values():
        print(path)
    if args.quarantine:
        log = quarantine(dups.remove_list(), args.quarantine)
        print(f"moved {len(dups.remove_list())} files to {args.quarantine}; undo: "
              f"python -m fast_search.duplicates --undo {log}")
    return 0


def _evaluate(args) -> int:
    """--ground-truth: print the folder evaluation (fast_search.folder_eval) and where it was written."""
    rep = evaluate_folder(args.folder, args.method, args.ground_truth, args.max_distance,
                          features_root=args.features_root, results_root=args.results_root or RESULTS_DIR,
                          recursive=args.recursive, workers=args.workers)  # fmt: skip
    pairs = rep["pairs"]
    print(f"{rep['method']}, distance <= {_fmt(rep['max_distance'])}: {pairs['n_predicted']} pairs found, "
          f"{pairs['n_true']} true, {pairs['tp']} right: precision {pairs['precision']}, recall {pairs['recall']}, "
          f"F1 {pairs['f1']}")  # fmt: skip
    print("per image (self-matches excluded): " + ", ".join(f"{k} {v:.4f}" for k, v in rep["retrieval"].items()
                                                            if isinstance(v, float)))  # fmt: skip
    return 0
