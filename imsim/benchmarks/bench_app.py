"""The search app over HTTP against the same search in process, one query at a time and 50 at once.

The app serves the demo collection (BENCH_APP_METHOD, default efficientnet_lite0, else dhash; the
demo set and features are made if missing, as `make app` does) on 127.0.0.1, as `search_app.py`
serves it: the JSON endpoint (`POST /api/search`) and the page's own API (gradio_client, what the
browser does) in one ASGI app. Rows, all in this run on the same attacked demo images:
- in process: `Collection.search` (embedding + index), the floor any HTTP path pays on top of;
- sequential: BENCH_APP_SEQ queries one after another (p50/p95 and the ratio to in process);
- concurrent: BENCH_APP_N clients at the same moment (p50/p95/max, errors, searches/s, and the
  embedding batches the batcher formed).
Every row also counts how many top-1 results are the query's original.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from helpers.paths import DATASETS_DIR, FEATURES_DIR


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _row(name: str, lat_s: list[float], hits: int, wall: float | None = None, base_ms: float | None = None,
         errors: int = 0) -> dict:
    ms = np.array(lat_s) * 1000
    row = {"row": name, "n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
           "max_ms": float(ms.max()), "errors": errors, "top1_original": hits}
    text = (f"{name:<34} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms"
            f"  errors {errors}  top-1 original {hits}/{len(ms)}")
    if base_ms:
        row["p50_vs_in_process"] = row["p50_ms"] / base_ms
        text += f"  ({row['p50_vs_in_process']:.2f}x in process)"
    if wall:
        row["searches_per_s"] = len(ms) / wall
        text += f"  {row['searches_per_s']:.1f}/s"
    print(text)
    return row


def _timed(fn: Callable[[int], str | None], picks: list[int], originals: list[str], concurrent: bool):
    """(latencies, top-1 hits, errors, wall) of fn over picks, one at a time or all at once."""

    def one(i: int):
        start = time.perf_counter()
        try:
            top = fn(i)
        except Exception as err:  # counted: the benchmark reports errors, it does not stop on them
            return time.perf_counter() - start, False, f"{type(err).__name__}: {err}"
        return time.perf_counter() - start, top is not None and top == originals[i], None

    wall = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(len(picks)) as pool:
            out = list(pool.map(one, picks))
    else:
        out = [one(i) for i in picks]
    wall = time.perf_counter() - wall
    errors = [o[2] for o in out if o[2]]
    for err in errors[:3]:
        print("  error:", err)
    return [o[0] for o in out], sum(o[1] for o in out), len(errors), wall


def main() -> list[dict]:
    import httpx
    import uvicorn
    from gradio_client import Client, handle_file

    import search_app
    from data_retrieval.datasets import load_dataset
    from extractor import store_files
    from imsim.app import Collection
    from imsim.app.api import asgi_app
    from imsim.app.ui import build_app

    n = int(os.environ.get("BENCH_APP_N", 50))
    n_seq = int(os.environ.get("BENCH_APP_SEQ", 30))
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
    paths = [queries.paths[i] for i in np.linspace(0, len(queries.paths) - 1, max(n, n_seq)).astype(int)]
    originals = ["demo_original/" + p.stem.split("_")[0] for p in paths]
    bodies = [p.read_bytes() for p in paths]

    demo = build_app(collection, temp_dir=tempfile.mkdtemp(prefix="bench_app_"))
    demo.queue(default_concurrency_limit=search_app.CONCURRENCY)
    app = asgi_app(demo, collection, allowed_paths=[str(p) for p in collection.image_folders()])
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(timeout=120)
    gradio = Client(url, verbose=False)

    def in_process(i: int) -> str:
        return collection.search(paths[i], 5)[0].id

    def json_api(i: int) -> str:
        return http.post(f"{url}/api/search", params={"k": 5}, content=bodies[i]).json()["results"][0]["id"]

    def page_api(i: int) -> str | None:
        _, table, _ = gradio.predict(handle_file(str(paths[i])), 5, 0.0, api_name="/search")
        first = table.split("\n")[2] if table.count("\n") >= 2 else ""
        return next((o for o in originals if o in first), first)

    print(f"{collection.describe()}; {os.cpu_count()} cores; concurrency limit {search_app.CONCURRENCY}")
    rows = []
    try:
        for fn in (in_process, json_api, page_api):  # warm-up: model, index, clients
            fn(0)
        seq = list(range(n_seq))
        lat, hits, errors, _ = _timed(in_process, seq, originals, concurrent=False)
        base = float(np.percentile(np.array(lat) * 1000, 50))
        rows.append(_row("in process, one at a time", lat, hits, errors=errors))
        for name, fn in (("JSON /api/search, one at a time", json_api), ("page API, one at a time", page_api)):
            lat, hits, errors, _ = _timed(fn, seq, originals, concurrent=False)
            rows.append(_row(name, lat, hits, base_ms=base, errors=errors))
        for name, fn in ((f"JSON /api/search, {n} at once", json_api), (f"page API, {n} at once", page_api)):
            before = len(collection.batcher.batch_sizes)
            lat, hits, errors, wall = _timed(fn, list(range(n)), originals, concurrent=True)
            rows.append(_row(name, lat, hits, wall=wall, errors=errors))
            batches = collection.batcher.batch_sizes[before:]
            rows[-1]["embedding_batches"] = batches
            print(f"{'':<34} {len(batches)} embedding batches, largest {max(batches, default=0)}")
    finally:
        server.should_exit = True
        collection.batcher.close()
    return rows


if __name__ == "__main__":
    main()
