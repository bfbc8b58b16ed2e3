"""Partial-copy attacks: the original pasted into something larger, or only part of it kept.

What global descriptors miss and DISC21's winners handled with regions and local matching: a
photo pasted at 15-50 % of the area into another photograph, into a meme canvas with caption
bars, into one cell of a 2x2 collage, into a screenshot-like frame (status bar, borders, padding),
crops keeping 20-50 % of the area, and flips / quarter turns combined with these.

Each attack returns a `PartialCopy`: the image plus where the original's content lies in it
(``query_box``) and which part of the original it shows (``source_box``, original pixels), both
``(left, top, right, bottom)``. `data_retrieval.attacks` registers them (ids in
`PARTIAL_ATTACK_IDS`, its font for the captions) so ``apply_attack`` gives the image and
``attacks.apply_partial_attack`` the boxes too; this module imports nothing of the catalogue.
Randomness comes only from the generator the catalogue seeds per (seed, attack id).
Other photographs are the packaged ones in `BACKGROUND_PHOTOS` (a smooth colour field when none
is installed); the demo keeps them out of its database.
"""

from __future__ import annotations

import importlib.util
import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]

#: Photographs used as the other pictures (canvas, collage cells): the demo's held-out photos.
BACKGROUND_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage", "data/rocket.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("skimage", "data/coins.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/moon.png"),
)
CANVAS_SIDE = 512  # longer side of generated canvases (paste, meme, screenshot)


@dataclass(frozen=True)
class PartialCopy:
    """An attacked image, where the original's content lies in it, and which part of the original it shows."""

    image: Image.Image
    query_box: Box  # in the attacked image's pixels
    source_box: Box  # in the original's pixels

    def query_area_fraction(self) -> float:
        """Share of the attacked image covered by the original's content."""
        left, top, right, bottom = self.query_box
        return (right - left) * (bottom - top) / (self.image.width * self.image.height)


PartialAttack = Callable[..., PartialCopy]  # (img, rng, *, font=None) -> PartialCopy
Font = Callable[[int], ImageFont.FreeTypeFont | ImageFont.ImageFont]  # pixel size -> font


def _default_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# ----------------------------------------------------------------------------- other pictures
@lru_cache(maxsize=1)
def _background_files() -> tuple[Path, ...]:
    found = []
    for package, relative in BACKGROUND_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            path = Path(spec.origin).parent / relative
            if path.is_file():
                found.append(path)
    return tuple(found)


@lru_cache(maxsize=8)
def _background_photo(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def other_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A random crop of one of the background photographs, resized to `size` (w, h)."""
    files = _background_files()
    w, h = size
    if not files:
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        return Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    photo = _background_photo(files[int(rng.integers(len(files)))])
    pw, ph = photo.size
    scale = min(pw / w, ph / h) * float(rng.uniform(0.6, 1.0))  # the largest crop of the right shape, or less
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    return photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)


def _fit_area(img: Image.Image, area: float, room: tuple[int, int]) -> tuple[int, int]:
    """Size of `img` scaled (aspect kept) to cover `area` pixels, shrunk if it does not fit in `room`."""
    w, h = img.size
    s = math.sqrt(area / (w * h))
    s = min(s, room[0] / w, room[1] / h)
    return max(8, round(w * s)), max(8, round(h * s))


def _canvas_size(rng: np.random.Generator, img: Image.Image) -> tuple[int, int]:
    """A canvas CANVAS_SIDE on its longer side, its aspect near the original's (x 0.8-1.25)."""
    aspect = img.width / img.height * float(rng.uniform(0.8, 1.25))
    return (CANVAS_SIDE, round(CANVAS_SIDE / aspect)) if aspect >= 1 else (round(CANVAS_SIDE * aspect), CANVAS_SIDE)


def _full(img: Image.Image) -> Box:
    return 0, 0, img.width, img.height


# ----------------------------------------------------------------------------- attacks
def paste_photo(img: Image.Image, rng: np.random.Generator, percent: float, font: Font | None = None) -> PartialCopy:
    """The original, scaled to `percent` % of the area, pasted at a random place on another photograph."""
    cw, ch = _canvas_size(rng, img)
    out = other_photo(rng, (cw, ch))
    w, h = _fit_area(img, cw * ch * percent / 100, (cw, ch))
    x, y = int(rng.integers(0, cw - w + 1)), int(rng.integers(0, ch - h + 1))
    out.paste(img.resize((w, h), Image.Resampling.BICUBIC), (x, y))
    return PartialCopy(out, (x, y, x + w, y + h), _full(img))


def _caption(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: Box, colour: tuple[int, int, int],
             font: Font | None) -> None:
    """Random words centred in `box`, the font sized to the bar."""
    load_font = font or _default_font
    left, top, right, bottom = box
    if bottom - top < 8:
        return
    words = " ".join("".join(rng.choice(list(string.ascii_uppercase), size=int(rng.integers(3, 8))))
                     for _ in range(int(rng.integers(2, 5))))
    size = max(6, int((bottom - top) * 0.55))
    font = load_font(size)
    while size > 6 and draw.textlength(words, font=font) > right - left - 8:
        size = max(6, int(size * 0.85))
        font = load_font(size)
    tw = draw.textlength(words, font=font)
    draw.text(((left + right - tw) / 2, top + (bottom - top - size) / 2), words, fill=colour, font=font)


def meme(img: Image.Image, rng: np.random.Generator, percent: float, font: Font | None = None) -> PartialCopy:
    """A meme canvas: caption bars with text above and below, the original (`percent` % of the area) between."""
    cw, ch = _canvas_size(rng, img)
    ch = max(ch, cw * 3 // 4)  # room for the bars
    bar = max(12, round(ch * float(rng.uniform(0.1, 0.18))))
    dark = rng.random() < 0.3
    paper, ink = ((0, 0, 0), (255, 255, 255)) if dark else ((255, 255, 255), (0, 0, 0))
    out = Image.new("RGB", (cw, ch), paper)
    w, h = _fit_area(img, cw * ch * percent / 100, (cw - 4, ch - 2 * bar - 4))
    x, y = (cw - w) // 2 + int(rng.integers(-((cw - w) // 4), (cw - w) // 4 + 1)), (ch - h) // 2
    out.paste(img.resize((w, h), Image.Resampling.BICUBIC), (x, y))
    draw = ImageDraw.Draw(out)
    _caption(draw, rng, (0, 0, cw, min(bar, y)), ink, font)
    _caption(draw, rng, (0, max(y + h, ch - bar), cw, ch), ink, font)
    return PartialCopy(out, (x, y, x + w, y + h), _full(img))


def collage(img: Image.Image, rng: np.random.Generator, gap: int = 4, font: Font | None = None) -> PartialCopy:
    """A 2x2 collage: the original in one random cell (a quarter of the area), other photographs in the rest."""
    w, h = _fit_area(img, (CANVAS_SIDE // 2) ** 2 * 0.8, (CANVAS_SIDE // 2, CANVAS_SIDE // 2))
    out = Image.new("RGB", (2 * w + 3 * gap, 2 * h + 3 * gap), (255, 255, 255))
    cell = int(rng.integers(4))
    box: Box = (0, 0, 0, 0)
    for i in range(4):
        x, y = gap + (i % 2) * (w + gap), gap + (i // 2) * (h + gap)
        if i == cell:
            out.paste(img.resize((w, h), Image.Resampling.BICUBIC), (x, y))
            box = (x, y, x + w, y + h)
        else:
            out.paste(other_photo(rng, (w, h)), (x, y))
    return PartialCopy(out, box, _full(img))


def screenshot(img: Image.Image, rng: np.random.Generator, percent: float, font: Font | None = None) -> PartialCopy:
    """A screenshot-like frame: status bar, title bar, grey borders, padding and text lines around the original."""
    portrait = rng.random() < 0.5
    cw, ch = (CANVAS_SIDE * 9 // 16, CANVAS_SIDE) if portrait else (CANVAS_SIDE, CANVAS_SIDE * 10 // 16)
    grey = int(rng.integers(225, 250))
    out = Image.new("RGB", (cw, ch), (grey, grey, grey))
    draw = ImageDraw.Draw(out)
    status, title, border = max(10, ch // 28), max(14, ch // 14), max(4, cw // 40)
    draw.rectangle((0, 0, cw, status), fill=(20, 20, 20))
    _caption(draw, rng, (0, 0, cw // 3, status), (240, 240, 240), font)
    accent = tuple(int(v) for v in rng.integers(0, 200, 3))
    draw.rectangle((0, status, cw, status + title), fill=accent)
    _caption(draw, rng, (border, status, cw - border, status + title), (255, 255, 255), font)
    top = status + title + border
    room = (cw - 2 * border, ch - top - border)
    w, h = _fit_area(img, cw * ch * percent / 100, room)
    x = border + int(rng.integers(0, room[0] - w + 1))
    y = top + int(rng.integers(0, max(1, (room[1] - h) // 3) + 1))  # nearer the top, text below
    out.paste(img.resize((w, h), Image.Resampling.BICUBIC), (x, y))
    line, text_y = max(8, ch // 30), y + h + border
    while text_y + line < ch - border:
        _caption(draw, rng, (border, text_y, cw - border, text_y + line), (60, 60, 60), font)
        text_y += line + 4
    return PartialCopy(out, (x, y, x + w, y + h), _full(img))


def partial_crop(img: Image.Image, rng: np.random.Generator, percent: float, font: Font | None = None) -> PartialCopy:
    """A crop keeping `percent` % of the area at a random place (aspect x 0.75-1.33), not resized."""
    w, h = img.size
    aspect = float(rng.uniform(0.75, 4 / 3))
    cw = min(w, max(8, round(math.sqrt(w * h * percent / 100 * aspect))))
    ch = min(h, max(8, round(w * h * percent / 100 / cw)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    box = (x, y, x + cw, y + ch)
    out = img.crop(box)
    return PartialCopy(out, _full(out), box)


_TURNS = {
    "flip": Image.Transpose.FLIP_LEFT_RIGHT,
    "rot90": Image.Transpose.ROTATE_90,
    "rot270": Image.Transpose.ROTATE_270,
}


def turned(img: Image.Image, rng: np.random.Generator, attack: PartialAttack, turn: str,
           font: Font | None = None) -> PartialCopy:
    """A partial-copy attack combined with a flip or quarter turn.

    Pastes turn the original before pasting (``query_box`` is where it lands); crops turn the crop
    afterwards (``source_box`` stays in the original's pixels). Either way both boxes stay exact.
    """
    if getattr(attack, "func", None) is partial_crop:
        copy = attack(img, rng, font=font)
        out = copy.image.transpose(_TURNS[turn])
        return PartialCopy(out, _full(out), copy.source_box)
    copy = attack(img.transpose(_TURNS[turn]), rng, font=font)
    return PartialCopy(copy.image, copy.query_box, _full(img))


# ----------------------------------------------------------------------------- catalogue
def _table() -> dict[str, PartialAttack]:
    """Every partial-copy attack, id -> function (the ids end in their parameter, as the catalogue's)."""
    table: dict[str, PartialAttack] = {}
    table.update({f"paste_photo_{p}": partial(paste_photo, percent=p) for p in (15, 35)})
    table.update({f"meme_caption_{p}": partial(meme, percent=p) for p in (25, 45)})
    table["collage_2x2"] = collage
    table.update({f"screenshot_frame_{p}": partial(screenshot, percent=p) for p in (30, 50)})
    table.update({f"partial_crop_{p}": partial(partial_crop, percent=p) for p in (20, 45)})
    table["turned_paste_photo_rot90"] = partial(turned, attack=table["paste_photo_35"], turn="rot90")
    table["turned_meme_flip"] = partial(turned, attack=table["meme_caption_45"], turn="flip")
    table["turned_crop_rot270"] = partial(turned, attack=table["partial_crop_45"], turn="rot270")
    return table


PARTIAL_ATTACKS: dict[str, PartialAttack] = _table()
#: Ids of the partial-copy attacks, in catalogue order.
PARTIAL_ATTACK_IDS: list[str] = list(PARTIAL_ATTACKS)


def partial_family(attack_id: str) -> str | None:
    """The family of a partial-copy id ('paste_photo_15' -> 'paste_photo', 'turned_*' -> 'turned'), else None."""
    if attack_id not in PARTIAL_ATTACKS:
        return None
    if attack_id.startswith("turned_"):
        return "turned"
    return "collage" if attack_id == "collage_2x2" else attack_id.rpartition("_")[0]


#: The partial-copy families, in catalogue order.
PARTIAL_FAMILIES: list[str] = list(dict.fromkeys(partial_family(a) for a in PARTIAL_ATTACK_IDS))


def box_iou(a: Box | np.ndarray, b: Box | np.ndarray) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# ----------------------------------------------------------------------------- recorded boxes
BOXES_FOLDER = ".boxes"  # hidden: dataset listings skip it


def box_path(attacked: str | Path) -> Path:
    """Where the boxes of attacked file ``<folder>/<name>.<ext>`` are recorded: ``<folder>/.boxes/<name>.json``."""
    attacked = Path(attacked)
    return attacked.parent / BOXES_FOLDER / f"{attacked.stem}.json"


def write_boxes(attacked: str | Path, copy: PartialCopy) -> Path:
    """Record `copy`'s boxes next to its image file (atomic JSON)."""
    from helpers.atomic import write_json

    return write_json(box_path(attacked), {"query_box": list(copy.query_box), "source_box": list(copy.source_box),
                                           "size": list(copy.image.size)})


def read_boxes(attacked: str | Path) -> tuple[Box, Box] | None:
    """(query_box, source_box) recorded for an attacked file, None when it has none."""
    import json

    path = box_path(attacked)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return tuple(data["query_box"]), tuple(data["source_box"])  # type: ignore[return-value]
