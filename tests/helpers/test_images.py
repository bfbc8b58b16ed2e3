"""load_image: every awkward kind of file decodes to RGB or fails with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.images import BadImageError, is_image_file, load_image


def test_awkward_files_decode_or_fail_with_reason(bad_image_folder):
    folder, kinds = bad_image_folder
    for name, kind in kinds.items():
        if kind == "ok":
            img = load_image(folder / name)
            assert img.mode == "RGB" and min(img.size) >= 1, name
        else:
            with pytest.raises(BadImageError, match=name.split(".")[0]):
                load_image(folder / name)


def test_exif_rotation_is_applied(bad_image_folder):
    folder, _ = bad_image_folder
    assert load_image(folder / "good.jpg").size == (96, 72)
    assert load_image(folder / "exif_rotated.jpg").size == (72, 96)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 65535, np.uint16)
    arr[:4] = 32768
    Image.fromarray(arr).save(tmp_path / "g16.png")
    out = np.asarray(load_image(tmp_path / "g16.png", mode="L"))
    assert out[0, 0] == 128 and out[-1, -1] == 255


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255


def test_missing_file_and_pixel_limit(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(BadImageError, match="pixel limit"):
        load_image(tmp_path / "big.png", max_pixels=99 * 99)


def test_draft_mode_downscales_jpeg_but_stays_above_request(tmp_path):
    Image.new("RGB", (800, 600), (10, 200, 30)).save(tmp_path / "big.jpg")
    img = load_image(tmp_path / "big.jpg", draft=(100, 100))
    assert 100 <= img.size[0] < 800 and 100 <= img.size[1] < 600


def test_is_image_file():
    assert is_image_file("a/b.JPG") and is_image_file("x.webp")
    assert not is_image_file(".hidden.jpg") and not is_image_file("notes.txt")
