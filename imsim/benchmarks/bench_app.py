"""The search app over HTTP against the same search in process, one query at a time and 50 at once.

The app serves the demo collection (BENCH_APP_METHOD, default efficientnet_lite0, else dhash; the
demo set and features are made if missing, as `make app` does) on 127.0.0.1, as `search_app.py`
serves it: the JSON endpoint (`POST /api/search`) and the page's own gradio API in one ASGI app.
The page row makes the browser's three requests (upload the file, queue the `search` event, read its
result stream) with plain HTTP; gradio_client's own overhead (it downloads every result image) is not
the app's. Rows, all in this run on the same attacked demo images:
- in process: `Collection.search` (embedding + index), the floor any HTTP path pays on top of;
- sequential: BENCH_APP_SEQ queries one after another (p50/p95 and the ratio to in process);
- concurrent: BENCH_APP_N clients at the same moment (p50/p95/max, errors, searches/s, and the
  embedding batches the batcher formed).
Every row also counts how many top-1 results are the query's original.
"""

from __future__ import annotations

import html
import json
import os
import socket
import subprocess
import sys
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

    import search_app
    from data_retrieval.datasets import load_dataset
    from imsim.app import Collection

    n = int(os.environ.get("BENCH_APP_N", 50))
    n_seq = int(os.environ.get("BENCH_APP_SEQ", 30))
    method = os.environ.get("BENCH_APP_METHOD", "efficientnet_lite0")
    database = ["demo_original", "demo_distractors"]
    args = search_app.parse_args(["--method", method, "--demo"])
    search_app.prepare_demo(args)
    collection = Collection(method, database, features_root=FEATURES_DIR, datasets_root=DATASETS_DIR)
    queries = load_dataset("demo_attacks", root=DATASETS_DIR)
    paths = [queries.paths[i] for i in np.linspace(0, len(queries.paths) - 1, max(n, n_seq)).astype(int)]
    originals = ["demo_original/" + p.stem.split("_")[0] for p in paths]
    bodies = [p.read_bytes() for p in paths]

    port = _port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "imsim", "app", "--method", method, "--examples", "", "--port", str(port),
           "--features-root", str(FEATURES_DIR), "--datasets-root", str(DATASETS_DIR)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    http = httpx.Client(timeout=120)
    deadline = time.monotonic() + 600
    while True:
        try:
            http.get(f"{url}/api/info")
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: {' '.join(cmd)}") from None
            time.sleep(0.5)

    def in_process(i: int) -> str:
        return collection.search(paths[i], 5)[0].id

    def json_api(i: int) -> str:
        return http.post(f"{url}/api/search", params={"k": 5}, content=bodies[i]).json()["results"][0]["id"]

    def page_api(i: int) -> str | None:
        api = f"{url}/gradio_api"
        uploaded = http.post(f"{api}/upload", files={"files": (paths[i].name, bodies[i])}).json()[0]
        query = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
        event = http.post(f"{api}/call/search", json={"data": [query, 5, 0.0]}).json()["event_id"]
        stream = http.get(f"{api}/call/search/{event}").text
        if "event: complete" not in stream:
            raise RuntimeError(stream[-300:])
        data = json.loads(stream.split("event: complete", 1)[1].split("data:", 1)[1].strip().splitlines()[0])
        table = data[1]
        first = html.unescape(table.split("\n")[2]) if table.count("\n") >= 2 else ""  # ids are escaped
        return next((o for o in originals if o in first), first)

    print(f"{collection.describe()}; {os.cpu_count()} cores; the app in its own process "
          f"(search_app.py, concurrency limit {search_app.CONCURRENCY}), clients in this one")
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
            before = len(http.get(f"{url}/api/info").json()["embedding_batches"])
            lat, hits, errors, wall = _timed(fn, list(range(n)), originals, concurrent=True)
            rows.append(_row(name, lat, hits, wall=wall, errors=errors))
            batches = http.get(f"{url}/api/info").json()["embedding_batches"][before:]
            rows[-1]["embedding_batches"] = batches
            print(f"{'':<34} {len(batches)} embedding batches, largest {max(batches, default=0)}")
    finally:
        server.terminate()
        server.wait(30)
    return rows


if __name__ == "__main__":
    main()
