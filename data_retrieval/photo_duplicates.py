"""A folder of photographs with known duplicates, built offline: thresholds and keep policies are measured on it.

    python -m data_retrieval.photo_duplicates OUT [--seed 0]

Originals are the packaged photographs of the demo (`data_retrieval.demo.PHOTOS`: scikit-image,
scikit-learn, matplotlib) and the four quarter tiles of each: tiles of one photograph (bricks,
grass, gravel...) are distinct pictures that look alike, the hard negatives of a photo folder.
Originals are saved as JPEG quality 92. Each original gets one to two edited copies of that file,
drawn from `EDITS` (16 edit types a person applies to a photo), saved as JPEG at a quality drawn in 75-95 (so
a copy can be saved at a higher quality than its original) or PNG. ``truth.csv`` lists every file
with its group (the original's stem), its role (original / copy) and its edit.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from helpers import cli
from helpers.atomic import write_bytes, write_text

ORIGINAL_QUALITY = 92


def _resize(img: Image.Image, ratio: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(8, round(w * ratio)), max(8, round(h * ratio))), Image.Resampling.LANCZOS)


def _crop(img: Image.Image, share: float) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * share / 2), round(h * share / 2)
    return img.crop((dx, dy, w - dx, h - dy))


def _text(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, round(h * 0.82), w, h), fill=(0, 0, 0))
    draw.text((round(w * 0.05), round(h * 0.86)), "copyright " + str(int(rng.integers(1000, 9999))), fill=(255, 255, 255))
    return out


def _noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    x = np.asarray(img, np.float32) + rng.normal(0, 8, (img.size[1], img.size[0], 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


#: name -> edit(image, rng): what people do to photos they keep or share.
EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "recompress": lambda im, rng: im,  # only the re-encoding below
    "downscale_0.5": lambda im, rng: _resize(im, 0.5),
    "downscale_0.75": lambda im, rng: _resize(im, 0.75),
    "upscale_1.5": lambda im, rng: _resize(im, 1.5),
    "crop_10": lambda im, rng: _crop(im, 0.10),
    "crop_25": lambda im, rng: _crop(im, 0.25),
    "brightness_1.3": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.3),
    "contrast_0.7": lambda im, rng: ImageEnhance.Contrast(im).enhance(0.7),
    "saturation_1.6": lambda im, rng: ImageEnhance.Color(im).enhance(1.6),
    "greyscale": lambda im, rng: ImageOps.grayscale(im).convert("RGB"),
    "blur": lambda im, rng: im.filter(ImageFilter.GaussianBlur(1.5)),
    "noise": _noise,
    "caption": _text,
    "border": lambda im, rng: ImageOps.expand(im, border=max(4, im.size[0] // 12), fill=(255, 255, 255)),
    "flip": lambda im, rng: ImageOps.mirror(im),
    "rotate_90": lambda im, rng: im.transpose(Image.Transpose.ROTATE_90),
}


def _encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=quality) if fmt == "JPEG" else img.save(buf, format=fmt)
    return buf.getvalue()


def originals() -> list[tuple[str, Image.Image]]:
    """(stem, RGB image): every packaged photograph at most 512 px, and its four quarter tiles."""
    from data_retrieval.demo import available_photos, downscale
    from helpers.images import load_image

    out = []
    for stem, path in available_photos():
        photo = downscale(load_image(path).convert("RGB"))
        out.append((stem, photo))
        w, h = photo.size
        for k, (x, y) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            out.append((f"{stem}tile{k}", photo.crop((x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))))
    return out


def build(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write the originals, their edited copies and ``truth.csv`` under `out`; returns the truth file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(EDITS)
    rows = []
    for n, (stem, img) in enumerate(originals()):
        name = f"{stem}.jpg"
        data = _encode(img, "JPEG", ORIGINAL_QUALITY)
        write_bytes(out / name, data)
        img = Image.open(io.BytesIO(data)).convert("RGB")  # copies are edits of the original file, as people make them
        rows.append({"file": name, "group": stem, "role": "original", "edit": ""})
        picks = [names[n % len(names)]]  # every edit type on every kind of picture, in turn
        if rng.random() < 0.5:
            picks.append(names[int(rng.integers(len(names)))])
        for edit in dict.fromkeys(picks):
            copy = EDITS[edit](img, rng).convert("RGB")
            if rng.random() < 0.15:
                data, ext = _encode(copy, "PNG", 0), "png"
            else:
                data, ext = _encode(copy, "JPEG", int(rng.integers(75, 96))), "jpg"
            copy_name = f"{stem}_{edit}.{ext}"
            write_bytes(out / copy_name, data)
            rows.append({"file": copy_name, "group": stem, "role": "copy", "edit": edit})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["file", "group", "role", "edit"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "truth.csv", buf.getvalue())
    return out / "truth.csv"


def read_truth(folder: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``truth.csv`` in `folder` (file, group, role, edit)."""
    with open(Path(folder) / "truth.csv", newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(description="Build a folder of photographs with known edited copies (offline).")
    p.add_argument("out", help="output folder")
    p.add_argument("--seed", type=cli.int_in(0, 2**63 - 1), default=0)
    args = p.parse_args(argv)
    truth = build(args.out, args.seed)
    print(truth, file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(main)
