"""The gradio page: four ways to give a query, an editor to crop it, the top-k gallery with copy marks."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
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


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;:/.-")


def escape_markdown(text: str) -> str:
    """`text` shown literally in gr.Markdown: every character that Markdown or HTML could read
    (backticks, '<', '|', '*', '[', '&', ...) becomes a numeric character reference.

    Ids and paths come from file names, which anyone who can write to a dataset folder chooses: a
    backtick would end a code span and let ``<img src=...>`` through gradio's sanitizer."""
    return "".join(c if c in _PLAIN else f"&#{ord(c)};" for c in str(text))


def hits_table(hits: Sequence[Hit], binary: bool) -> str:
    """Markdown table of the results (rank, id, distance, mark; keypoint inliers when verified); ids escaped."""
    if not hits:
        return "No results."
    verified = any(h.inliers is not None for h in hits)
    rows = ["| # | id | distance | copy? |" + (" inliers |" if verified else ""),
            "|---|---|---|---|" + ("---|" if verified else "")]
    rows += [f"| {h.rank} | <code>{escape_markdown(h.id)}</code> | {_fmt_distance(h.distance, binary)} | {_mark(h)} |"
             + (f" {h.inliers if h.inliers is not None else ''} |" if verified else "") for h in hits]
    return "\n".join(rows)


def gallery_items(hits: Sequence[Hit], binary: bool, temp_dir: str | os.PathLike | None = None
                  ) -> list[tuple[str, str]]:
    """(image file, caption) pairs; an image whose file is missing shows a grey placeholder.

    A verified hit (its `match_box` set) is shown with the matched region drawn in yellow (a copy
    written under `temp_dir`, the files themselves untouched).
    """
    items = []
    for h in hits:
        caption = f"{h.rank}. {h.id} · d={_fmt_distance(h.distance, binary)}" + (f" · {_mark(h)}" if _mark(h) else "")
        path = str(h.path) if h.path else _placeholder()
        if h.path and h.match_box is not None:
            caption += f" · {h.inliers} inliers"
            path = _boxed(h.path, h.match_box, temp_dir)
        items.append((path, caption))
    return items


def _boxed(path: str | os.PathLike, box: tuple[float, float, float, float], temp_dir=None) -> str:
    """A copy of the image at `path` with `box` drawn in yellow, as a PNG under `temp_dir`."""
    from PIL import ImageDraw

    from helpers.atomic import save_image
    from helpers.images import load_image

    img = load_image(path)
    ImageDraw.Draw(img).rectangle(box, outline=(250, 200, 0), width=max(3, round(max(img.size) / 150)))
    out = Path(temp_dir or tempfile.gettempdir()) / f"match-{uuid.uuid4().hex}.png"
    save_image(img, out)
    return str(out)


def _placeholder() -> str:
    path = Path(tempfile.gettempdir()) / "search_app_missing.png"
    if not path.exists():
        atomic.save_image(Image.new("RGB", (64, 64), (200, 200, 200)), path)
    return str(path)


def temp_folder(prefix: str = "search_app_") -> Path:
    """A new temporary folder (uploads, fetched URLs, edited images) removed when the process exits
    (normally, on Ctrl-C, or on SIGTERM)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        try:  # SIGTERM's default ends the process without running atexit
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        except ValueError:  # not the main thread: leave the handler alone
            pass
    return path


def query_image(**kwargs) -> gr.Image:
    """gr.Image(type="filepath") that hands the uploaded file's path over untouched: gradio's own
    preprocessing opens it with PIL first and fails on a non-image or a bomb with "The upstream Gradio
    app has raised an exception"; the app's `check_upload` then says why instead. (The instance's
    `preprocess` is replaced: a subclass would make gradio write a ``.pyi`` file beside this one.)"""
    image = gr.Image(type="filepath", **kwargs)
    original = image.preprocess

    def preprocess(payload):
        if payload is not None and getattr(payload, "path", None) and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return original(payload)

    image.preprocess = preprocess
    return image


def _composite(edited) -> Image.Image | None:
    """The editor's current image, or None when it is empty."""
    return (edited or {}).get("composite") if isinstance(edited, dict) else None


class _Handlers:
    """The page's callbacks over one collection: searches, URL fetching, the editor, reusing a result."""

    def __init__(self, collection: Collection, temp_dir: Path, url_allow: Sequence[str], max_bytes: int) -> None:
        self.collection, self.temp_dir, self.url_allow, self.max_bytes = collection, temp_dir, url_allow, max_bytes

    def _results(self, hits, what):
        paths = [str(h.path) if h.path else "" for h in hits]
        return gallery_items(hits, self.collection.binary), hits_table(hits, self.collection.binary), paths, what

    def run_search(self, path, k, thr):
        if not path:
            return [], "", [], "Give a query: click an example, upload, use the webcam or paste a URL."
        try:
            fmt = check_upload(path, max_bytes=self.max_bytes, max_pixels=self.collection.max_pixels)
            with Image.open(path) as img:
                size = img.size
            hits = self.collection.search(path, int(k), float(thr))
        except (FetchError, BadImageError) as err:
            raise gr.Error(str(err)) from None
        return self._results(hits, f"Searched the query ({fmt}, {size[0]}x{size[1]}).")

    def run_search_edited(self, edited, k, thr):
        image = _composite(edited)
        if image is None:
            raise gr.Error("The editor is empty: give a query first, then crop it here.")
        try:
            hits = self.collection.search(image, int(k), float(thr))
        except BadImageError as err:
            raise gr.Error(str(err)) from None
        return self._results(hits, f"Searched the edited image ({image.width}x{image.height}).")

    def fetch_url(self, url):
        if not url or not url.strip():
            raise gr.Error("Paste an http(s) URL of an image.")
        try:
            fetched = fetch_image(url, allow=self.url_allow, max_bytes=self.max_bytes,
                                  max_pixels=self.collection.max_pixels)
        except FetchError as err:
            return gr.update(), f"URL refused: {escape_markdown(err)}"
        path = self.temp_dir / f"url-{uuid.uuid4().hex}{fetched.suffix}"
        atomic.write_bytes(path, fetched.content, durable=False)  # a scratch copy of the query
        return str(path), f"Fetched {len(fetched.content):,} bytes from {escape_markdown(fetched.url)}"

    @staticmethod
    def to_editor(path):
        return {"background": path, "layers": [], "composite": path} if path else None

    def edited_to_query(self, edited):
        image = _composite(edited)
        if image is None:
            raise gr.Error("The editor is empty.")
        return str(atomic.save_image(image, self.temp_dir / f"edited-{uuid.uuid4().hex}.png"))

    @staticmethod
    def describe_edit(edited):
        image = _composite(edited)
        return "" if image is None else f"Edited image: {image.width}x{image.height} px"

    @staticmethod
    def select_result(evt: gr.SelectData):
        return evt.index

    @staticmethod
    def reuse(paths, index):
        if index is None or not paths or index >= len(paths) or not paths[index]:
            raise gr.Error("Select a result in the gallery first.")
        return paths[index]


def _threshold_slider(collection: Collection, threshold: float | None, source: str) -> dict:
    """The copy-threshold slider's range, step, start value and label: an experiment's threshold, else a guess."""
    if collection.binary:
        top, step = float(collection.dim), 1.0
    else:
        top, step = (2.0 if collection.metric == "cosine" else 4.0), 0.001
    if threshold is None:
        value = round(top * (0.1 if collection.binary else 0.05), 3)
        note = "no threshold from an experiment: set it with the slider"
    else:
        value = float(threshold)
        top = max(top, value)
        note = " ".join((f"threshold at 1 % FPR from {source}" if source else "threshold given").split())
    return {"minimum": 0.0, "maximum": top, "value": value, "step": step, "label": f"copy threshold ({note})"}


def _query_column(examples: Sequence[str | os.PathLike]) -> dict:
    """The query image, its URL field and the status line."""
    query = query_image(label="Query", image_mode=None, sources=["upload", "webcam", "clipboard"],
                        elem_id="query", height=420)
    with gr.Row():
        url = gr.Textbox(label="Image URL", placeholder="https://...", elem_id="url", scale=4)
        fetch_btn = gr.Button("Fetch", elem_id="fetch", scale=1)
    status = gr.Markdown("", elem_id="status")
    if examples:
        gr.Examples([[str(e)] for e in examples], inputs=[query], label="Examples (attacked images)")
    return {"query": query, "url": url, "fetch_btn": fetch_btn, "status": status}


def _editor_column() -> dict:
    """The crop editor and its three buttons."""
    # gradio 6 shows the editor's toolbar (and its crop tool) only with brush and eraser on.
    editor = gr.ImageEditor(label="Crop / edit (upload, paste, or mirror the query here)", type="pil",
                            transforms=("crop",), elem_id="editor", height=420)
    edited_info = gr.Markdown("", elem_id="edited-info")
    with gr.Row():
        search_edited_btn = gr.Button("Search edited image", elem_id="search-edited", variant="primary")
        edited_btn = gr.Button("Use edited as query", elem_id="edited-to-query")
        mirror_btn = gr.Button("Mirror query to editor", elem_id="mirror")
    return {"editor": editor, "edited_info": edited_info, "search_edited_btn": search_edited_btn,
            "edited_btn": edited_btn, "mirror_btn": mirror_btn}


def _wire(c: dict, h: _Handlers) -> None:
    """Connect the components `c` to the callbacks `h` (the API names are the app's public endpoints)."""
    outputs = [c["gallery"], c["table"], c["paths_state"], c["status"]]
    search_in = [c["query"], c["k"], c["thr"]]
    c["query"].change(h.run_search, search_in, outputs, api_name="search")
    for control in (c["k"], c["thr"]):
        control.release(h.run_search, search_in, outputs, api_name=False)
    # the listener also keeps the server's copy of the edited image current after a crop
    c["editor"].change(h.describe_edit, [c["editor"]], [c["edited_info"]], api_name=False, show_progress="hidden")
    c["search_edited_btn"].click(h.run_search_edited, [c["editor"], c["k"], c["thr"]], outputs,
                                 api_name="search_edited")
    c["edited_btn"].click(h.edited_to_query, [c["editor"]], [c["query"]], api_name=False)
    c["mirror_btn"].click(h.to_editor, [c["query"]], [c["editor"]], api_name=False)
    c["fetch_btn"].click(h.fetch_url, [c["url"]], [c["query"], c["status"]], api_name="fetch_url")
    c["url"].submit(h.fetch_url, [c["url"]], [c["query"], c["status"]], api_name=False)
    c["gallery"].select(h.select_result, None, [c["selected"]], api_name=False)
    c["reuse_btn"].click(h.reuse, [c["paths_state"], c["selected"]], [c["query"]], api_name=False)


def build_app(
    collection: Collection,
    threshold: float | None = None,
    threshold_source: str = "",
    examples: Sequence[str | os.PathLike] = (),
    url_allow: Sequence[str] = (),
    max_bytes: int = MAX_BYTES,
    temp_dir: str | os.PathLike | None = None,
    k: int = 5,
):
    """The gradio Blocks of the app over `collection` (not launched); `k` results shown at first."""
    temp_dir = Path(temp_dir or temp_folder())
    temp_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)  # uploads and copies land here, nowhere else
    n = len(collection.ids)
    with gr.Blocks(title="Reverse image search") as demo:
        gr.Markdown(f"## Reverse image search\n{escape_markdown(collection.describe())}")
        c = {"paths_state": gr.State([]), "selected": gr.State(None)}
        with gr.Row():
            with gr.Column():
                c.update(_query_column(examples))
            with gr.Column():
                c.update(_editor_column())
        with gr.Row():
            c["k"] = gr.Slider(1, min(MAX_K, n), value=min(k, MAX_K, n), step=1, label="results (k)", elem_id="k")
            c["thr"] = gr.Slider(**_threshold_slider(collection, threshold, threshold_source), elem_id="threshold")
        c["gallery"] = gr.Gallery(label="Most similar", columns=5, height=300, elem_id="results",
                                  object_fit="contain", allow_preview=False)
        with gr.Row():
            c["reuse_btn"] = gr.Button("Reuse selected result as query", elem_id="reuse")
        c["table"] = gr.Markdown("", elem_id="table")
        _wire(c, _Handlers(collection, temp_dir, url_allow, max_bytes))
    demo.temp_dir = temp_dir
    return demo
