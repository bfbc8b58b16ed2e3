"""The duplicates review page as a person uses it, in real headless Chromium: change marks, export the list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fast_search.duplicates import find_duplicates
from helpers.synthetic import synthetic_image

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review") / "photos"
    folder.mkdir()
    for i in range(4):
        synthetic_image(200 + i, (160, 120)).save(folder / f"p{i}.jpg", quality=92)
    shutil.copy(folder / "p0.jpg", folder / "p0_copy.jpg")
    shutil.copy(folder / "p1.jpg", folder / "p1_copy.jpg")
    shutil.copy(folder / "p1.jpg", folder / "p1_copy2.jpg")
    dups = find_duplicates(folder, "phash", features_root=folder.parent / "F", workers=0, progress=False)
    out = folder.parent / "out"
    dups.save(out)
    return dups, out


def test_mark_and_export(review, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    dups, out = review
    proposed = dups.remove_list()
    assert len(proposed) == 3
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(accept_downloads=True)
        page.goto((out / "index.html").as_uri())
        assert page.locator("#count").inner_text() == "3"
        boxes = page.locator("input.remove")
        assert boxes.count() == 5
        checked = sorted(b.get_attribute("data-path") for b in page.locator("input.remove:checked").all())
        assert checked == proposed  # the page starts from the keep policy's proposal
        page.locator(f"input.remove[data-path='{proposed[0]}']").uncheck()  # keep this one after all
        kept = dups.group_paths[0][0]
        page.locator(f"input.remove[data-path='{kept}']").check()  # and remove the proposed keeper
        page.locator(".group[data-group='1'] button.keepall").click()  # keep the whole second group
        with page.expect_download() as info:
            page.locator("#export").click()
        exported = Path(info.value.path()).read_text().split()
        group1 = set(dups.group_paths[1])
        expected = sorted((set(proposed) - {proposed[0]} | {kept}) - group1)
        assert exported == expected
        assert page.locator("#list").input_value().split() == expected
        assert page.locator("#count").inner_text() == str(len(expected))
        page.reload()  # marks survive a reload (localStorage)
        assert sorted(b.get_attribute("data-path") for b in page.locator("input.remove:checked").all()) == expected
        page.screenshot(path=str(tmp_path / "review.png"))
        browser.close()
