"""The gradio page: four ways to give a query, an editor to crop it, the top-k gallery with copy marks."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
from PIL import Image

from helpers import atomic
from helpers.images import BadImageError
from imsim.app.collection import Collection, Hit
from imsim.app.safe_fetch import MAX_BYTES, FetchError, check_upload, fetch_image

log = logging.getLogger(__name__)

MAX_K = 50


def _fmt_distance(d: float, binary: bool) -> str:
    return f"{d:.0f}" if binary else f"{d:.4f}"


def _mark(hit: Hit) -> str:
    return "" if hit.is_copy is None else ("COPY" if hit.is_copy else "not a copy")


def hits_table(hits: Sequence[Hit], binary: bool) -> str:
    """Markdown table of the results (rank, id, distance, mark)."""
    if not hits:
        return "No results."
    rows = ["| # | id | distance | copy? |", "|---|---|---|---|"]
    rows += [f"| {h.rank} | `{h.id}` | {_fmt_distance(h.distance, binary)} | {_mark(h)} |" for h in hits]
    return "\n".join(rows)


def gallery_items(hits: Sequence[Hit], binary: bool) -> list[tuple[str, str]]:
    """(image file, caption) pairs; an image whose file is missing shows a grey placeholder."""
    items = []
    for h in hits:
        caption = f"{h.rank}. {h.id} · d={_fmt_distance(h.distance, binary)}" + (f" · {_mark(h)}" if _mark(h) else "")
        items.append((str(h.path) if h.path else _placeholder(), caption))
    return items


def _placeholder() -> str:
    path = Path(tempfile.gettempdir()) / "search_app_missing.png"
    if not path.exists():
        Image.new("RGB", (64, 64), (200, 200, 200)).save(path)
    return str(path)


def build_app(
    collection: Collection,
    threshold: float | None = None,
    threshold_source: str = "",
    examples: Sequence[str | os.PathLike] = (),
    url_allow: Sequence[str] = (),
    max_bytes: int = MAX_BYTES,
    temp_dir: str | os.PathLike | None = None,
):
    """The gradio Blocks of the app over `collection` (not launched)."""
    temp_dir = Path(temp_dir or tempfile.mkdtemp(prefix="search_app_"))
    temp_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)  # uploads and copies land here, nowhere else
    binary = collection.binary
    if binary:
        top, step = float(collection.dim), 1.0
    else:
        top, step = (2.0 if collection.metric == "cosine" else 4.0), 0.001
    if threshold is None:
        slider_value = round(top * (0.1 if binary else 0.05), 3)
        note = "no threshold from an experiment: set it with the slider"
    else:
        slider_value = float(threshold)
        top = max(top, slider_value)
        note = f"threshold at 1 % FPR from {threshold_source}" if threshold_source else "threshold given"

    def results(hits, what):
        paths = [str(h.path) if h.path else "" for h in hits]
        return gallery_items(hits, binary), hits_table(hits, binary), paths, what

    def run_search(path, k, thr):
        if not path:
            return [], "", [], "Give a query: click an example, upload, use the webcam or paste a URL."
        try:
            fmt = check_upload(path, max_bytes=max_bytes, max_pixels=collection.max_pixels)
            with Image.open(path) as img:
                size = img.size
            hits = collection.search(path, int(k), float(thr))
        except (FetchError, BadImageError) as err:
            raise gr.Error(str(err)) from None
        return results(hits, f"Searched the query ({fmt}, {size[0]}x{size[1]}).")

    def run_search_edited(edited, k, thr):
        image = (edited or {}).get("composite") if isinstance(edited, dict) else None
        if image is None:
            raise gr.Error("The editor is empty: give a query first, then crop it here.")
        try:
            hits = collection.search(image, int(k), float(thr))
        except BadImageError as err:
            raise gr.Error(str(err)) from None
        return results(hits, f"Searched the edited image ({image.width}x{image.height}).")

    def fetch_url(url):
        if not url or not url.strip():
            raise gr.Error("Paste an http(s) URL of an image.")
        try:
            fetched = fetch_image(url, allow=url_allow, max_bytes=max_bytes, max_pixels=collection.max_pixels)
        except FetchError as err:
            return gr.update(), f"URL refused: {err}"
        path = temp_dir / f"url-{uuid.uuid4().hex}{fetched.suffix}"
        atomic.write_bytes(path, fetched.content, durable=False)  # a scratch copy of the query
        return str(path), f"Fetched {len(fetched.content):,} bytes from {fetched.url}"

    def to_editor(path):
        return {"background": path, "layers": [], "composite": path} if path else None

    def edited_to_query(edited):
        image = (edited or {}).get("composite") if isinstance(edited, dict) else None
        if image is None:
            raise gr.Error("The editor is empty.")
        path = temp_dir / f"edited-{uuid.uuid4().hex}.png"
        image.save(path)
        return str(path)

    def describe_edit(edited):
        image = (edited or {}).get("composite") if isinstance(edited, dict) else None
        return "" if image is None else f"Edited image: {image.width}x{image.height} px"

    def select_result(evt: gr.SelectData):
        return evt.index

    def reuse(paths, index):
        if index is None or not paths or index >= len(paths) or not paths[index]:
            raise gr.Error("Select a result in the gallery first.")
        return paths[index]

    with gr.Blocks(title="Reverse image search") as demo:
        gr.Markdown(f"## Reverse image search\n{collection.describe()}")
        paths_state = gr.State([])
        selected = gr.State(None)
        with gr.Row():
            with gr.Column():
                query = gr.Image(
                    label="Query", type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                    elem_id="query", height=420,
                )
                with gr.Row():
                    url = gr.Textbox(label="Image URL", placeholder="https://...", elem_id="url", scale=4)
                    fetch_btn = gr.Button("Fetch", elem_id="fetch", scale=1)
                status = gr.Markdown("", elem_id="status")
                if examples:
                    gr.Examples([[str(e)] for e in examples], inputs=[query], label="Examples (attacked images)")
            with gr.Column():
                # gradio 6 shows the editor's toolbar (and its crop tool) only with brush and eraser on.
                editor = gr.ImageEditor(
                    label="Crop / edit (upload, paste, or mirror the query here)", type="pil",
                    transforms=("crop",), elem_id="editor", height=420,
                )
                edited_info = gr.Markdown("", elem_id="edited-info")
                with gr.Row():
                    search_edited_btn = gr.Button("Search edited image", elem_id="search-edited", variant="primary")
                    edited_btn = gr.Button("Use edited as query", elem_id="edited-to-query")
                    mirror_btn = gr.Button("Mirror query to editor", elem_id="mirror")
        with gr.Row():
            k = gr.Slider(1, min(MAX_K, len(collection.ids)), value=min(5, len(collection.ids)), step=1,
                          label="results (k)", elem_id="k")
            thr = gr.Slider(0.0, top, value=slider_value, step=step, label=f"copy threshold ({note})",
                            elem_id="threshold")
        gallery = gr.Gallery(label="Most similar", columns=5, height=300, elem_id="results",
                             object_fit="contain", allow_preview=False)
        with gr.Row():
            reuse_btn = gr.Button("Reuse selected result as query", elem_id="reuse")
        table = gr.Markdown("", elem_id="table")

        outputs = [gallery, table, paths_state, status]
        query.change(run_search, [query, k, thr], outputs, api_name="search")
        for control in (k, thr):
            control.release(run_search, [query, k, thr], outputs, api_name=False)
        # the listener also keeps the server's copy of the edited image current after a crop
        editor.change(describe_edit, [editor], [edited_info], api_name=False, show_progress="hidden")
        search_edited_btn.click(run_search_edited, [editor, k, thr], outputs, api_name="search_edited")
        edited_btn.click(edited_to_query, [editor], [query], api_name=False)
        mirror_btn.click(to_editor, [query], [editor], api_name=False)
        fetch_btn.click(fetch_url, [url], [query, status], api_name="fetch_url")
        url.submit(fetch_url, [url], [query, status], api_name=False)
        gallery.select(select_result, None, [selected], api_name=False)
        reuse_btn.click(reuse, [paths_state, selected], [query], api_name=False)
    demo.temp_dir = temp_dir
    return demo
