"""Shared fixtures: small images generated on the fly (nothing is downloaded)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.synthetic import synthetic_image  # noqa: F401  (re-exported for the tests)

# Tests never touch the internet: pretrained weights that are not cached are not downloaded (the
# first-use download is tested against a server on 127.0.0.1, tests/extractor/test_weights.py).
os.environ["IMSIM_OFFLINE"] = "1"


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 12 distinct JPEG images named 0.jpg .. 11.jpg."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        synthetic_image(i).save(folder / f"{i}.jpg", quality=92)
    return folder


def write_bad_images(folder: Path) -> dict[str, str]:
    """Write every kind of awkward file into `folder`; returns name -> 'ok' (decodable) or 'bad'."""
    folder.mkdir(parents=True, exist_ok=True)
    base = synthetic_image(100)
    kinds: dict[str, str] = {}
    base.save(folder / "good.jpg")
    kinds["good.jpg"] = "ok"
    base.convert("CMYK").save(folder / "cmyk.jpg")
    kinds["cmyk.jpg"] = "ok"
    arr16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(folder / "grey16.png")
    kinds["grey16.png"] = "ok"
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette_alpha.png", transparency=0)
    kinds["palette_alpha.png"] = "ok"
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "rgba.png")
    kinds["rgba.png"] = "ok"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    base.save(folder / "exif_rotated.jpg", exif=exif)
    kinds["exif_rotated.jpg"] = "ok"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    kinds["one_pixel.png"] = "ok"
    frames = [synthetic_image(i, (40, 30)).convert("P") for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    kinds["animated.gif"] = "ok"
    frames = [synthetic_image(i, (40, 30)) for i in range(2)]
    frames[0].save(folder / "multipage.tiff", save_all=True, append_images=frames[1:])
    kinds["multipage.tiff"] = "ok"
    buf = io.BytesIO()
    base.save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    kinds["truncated.jpg"] = "bad"
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    kinds["corrupt.jpg"] = "bad"
    (folder / "empty.png").write_bytes(b"")
    kinds["empty.png"] = "bad"
    (folder / "text_named_as_image.png").write_text("hello, not an image")
    kinds["text_named_as_image.png"] = "bad"
    # A decompression bomb: a tiny PNG that declares 30000 x 30000 pixels.
    Image.new("L", (30000, 30000)).save(folder / "bomb.png", optimize=True)
    kinds["bomb.png"] = "bad"
    (folder / "notes.txt").write_text("not an image extension")  # skipped at listing time
    (folder / ".hidden.jpg").write_bytes(buf.getvalue())  # skipped at listing time
    return kinds


@pytest.fixture
def bad_image_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder holding good images plus every awkward or broken kind of file."""
    folder = tmp_path / "bad"
    return folder, write_bad_images(folder)


#: The small demo set the docs and notebook tests run on (the full one takes `make demo` minutes).
SMALL_DEMO = dict(
    n_distractors=70,  # database >= 64 rows: the Python API tour's BIVF64 trains
    photos=["astronaut", "camera", "coffee", "rocket"],
    attack_ids=["gaussian_noise_0.01", "jpg_compression_50", "rotation_10_and_rescaling", "text_length_20"],
    n_synthetic_negatives=1,
    workers=0,
)
DEMO_DATASETS = ["demo_original", "demo_distractors", "demo_attacks", "demo_negatives"]


@pytest.fixture(scope="session")
def small_demo_root(tmp_path_factory) -> Path:
    """A data root (Datasets/, Features/, Results/) holding a small demo set with pHash and dHash extracted.

    Point IMSIM_DATA_ROOT at it and the library's default paths are this folder's.
    """
    from data_retrieval.demo import build_demo
    from extractor import extract_dataset

    root = tmp_path_factory.mktemp("demo_root")
    build_demo(root / "Datasets", **SMALL_DEMO)
    for method in ("phash", "dhash"):
        for dataset in DEMO_DATASETS:
            extract_dataset(method, dataset, features_root=root / "Features", datasets_root=root / "Datasets",
                            workers=0, progress=False)
    return root
