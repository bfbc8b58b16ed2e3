"""Run a search experiment: `python search_experiment.py NAME [flags]` -> Results/NAME/results.json.

Edit the defaults below or pass flags; every value ends up in results.json under ``params``.
An existing experiment is never overwritten unless --overwrite is given. A dataset is a store name
(``Features/<name>/<method>.h5``), a registered dataset, or any folder (``--database ../my_originals``:
its store is named after the folder); ``--extract`` first extracts the stores that are missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from helpers import cli
from helpers.paths import FEATURES_DIR, RESULTS_DIR

METHOD = "dhash"
DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]
INDEXES = ["BFlat"]  # faiss factory strings: Flat, IVF1024,Flat, HNSW32, ... (binary: BFlat, BIVF64, BHNSW32)
METRICS = ["hamming"]  # float features: L2, cosine, IP, L1; hashes: hamming
KS = [1, 5, 10]
NPROBES = [1, 4, 16, 64]
EFSEARCHES = [16, 64, 256]
THREADS = None  # None: all cores
BLOCK_SIZE = None  # stream the database in blocks of this many rows (bounded memory); None: load it whole
TARGETS = []  # ["my_copies=my_originals"]: a query folder and the dataset it copies (names follow the rule)
GROUND_TRUTH = None  # CSV of query_id,positive_id[,category] rows (several rows: several positives)
MEMORY_BUDGET = "4GB"  # --indexes auto: the chosen index must fit this
MAX_QUERY_MS = 10.0  # --indexes auto: nprobe / efSearch tuned to this many ms per query
ONDISK = False  # IVF indexes built as shards merged on disk and searched memory-mapped (larger than RAM)


def _budget(text: str) -> str:
    """A memory size such as 4GB (checked here, parsed by fast_search.autoindex)."""
    from fast_search.autoindex import parse_bytes  # numpy only: --help stays fast

    try:
        parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _improvement_arguments(g) -> None:
    """The flags of the search-time improvements (alpha-QE, DBA, score normalisation, adaptation)."""
    g.add_argument("--query-expansion", type=cli.int_in(0), default=0, metavar="N", help="alpha-QE over N neighbours")
    g.add_argument("--qe-alpha", type=cli.float_in(0), default=3.0, help="alpha of alpha-QE and DBA (default 3)")
    g.add_argument(
        "--dba", type=cli.int_in(0), default=0, metavar="N", help="database-side augmentation over N neighbours"
    )
    g.add_argument(
        "--background",
        nargs="+",
        default=[],
        help="datasets for SSCD score normalisation (score - beta x "
        "mean similarity to the query's n nearest background images)",
    )
    g.add_argument("--snorm-beta", type=cli.float_in(), default=1.0, help="beta of score normalisation (SSCD: 1)")
    g.add_argument("--snorm-n", type=cli.int_in(1), default=3, help="background neighbours averaged (SSCD: 3)")
    g.add_argument(
        "--adaptation", type=cli.existing_file, default=None, metavar="FILE", help="linear adaptation .npy (W) or .npz (weight, bias)"
    )


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", type=cli.name, help="experiment name (a folder under the results root; no '/')")
    g = p.add_argument_group("data")
    g.add_argument("--method", default=METHOD, help="feature method (store file name)")
    g.add_argument(
        "--database", nargs="+", default=DATABASE, help="database datasets (originals + distractors)"
    )
    g.add_argument("--queries", nargs="+", default=QUERIES, help="query datasets")
    g.add_argument(
        "--targets",
        nargs="+",
        default=TARGETS,
        metavar="COPIES=ORIGINALS",
        help="say which database dataset a query dataset copies, e.g. my_copies=my_originals "
        "(a query's original is the image whose name starts its own, before a '_')",
    )
    g.add_argument(
        "--ground-truth",
        type=cli.existing_file,
        default=GROUND_TRUTH,
        metavar="CSV",
        help="ground truth for names that follow no rule: rows query_id,positive_id[,category]",
    )
    g.add_argument("--features-root", type=cli.folder, default=str(FEATURES_DIR))
    g.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    g = p.add_argument_group("search")
    g.add_argument(
        "--indexes", nargs="+", default=INDEXES, help="faiss factory strings, e.g. Flat 'IVF64,Flat' HNSW32, or auto "
        "(chosen for --memory-budget, tuned to --max-query-ms)"
    )
    g.add_argument(
        "--metrics", nargs="+", default=METRICS, help="L2 cosine IP L1 (float) or hamming (binary)"
    )
    g.add_argument("--k", type=cli.int_list(1), default=KS, dest="ks", help="comma-separated k values, e.g. 1,5,10")
    g.add_argument(
        "--nprobe", type=cli.int_list(1), default=NPROBES, dest="nprobes", help="IVF nprobe sweep, e.g. 1,4,16"
    )
    g.add_argument(
        "--efsearch", type=cli.int_list(1), default=EFSEARCHES, dest="efsearches", help="HNSW efSearch sweep"
    )
    g.add_argument("--threads", type=cli.threads, default=THREADS, help="faiss OpenMP threads (default: all cores)")
    g.add_argument(
        "--block-size", type=cli.int_in(1), default=BLOCK_SIZE, help="stream the database in blocks of N rows"
    )
    g.add_argument("--memory-budget", type=_budget, default=MEMORY_BUDGET,
                   help="--indexes auto: memory of the index (4GB, 500MB, 2GiB)")
    g.add_argument(
        "--max-query-ms", type=cli.float_in(0, lo_open=True), default=MAX_QUERY_MS, help="--indexes auto: latency budget per query (ms)"
    )
    g.add_argument(
        "--ondisk", action="store_true", default=ONDISK,
        help="IVF indexes: add block by block to shard indexes, merge on disk, search memory-mapped",
    )
    _improvement_arguments(p.add_argument_group("search-time improvements (each reported as its own rows)"))
    p.add_argument("--extract", action="store_true",
                   help="extract --method's features of every dataset whose store is missing (folders or "
                        "registered datasets; complete stores are kept)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing Results/NAME")
    p.add_argument(
        "--resume", action="store_true", help="finish an interrupted Results/NAME (same parameters)"
    )
    return _exclusive(p, p.parse_args(argv))


def _exclusive(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """--resume and --overwrite exclude each other: one line, exit 2."""
    if args.resume and args.overwrite:
        p.error("argument --resume: not allowed with --overwrite (finish the interrupted run, or replace it)")
    return args


def store_name(entry: str) -> str:
    """The store name of a dataset argument: a folder path is named after its last component."""
    if "/" in entry or os.sep in entry:
        return Path(entry).expanduser().resolve().name
    return entry


def _where(entry: str) -> str:
    """What a dataset argument designates: an existing folder's absolute path, else the name itself."""
    path = Path(entry).expanduser()
    return str(path.resolve()) if path.is_dir() else entry


def resolve_datasets(args: argparse.Namespace) -> dict[str, str]:
    """Map every dataset argument to its store name in `args` (in place); returns {store name: source}.

    A path (``../my_originals``) must be an existing folder; two folders with the same name are refused.
    """
    sources: dict[str, str] = {}
    for flag in ("database", "queries", "background"):
        names = []
        for entry in getattr(args, flag):
            name = store_name(entry)
            if name != entry and not Path(entry).expanduser().is_dir():
                raise argparse.ArgumentTypeError(f"argument --{flag}: {entry!r} is not a folder")
            if name in sources and _where(sources[name]) != _where(entry):
                raise argparse.ArgumentTypeError(f"argument --{flag}: {entry!r} and {sources[name]!r} would share "
                                                 f"the store name {name!r}; rename one folder")
            sources.setdefault(name, entry)
            names.append(name)
        setattr(args, flag, names)
    targets = []
    for pair in args.targets:
        copies, sep, originals = pair.partition("=")
        targets.append(f"{store_name(copies)}{sep}{store_name(originals)}" if sep else pair)
    args.targets = targets
    from fast_search.groundtruth import parse_targets  # numpy only: checked before faiss loads
    from fast_search.improve import load_adaptation

    try:
        parse_targets(targets)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"argument {err}") from None
    if args.adaptation is not None:
        try:
            load_adaptation(args.adaptation)
        except (ValueError, OSError) as err:
            raise argparse.ArgumentTypeError(f"argument --adaptation: {' '.join(str(err).split())}") from None
    return sources


def extract_missing(args: argparse.Namespace, sources: dict[str, str]) -> None:
    """--extract: the stores of --method that do not exist yet, from their folders or registered datasets."""
    from extractor import create_extractor, extract_dataset, store_files
    from extractor.store import StoreError

    missing = []
    for name, source in sources.items():
        try:
            store_files(name, args.method, args.features_root)
        except StoreError:
            missing.append((name, source))
    if not missing:
        return
    ext = create_extractor(args.method)
    if ext.name != args.method:
        raise ValueError(f"--extract: --method {args.method!r} builds stores named {ext.name!r}; extract them with "
                         "extract_features.py (imsim extract) and pass that name")
    for name, source in missing:
        extract_dataset(ext, source, features_root=args.features_root, name=name)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        sources = resolve_datasets(args)
    except argparse.ArgumentTypeError as err:
        print(f"{cli.prog()}: error: {err} (see --help)", file=sys.stderr)
        return 2
    from extractor.store import StoreError
    from fast_search import format_table, run_experiment, summary_rows  # after --help: faiss loads here

    if args.extract:
        extract_missing(args, sources)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_experiment(
            args.name,
            args.method,
            args.database,
            args.queries,
            overwrite=args.overwrite,
            resume=args.resume,
            indexes=args.indexes,
            metrics=args.metrics,
            ks=args.ks,
            nprobes=args.nprobes,
            efsearches=args.efsearches,
            threads=args.threads,
            block_size=args.block_size,
            ondisk=args.ondisk,
            memory_budget=args.memory_budget,
            max_query_ms=args.max_query_ms,
            features_root=str(args.features_root),
            results_root=str(args.results_root),
            targets=args.targets,
            ground_truth=None if args.ground_truth is None else str(args.ground_truth),
            query_expansion=args.query_expansion,
            qe_alpha=args.qe_alpha,
            dba=args.dba,
            background=args.background,
            snorm_beta=args.snorm_beta,
            snorm_n=args.snorm_n,
            adaptation=None if args.adaptation is None else str(args.adaptation),
        )
    except (
        ValueError,
        TypeError,
        FileExistsError,
        FileNotFoundError,
    ) as err:  # bad input: say it, no traceback
        hint = " (or add --extract to extract it here)" if isinstance(err, StoreError) and "no features" in str(err) \
            else ""
        print(f"{cli.prog()}: error: {' '.join(str(err).split())}{hint}", file=sys.stderr)
        return 2
    if result["data"]["n_positive"] == 0:
        print(
            "\n!! NO GROUND TRUTH: no query has an original in the database, so there is no recall to show.\n"
            "!! Say which dataset each query set copies (--targets COPIES=ORIGINALS) or give\n"
            "!! --ground-truth FILE (rows query_id,positive_id). Neighbours were still saved.\n",
            file=sys.stderr,
        )
    else:
        print(format_table(summary_rows(result)))
    for err in result["errors"]:
        print(f"skipped {err['index']} {err['metric']}: {err['error']}")
    print(f"results: {args.results_root}/{args.name}/results.json")
    return 0


if __name__ == "__main__":
    cli.run(main)
