"""The JSON search endpoint over HTTP on loopback: raw and multipart uploads, the app's checks, concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from imsim.app import Collection
from imsim.app.api import asgi_app
from tests.imsim.app.conftest import attack_file, free_port

STEMS = ["astronaut_jpg_compression_50", "coffee_text_length_20", "camera_jpg_compression_50", "chelsea_text_length_20"]


@pytest.fixture(scope="module")
def server(tiny_demo, tmp_path_factory):
    import uvicorn

    from imsim.app.ui import build_app

    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"])
    demo = build_app(collection, threshold=10.0, temp_dir=tmp_path_factory.mktemp("gradio"))
    demo.queue()
    app = asgi_app(demo, collection, threshold=10.0, max_bytes=200_000)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", collection
    srv.should_exit = True
    thread.join(10)


def test_raw_and_multipart_uploads_answer_the_collections_own_top_k(server, tiny_demo):
    url, collection = server
    for stem in STEMS:
        path = attack_file(tiny_demo, stem)
        expected = [(h.id, h.distance, h.is_copy) for h in collection.search(path, 3, 10.0)]
        raw = httpx.post(f"{url}/api/search", params={"k": 3}, content=path.read_bytes()).json()
        multi = httpx.post(f"{url}/api/search", params={"k": 3}, files={"image": path.open("rb")}).json()
        for answer in (raw, multi):
            assert [(r["id"], r["distance"], r["is_copy"]) for r in answer["results"]] == expected
            assert [r["rank"] for r in answer["results"]] == [1, 2, 3]
        assert raw["results"][0]["id"] == "demo_original/" + stem.split("_")[0]


def test_threshold_in_the_query_overrides_the_apps(server, tiny_demo):
    url, _ = server
    body = attack_file(tiny_demo, STEMS[0]).read_bytes()
    answer = httpx.post(f"{url}/api/search", params={"k": 2, "threshold": -1}, content=body).json()
    assert answer["threshold"] == -1 and [r["is_copy"] for r in answer["results"]] == [False, False]


def test_bad_uploads_get_a_reason_and_a_4xx(server, tiny_demo):
    url, _ = server
    assert httpx.post(f"{url}/api/search", content=b"").status_code == 400
    text = httpx.post(f"{url}/api/search", content=b"hello, not an image")
    assert text.status_code == 400 and text.json()["error"]
    big = httpx.post(f"{url}/api/search", content=b"\xff" * 300_000)
    assert big.status_code == 413 and "limit" in big.json()["error"]
    wrong_field = httpx.post(f"{url}/api/search", files={"file": attack_file(tiny_demo, STEMS[0]).open("rb")})
    assert wrong_field.status_code == 400 and "image" in wrong_field.json()["error"]
    assert httpx.post(f"{url}/api/search", params={"k": 0}, content=b"x").status_code == 422


def test_concurrent_searches_all_answer_as_alone(server, tiny_demo):
    url, collection = server
    bodies = [attack_file(tiny_demo, STEMS[i % len(STEMS)]).read_bytes() for i in range(24)]
    alone = [httpx.post(f"{url}/api/search", content=b).json()["results"] for b in bodies[: len(STEMS)]]
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda b: httpx.post(f"{url}/api/search", content=b, timeout=60), bodies))
    assert all(a.status_code == 200 for a in answers)
    for i, a in enumerate(answers):
        assert a.json()["results"] == alone[i % len(STEMS)]


def test_info_and_the_page_are_served_together(server):
    url, collection = server
    info = httpx.get(f"{url}/api/info").json()
    assert info["images"] == len(collection.ids) and info["method"] == collection.method
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
