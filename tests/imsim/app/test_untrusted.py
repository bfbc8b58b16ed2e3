"""What the app takes from disk and from people is checked before it is used: a damaged saved
index is rebuilt (never loaded), hostile file names are shown literally, uploads that are not
images are refused with a reason, no server path is shown, temporary folders go at exit."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from imsim.app import Collection
from imsim.app.collection import Hit
from imsim.app.safe_fetch import FetchError, check_upload
from imsim.app.ui import build_app, escape_markdown, hits_table, query_image
from tests.imsim.app.conftest import attack_file

ROOT = Path(__file__).resolve().parents[3]

#: File names a person who can write to a dataset folder may choose (no '/', which names cannot hold).
HOSTILE = [
    "tick`quote",
    "`<img src=https:&#47;&#47;evil.example&#47;px.png>`",
    "<img src=x onerror=alert(1)>",
    "<a href=https:&#47;&#47;evil.example>click<&#47;a>",
    "[link](https:&#47;&#47;evil.example)",
    "![pixel](https:&#47;&#47;evil.example&#47;p.png)",
    "**bold** _it_",
    "| pipe | cell |",
    "<script>alert(1)<&#47;script>",
    "&lt;b&gt;entity",
    "```fence",
    "<!-- comment",
    "back\\slash",
    "$math$ ~~strike~~",
    "<style>body{display:none}<&#47;style>",
    "ünïcödé ✓ 名前",
    "-leading dash #hash %20",
]


def test_a_damaged_saved_index_is_rebuilt_never_loaded(tiny_demo, tmp_path, caplog):
    features = tmp_path / "Features"
    shutil.copytree(tiny_demo["features"], features)
    kw = dict(features_root=features, datasets_root=tiny_demo["datasets"])
    first = Collection(tiny_demo["method"], tiny_demo["database"], index="BIVF2", **kw)
    queries = [attack_file(tiny_demo, s) for s in ("camera_jpg_compression_50", "chelsea_text_length_20")]
    want = [[(h.id, h.distance) for h in first.search(q, 5)] for q in queries]
    good = first.index_path.read_bytes()
    rng = np.random.default_rng(0)
    for pos in [*rng.choice(len(good), size=6, replace=False), len(good) - 1]:
        damaged = bytearray(good)
        damaged[pos] ^= 0x01
        first.index_path.write_bytes(bytes(damaged))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="imsim.app"):
            again = Collection(tiny_demo["method"], tiny_demo["database"], index="BIVF2", **kw)
        assert again.rebuilt, f"a flip at byte {pos} was loaded"
        assert any(again.index_path.name in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
        assert [[(h.id, h.distance) for h in again.search(q, 5)] for q in queries] == want
    # the rebuilt file is whole again and loads
    assert not Collection(tiny_demo["method"], tiny_demo["database"], index="BIVF2", **kw).rebuilt
    assert not list(first.index_path.parent.glob("*.tmp*"))


def test_hits_table_shows_every_hostile_name_literally():
    hits = [Hit(i + 1, f"hostile/{name}", 1.0, None) for i, name in enumerate(HOSTILE)]
    table = hits_table(hits, binary=True)
    for name in HOSTILE:
        cell = escape_markdown(f"hostile/{name}")
        assert f"<code>{cell}</code>" in table
        assert not set(cell) & set("`<>|*_[]()!&$~\\#%{}") - {"&", "#"}, cell  # only entities survive
    assert "<img" not in table and "<a " not in table and "`" not in table


def test_describe_and_labels_show_no_server_paths(tiny_demo):
    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"])
    demo = build_app(collection, threshold=10.0, threshold_source="experiment demo-phash")
    shown = [collection.describe()]
    for block in demo.blocks.values():
        for attr in ("value", "label", "info", "placeholder"):
            value = getattr(block, attr, None)
            if isinstance(value, str):
                shown.append(value)
    roots = [str(Path(tiny_demo["features"]).resolve()), str(Path(tiny_demo["datasets"]).resolve()), "/tmp/"]
    for text in shown:
        assert not any(r in text for r in roots), text
    assert collection.index_path.name in collection.describe()


def _jpeg_header_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    ("empty.png", b"", "empty"),
    ("notes.png", b"just some text\n", "not an image"),
    ("huge.jpg", _jpeg_header_claiming(65000, 65000), "pixel"),
])
def test_uploads_that_are_not_usable_images_get_a_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    # gradio's own preprocessing would open it with PIL and fail without a reason: the path passes untouched
    payload = gr.FileData(path=str(path), orig_name=name)
    assert query_image().preprocess(payload) == str(path)
    with pytest.raises(FetchError, match=reason):
        check_upload(path)


def test_a_phone_mpo_jpeg_is_read_by_its_first_frame(tiny_demo, tmp_path):
    first, second = Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 200))
    path = tmp_path / "phone.jpg"
    first.save(path, "MPO", save_all=True, append_images=[second])
    with Image.open(path) as img:
        assert img.format == "MPO"
    assert check_upload(path) == "MPO"
    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"])
    assert len(collection.search(path, 3)) == 3


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_temporary_folders_are_removed_at_exit(how):
    code = ("import os, signal, time; from imsim.app.ui import temp_folder; p = temp_folder(); "
            "(p / 'upload.png').write_bytes(b'x'); print(p, flush=True); "
            + ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)" if how == "sigterm" else ""))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    folder = Path(out.stdout.strip().splitlines()[0])
    assert folder.name.startswith("search_app_") and not folder.exists(), out.stderr
