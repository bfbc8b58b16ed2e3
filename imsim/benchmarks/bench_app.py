"""Load on the search app: 50 concurrent searches against the running app on loopback.

The app serves the demo collection (BENCH_APP_METHOD, default efficientnet_lite0, else dhash; the
demo set and features are made if missing, as `make app` does) on 127.0.0.1; BENCH_APP_N clients
(default 50) each upload one attacked demo image through the app's API at the same moment
(gradio_client, one job each). Prints p50/p95/max latency, the error count (0 expected) and how many
top-1 results are the query's original.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from helpers.paths import DATASETS_DIR, FEATURES_DIR


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    import search_app
    from data_retrieval.datasets import load_dataset
    from extractor import store_files
    from imsim.app import Collection
    from imsim.app.ui import build_app

    n = int(os.environ.get("BENCH_APP_N", 50))
    method = os.environ.get("BENCH_APP_METHOD", "efficientnet_lite0")
    database = ["demo_original", "demo_distractors"]
    try:
        for d in database:
            store_files(d, method, FEATURES_DIR)
    except ValueError:
        method = "dhash"
    args = search_app.parse_args(["--method", method, "--demo"])
    search_app.prepare_demo(args)
    collection = Collection(method, database, features_root=FEATURES_DIR, datasets_root=DATASETS_DIR)
    queries = load_dataset("demo_attacks", root=DATASETS_DIR)
    picks = np.linspace(0, len(queries.paths) - 1, n).astype(int)
    demo = build_app(collection, temp_dir=tempfile.mkdtemp(prefix="bench_app_"))
    port = _port()
    concurrency = int(os.environ.get("BENCH_APP_CONCURRENCY", 4))
    demo.queue(default_concurrency_limit=concurrency, max_size=None).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
    )
    print(f"{collection.describe()}; {n} concurrent searches, app concurrency limit {concurrency}")
    from gradio_client import Client, handle_file

    client = Client(f"http://127.0.0.1:{port}", verbose=False)

    def one(i: int):
        path = queries.paths[picks[i]]
        start = time.perf_counter()
        try:
            _, table, _ = client.predict(handle_file(str(path)), 5, 0.0, api_name="/search")
        except Exception as err:  # counted: the benchmark reports errors, it does not stop on them
            return time.perf_counter() - start, f"{type(err).__name__}: {err}", False
        original = "demo_original/" + path.stem.split("_")[0]
        first = table.split("\n")[2] if table.count("\n") >= 2 else ""
        return time.perf_counter() - start, None, original in first

    try:
        one(0)  # warm-up (model, index and client caches)
        wall = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(one, range(n)))
        wall = time.perf_counter() - wall
    finally:
        demo.close()
    lat = np.array([r[0] for r in results]) * 1000
    errors = [r[1] for r in results if r[1]]
    print(f"latency ms: p50 {np.percentile(lat, 50):.0f}, p95 {np.percentile(lat, 95):.0f}, max {lat.max():.0f}; "
          f"{n / wall:.1f} searches/s over {wall:.1f} s; errors {len(errors)}; "
          f"top-1 is the original for {sum(r[2] for r in results)}/{n}")
    for err in errors[:5]:
        print("  error:", err)


if __name__ == "__main__":
    main()
