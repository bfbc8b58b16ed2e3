"""The app as a person uses it, in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Upload an attacked image -> its original comes first; crop it in the editor and search the crop;
reuse a result as the next query; a screenshot is saved under the test's temporary folder.
"""

from __future__ import annotations

import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from tests.imsim.app.conftest import attack_file, free_port

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def app_url(tiny_demo, tmp_path_factory):
    from imsim.app import Collection
    from imsim.app.ui import build_app

    collection = Collection(
        tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
        datasets_root=tiny_demo["datasets"],
    )
    examples = sorted((tiny_demo["datasets"] / "demo" / "Attacks").iterdir())[:4]
    demo = build_app(collection, threshold=10.0, threshold_source="test", examples=examples,
                     temp_dir=tmp_path_factory.mktemp("gradio"))
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        allowed_paths=[str(p) for p in collection.image_folders()] + [str(examples[0].parent)],
    )
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (Playwright's sync API runs one instance per thread)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does it)")
    import playwright.sync_api as sync_api  # in requirements-dev.txt: a broken install fails, never skips

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(30_000)
    page.goto(app_url, wait_until="load")
    page.wait_for_selector("#query input[type=file]", state="attached")
    yield page
    page.close()


def first_row(page) -> list[str]:
    return page.locator("#table tbody tr").first.locator("td").all_inner_texts()


def wait_status(page, text: str) -> None:
    page.wait_for_function(
        "t => (document.querySelector('#status') || {}).innerText.includes(t)", arg=text, timeout=30_000
    )


def image_box(page, selector: str, skip_top: int = 40, skip_bottom: int = 50) -> tuple[float, float, float, float]:
    """Page coordinates (x0, y0, x1, y1) of the picture shown on a canvas: what differs from its most
    common colour (the crop tool's grey backdrop), away from the label, the button and the corners."""
    box = page.locator(selector).bounding_box()
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")).astype(int)
    colours, counts = np.unique(shot.reshape(-1, 3), axis=0, return_counts=True)
    differs = np.abs(shot - colours[counts.argmax()]).sum(axis=2) > 30
    differs[:skip_top] = differs[-skip_bottom:] = False
    differs[:, :8] = differs[:, -8:] = False
    ys, xs = np.nonzero(differs)
    scale = shot.shape[1] / box["width"]
    return (box["x"] + xs.min() / scale, box["y"] + ys.min() / scale,
            box["x"] + xs.max() / scale, box["y"] + ys.max() / scale)


def test_upload_crop_reuse_in_chromium(page, tiny_demo, tmp_path):
    # 1. upload an attacked demo image: its original comes first, marked as a copy
    page.locator("#query input[type=file]").set_input_files(str(attack_file(tiny_demo, "camera_jpg_compression_50")))
    wait_status(page, "Searched the query")
    rank, image_id, distance, mark = first_row(page)
    assert (rank, image_id, mark) == ("1", "demo_original/camera", "COPY")
    captions = page.locator("#results .caption-label").all_inner_texts()
    assert captions[0].startswith("1. demo_original/camera") and len(captions) == 5

    # 2. load the query into the editor, crop it with the crop tool's corner handle, search the crop
    to_crop = attack_file(tiny_demo, "chelsea_jpg_compression_50")
    with Image.open(to_crop) as full:
        width, height = full.size
    page.locator("#editor input[type=file]").set_input_files(str(to_crop))
    time.sleep(3)  # the editor draws the upload (it sends no event of its own)
    page.locator("#editor button[aria-label=Image]").first.click()
    page.locator("#editor button[aria-label=Crop]").first.click()
    time.sleep(1)
    x0, y0, x1, y1 = image_box(page, "#editor .pixi-target-crop canvas")
    page.mouse.move(x1 - 2, y1 - 2)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2 + 10, (y0 + y1) / 2 + 10, steps=8)
    page.mouse.up()
    page.locator("#editor button[aria-label='Confirm crop']").click()
    page.wait_for_function(  # the editor reports the cropped size once the server has the crop
        "([w, h]) => { const m = ((document.querySelector('#edited-info') || {}).innerText || '')"
        ".match(/Edited image: (\\d+)x(\\d+)/); return m && +m[1] < 0.8 * w && +m[2] < 0.8 * h }",
        arg=[width, height], timeout=60_000,
    )
    page.locator("#search-edited").click()
    wait_status(page, "Searched the edited image")
    w, h = (int(v) for v in page.locator("#status").inner_text().split("(")[1].rstrip(").").split("x"))
    with Image.open(to_crop) as full:
        assert w < full.width * 0.8 and h < full.height * 0.8, (w, h, full.size)
    assert len(page.locator("#table tbody tr").all()) == 5

    # 3. reuse a result as the next query: it finds itself at distance 0
    page.locator("#query input[type=file]").set_input_files(str(attack_file(tiny_demo, "camera_jpg_compression_50")))
    wait_status(page, "Searched the query")
    second = page.locator("#table tbody tr").nth(1).locator("td").all_inner_texts()[1]
    page.locator("#results .thumbnail-item").nth(1).click()
    page.locator("#reuse").click()
    page.wait_for_function(
        "id => { const r = document.querySelector('#table tbody tr'); return r && r.innerText.includes(id) }",
        arg=second,
    )
    rank, image_id, distance, mark = first_row(page)
    assert (image_id, distance, mark) == (second, "0", "COPY")

    path = tmp_path / "search_app.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    """An app over a folder whose 17 file names try to inject HTML into the results table."""
    from extractor import extract_dataset
    from imsim.app import Collection
    from imsim.app.ui import build_app
    from tests.imsim.app.test_untrusted import HOSTILE

    root = tmp_path_factory.mktemp("hostile")
    folder = root / "Datasets" / "hostile"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in HOSTILE:
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    extract_dataset("phash", folder, root / "Features", workers=0, progress=False)
    collection = Collection("phash", ["hostile"], features_root=root / "Features", datasets_root=root / "Datasets")
    demo = build_app(collection, threshold=10.0, threshold_source="test", temp_dir=tmp_path_factory.mktemp("gr"),
                     k=len(HOSTILE))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        allowed_paths=[str(folder)])
    yield f"http://127.0.0.1:{port}", folder
    demo.close()


def test_hostile_file_names_are_shown_literally_in_chromium(hostile_app, browser, tmp_path):
    from tests.imsim.app.test_untrusted import HOSTILE

    url, folder = hostile_app
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(30_000)
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:")) else None)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    page.wait_for_selector("#query input[type=file]", state="attached")
    page.locator("#query input[type=file]").set_input_files(str(folder / f"{HOSTILE[1]}.png"))
    wait_status(page, "Searched the query")
    rows = page.locator("#table tbody tr")
    page.wait_for_function("n => document.querySelectorAll('#table tbody tr').length === n", arg=len(HOSTILE))
    shown = sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(len(HOSTILE)))
    assert shown == sorted(f"hostile/{name}" for name in HOSTILE)
    assert page.locator("#table img, #table a, #table script, #table style").count() == 0
    # an upload that is not an image is refused with the app's reason, not gradio's generic error
    fake = tmp_path / "drawing.png"
    fake.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    page.locator("#query input[type=file]").set_input_files(str(fake))
    page.wait_for_function("() => document.body.innerText.includes('not an image PIL can decode')")
    assert "upstream Gradio app has raised an exception" not in page.locator("body").inner_text()
    page.close()
    assert not elsewhere and not dialogs, (elsewhere, dialogs)
