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


def test_float_images_are_scaled_by_their_range(tmp_path):
    arr = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(arr, "F").save(tmp_path / "unit.tiff")
    out = np.asarray(load_image(tmp_path / "unit.tiff", mode="L"))
    assert out.min() == 0 and out.max() == 255  # not 0/1 (almost black)
    Image.fromarray(arr * 255, "F").save(tmp_path / "bytes.tiff")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "bytes.tiff", mode="L")), out)
    Image.fromarray(arr * 2 - 1, "F").save(tmp_path / "signed.tiff")  # [-1, 1]: its own min..max
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "signed.tiff", mode="L")), out)


def _odd_encodings(img: Image.Image, folder):
    """The same picture as 16-bit, float, palette, CMYK, LA and EXIF-rotated files."""
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    files = {}
    Image.fromarray((grey * 257).astype(np.uint16)).save(folder / "g16.png")
    files["16-bit"] = (folder / "g16.png", img.convert("L"))
    Image.fromarray((grey / 255).astype(np.float32), "F").save(folder / "float.tiff")
    files["float"] = (folder / "float.tiff", img.convert("L"))
    img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(folder / "palette.png")
    files["palette"] = (folder / "palette.png", img)
    img.convert("CMYK").save(folder / "cmyk.tiff")
    files["CMYK"] = (folder / "cmyk.tiff", img)
    img.convert("LA").save(folder / "la.png")
    files["LA"] = (folder / "la.png", img.convert("L"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display: the stored pixels are the picture turned back
    img.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.png", exif=exif)
    files["EXIF-rotated"] = (folder / "rotated.png", img)
    return files


def test_odd_encodings_hash_like_plain_rgb(tmp_path):
    """Each odd encoding's dHash is within 2 bits of 64 of the same picture saved as plain RGB."""
    from extractor import create_extractor
    from helpers.synthetic import synthetic_image

    dhash = create_extractor("dhash")

    def hash_of(path):
        return np.unpackbits(dhash([dhash.transform(dhash.decode(path))])[0])

    for seed in range(3):
        img = synthetic_image(seed, (96, 72))
        for kind, (path, plain) in _odd_encodings(img, tmp_path).items():
            plain.convert("RGB").save(tmp_path / "plain.png")
            differ = int((hash_of(path) != hash_of(tmp_path / "plain.png")).sum())
            assert differ <= 2, f"{kind}: {differ} bits of 64 differ from plain RGB (seed {seed})"


def test_ten_thousand_square_jpeg_is_under_the_documented_limit(tmp_path):
    """Issue 12: Pillow's own warning (89 Mpixels) was raised as an error below our 268 Mpixel limit."""
    from helpers import images

    path = tmp_path / "big.jpg"
    Image.new("L", (10_000, 10_000), 128).save(path, quality=50)
    img = images.load_image(path, draft=(64, 64))  # draft: the test decodes at 1/8 scale
    assert min(img.size) >= 64
    old = images.MAX_PIXELS
    try:
        images.set_max_pixels(50_000_000)
        with pytest.raises(BadImageError, match="exceeds the 50000000 pixel limit .*--max-pixels"):
            images.load_image(path, draft=(64, 64))
    finally:
        images.set_max_pixels(old)
    with pytest.raises(ValueError, match="positive integer"):
        images.set_max_pixels(0)
