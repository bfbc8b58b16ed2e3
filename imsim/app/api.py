# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""A JSON search endpoint for programs, served beside the page (as clip-retrieval's back end offers).

    curl --data-binary @photo.jpg 'http://127.0.0.1:7860/api/search?k=5'
    requests.post(url + "/api/search", files={"image": open("photo.jpg", "rb")}, params={"k": 5}).json()

`POST /api/search` takes the image as the raw body or as the multipart field `image`, runs the app's
own upload checks (size, pixel limit, format) and answers the top-k as JSON with the copy mark at the
app's threshold and the time each stage took. `GET /api/info` describes the collection. It skips
gradio's queue and file cache, so a query costs about its embedding and its index search.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from helpers import atomic
from helpers.images import BadImageError
from imsim.app.collection import Collection
from imsim.app.safe_fetch import MAX_BYTES, FetchError, check_upload
from imsim.app.ui import MAX_K, temp_folder


class _TooLarge(Exception):
    pass


async def _body(request: Request, max_bytes: int) -> bytes:
    """The uploaded image's bytes: the multipart field `image`, else the raw body (at most max_bytes)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise _TooLarge()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=8, max_part_size=max_bytes + 1) as form:
            part = form.get("image")
            if part is None or isinstance(part, str):
                raise ValueError("multipart upload without a file field named 'image'")
            data = await part.read(max_bytes + 1)
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _TooLarge()
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) > max_bytes:
        raise _TooLarge()
    if not data:
        raise ValueError("empty upload: send the image as the request body or the multipart field 'image'")
    return data


def _search(collection: Collection, data: bytes, k: int, threshold: float | None, temp_dir: Path,
            max_bytes: int) -> dict[str, Any]:
    path = temp_dir / f"api-{uuid.uuid4().hex}"
    atomic.write_bytes(path, data, durable=False)  # a scratch copy of the query
    try:
        start = time.perf_counter()
        fmt = check_upload(path, max_bytes=max_bytes, max_pixels=collection.max_pixels)
        x = collection.embed(path)
        embedded = time.perf_counter()
        D, I = collection.search_features(x, k)
        searched = time.perf_counter()
    finally:
        path.unlink(missing_ok=True)
    results = []
    for rank, (d, i) in enumerate(zip(D[0], I[0], strict=True), start=1):
        if i >= 0:
            results.append({"rank": rank, "id": str(collection.ids[i]), "distance": float(d),
                            "is_copy": None if threshold is None else bool(d <= threshold)})
    return {"format": fmt, "threshold": threshold, "results": results,
            "ms": {"embed": 1000 * (embedded - start), "search": 1000 * (searched - embedded)}}


def api_router(collection: Collection, threshold: float | None = None, max_bytes: int = MAX_BYTES,
               temp_dir: str | os.PathLike | None = None) -> APIRouter:
    """The `/api` routes over `collection`; `threshold` (a distance) marks copies when given."""
    default_threshold = threshold
    temp = Path(temp_dir or temp_folder("search_api_"))  # removed at exit
    temp.mkdir(parents=True, exist_ok=True)
    router = APIRouter(prefix="/api")

    @router.get("/info")
    def info() -> dict[str, Any]:
        return {"method": collection.method, "images": len(collection.ids), "index": collection.factory,
                "metric": collection.metric, "binary": collection.binary, "dim": collection.dim,
                "threshold": default_threshold, "max_k": MAX_K, "max_bytes": max_bytes,
                "embedding_batches": list(collection.batcher.batch_sizes)[-1000:]}

    @router.post("/search")
    async def search(request: Request, k: int = 5, threshold: float | None = None) -> JSONResponse:
        """Top-k of the image in the body; `threshold` (a distance) overrides the app's copy threshold."""
        if not 1 <= k <= MAX_K:
            return JSONResponse({"error": f"k must be in [1, {MAX_K}], got {k}"}, status_code=422)
        try:
            data = await _body(request, max_bytes)
        except _TooLarge:
            return JSONResponse({"error": f"upload over the {max_bytes:,}-byte limit"}, status_code=413)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        thr = default_threshold if threshold is None else threshold
        try:
            answer = await run_in_threadpool(_search, collection, data, k, thr, temp, max_bytes)
        except (FetchError, BadImageError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(answer)

    return router


def asgi_app(demo, collection: Collection, threshold: float | None = None, max_bytes: int = MAX_BYTES,
             allowed_paths: list[str] | None = None) -> FastAPI:
    """One ASGI app: the JSON API under /api and the gradio page (`demo`, queued) at /."""
    import gradio as gr

    app = FastAPI(title="Reverse image search", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.include_router(api_router(collection, threshold, max_bytes, getattr(demo, "temp_dir", None)))
    return gr.mount_gradio_app(app, demo, path="/", allowed_paths=allowed_paths, max_file_size=max_bytes)
