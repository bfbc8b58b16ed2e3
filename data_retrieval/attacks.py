"""The seed's catalogue of 58 image attacks (plus a few extras), one deterministic function per id.

``apply_attack(img, attack_id, seed)`` returns the attacked RGB copy of `img`. Every random
choice (noise, text, position) comes from a generator seeded by a stable hash of
``(seed, attack_id)``: callers that want per-image randomness pass ``derive_seed(seed, stem)``
as `seed`, so results never depend on process order. No OpenCV: numpy, scipy, scikit-image, PIL.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
import re
import string
from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from scipy import ndimage

from data_retrieval.partial_attacks import PARTIAL_ATTACK_IDS, PARTIAL_ATTACKS, PartialCopy, partial_family

# The seed's parameter grid (seed-repository.md, section 6). Changing it changes ATTACK_IDS.
GAUSSIAN_NOISE_VARS = (0.01, 0.02, 0.05)
SALT_PEPPER_AMOUNTS = (0.05, 0.1, 0.15)
SPECKLE_NOISE_VARS = (0.01, 0.02, 0.05)
FILTER_SIZES = (3, 5, 7)
JPEG_QUALITIES = (10, 50, 90)
SCALING_RATIOS = (0.4, 0.8, 1.2, 1.6)
CROP_PERCENTS = (5, 10, 20, 40, 60)
ROTATION_ANGLES = (5, 10, 20, 40, 60)
SHEAR_ANGLES = (1, 2, 5, 10, 20)
ENHANCE_FACTORS = (0.5, 0.66, 1.5, 2)
TEXT_LENGTHS = (10, 20, 30, 40, 50)

#: Impact (the seed's font, not redistributable) is tall and narrow; DejaVu Sans Bold is drawn at
#: FONT_SCALE x the seed's size and squeezed horizontally by CONDENSE, so the text covers as much
#: of the picture as the seed's: its Impact covered 0.160 at 50 characters where DejaVu at 0.8 x
#: covered 0.122, and these values raise our coverage by that ratio (0.112 -> 0.145 on BSDS-sized
#: grey pictures, landscape and portrait; tests/data_retrieval/test_attacks.py).
FONT_SCALE = 1.12
CONDENSE = 0.68
FONT_FILE = "DejaVuSans-Bold.ttf"
TEXT_CHARACTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits

Attack = Callable[[Image.Image, np.random.Generator], Image.Image]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any values, stable across processes and Python runs (unlike hash())."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


# ----------------------------------------------------------------------------- pixel helpers
def _to_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / np.float32(255.0)


def _to_image(arr: np.ndarray) -> Image.Image:
    """Float image in [0, 1] to uint8 RGB, rounding like skimage's img_as_ubyte."""
    return Image.fromarray(np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")


def gaussian_noise(img: Image.Image, rng: np.random.Generator, var: float) -> Image.Image:
    """skimage random_noise(mode='gaussian'): add N(0, var) to the [0, 1] image, clip."""
    x = _to_float(img)
    return _to_image(x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(math.sqrt(var)))


def salt_pepper_noise(img: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """skimage random_noise(mode='s&p'): each value flipped with probability `amount`, half to 0, half to 255."""
    x = np.array(img, dtype=np.uint8)
    flipped = rng.random(x.shape, dtype=np.float32) < amount
    salted = rng.random(x.shape, dtype=np.float32) < 0.5
    x[flipped & salted] = 255
    x[flipped & ~salted] = 0
    return Image.fromarray(x, "RGB")


def speckle_noise(img: Image.Image, rng: np.random.Generator, var: float) -> Image.Image:
    """skimage random_noise(mode='speckle'): x + x * N(0, var), clip."""
    x = _to_float(img)
    return _to_image(x + x * rng.standard_normal(x.shape, dtype=np.float32) * np.float32(math.sqrt(var)))


def gaussian_filter(img: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """cv2.GaussianBlur(k x k, sigma = 0.6 * ((k - 1) / 2 - 1) + 1), reflect-101 borders."""
    sigma = 0.6 * ((size - 1) * 0.5 - 1) + 1
    x = np.asarray(img, dtype=np.float32)
    out = ndimage.gaussian_filter(
        x, sigma=(sigma, sigma, 0), truncate=((size - 1) / 2) / sigma, mode="mirror"
    )
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def median_filter(img: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """cv2.medianBlur(k): exact k x k median per channel, edge-replicated borders."""
    if size <= 3:  # PIL's rank filter is fastest for small kernels, skimage's histogram one beyond
        return img.filter(ImageFilter.MedianFilter(size))
    from skimage.filters import rank  # lazily: most attacks do not need it

    x = np.asarray(img, dtype=np.uint8)
    r = size // 2
    padded = np.pad(x, ((r, r), (r, r), (0, 0)), mode="edge")
    footprint = np.ones((size, size), dtype=bool)
    out = np.stack([rank.median(padded[..., c], footprint)[r:-r, r:-r] for c in range(3)], axis=-1)
    return Image.fromarray(np.ascontiguousarray(out), "RGB")


def jpeg_compression(img: Image.Image, rng: np.random.Generator, quality: int) -> Image.Image:
    """Encode as JPEG at `quality` in memory and decode again."""
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as out:
        return out.convert("RGB")


def scaling(img: Image.Image, rng: np.random.Generator, ratio: float) -> Image.Image:
    """Bicubic resize of both sides by `ratio` (the output size changes)."""
    w, h = img.size
    return img.resize((max(1, round(ratio * w)), max(1, round(ratio * h))), Image.Resampling.BICUBIC)


def crop_box(width: int, height: int, percent: float) -> tuple[int, int, int, int]:
    """The seed's central crop box (left, top, right, bottom) for removing `percent` % of each side.

    Exactly the seed's arithmetic: centre ``w // 2 + 1``, half-size ``floor((1 - p/100) w / 2)``, so
    the kept box is ``2 floor((1 - p/100) w / 2) + 1`` pixels wide (always odd), from
    ``w // 2 - floor((1 - p/100) w / 2)``; the same vertically.
    """
    ratio = 1 - percent / 100
    mid_x, mid_y = width // 2 + 1, height // 2 + 1
    half_w, half_h = (ratio * width) // 2, (ratio * height) // 2
    box = (mid_x - half_w - 1, mid_y - half_h - 1, mid_x + half_w, mid_y + half_h)
    return tuple(int(round(v)) for v in box)


def cropping(img: Image.Image, rng: np.random.Generator, percent: float) -> Image.Image:
    """Keep the seed's central box (`crop_box`: about (100 - percent) % of each side), resize back (bicubic)."""
    w, h = img.size
    return img.crop(crop_box(w, h, percent)).resize((w, h), Image.Resampling.BICUBIC)


def rotation(img: Image.Image, rng: np.random.Generator, angle: float) -> Image.Image:
    """Rotate counter-clockwise with the canvas expanded (black corners), then resize back."""
    rotated = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return rotated.resize(img.size, Image.Resampling.BICUBIC)


def shearing(img: Image.Image, rng: np.random.Generator, angle: float) -> Image.Image:
    """torchvision F.affine(angle=0, shear=(-s, -s), bicubic) around the centre, same size."""
    w, h = img.size
    sx = sy = math.radians(-angle)
    # Inverse affine matrix of torchvision's _get_inverse_affine_matrix with rotation 0, scale 1.
    a = math.cos(-sy) / math.cos(sy)
    b = -math.cos(-sy) * math.tan(sx) / math.cos(sy)
    c = math.sin(-sy) / math.cos(sy)
    d = -math.sin(-sy) * math.tan(sx) / math.cos(sy) + 1.0
    m = [d, -b, 0.0, -c, a, 0.0]
    cx, cy = w * 0.5, h * 0.5
    m[2] += m[0] * -cx + m[1] * -cy + cx
    m[5] += m[3] * -cx + m[4] * -cy + cy
    return img.transform((w, h), Image.Transform.AFFINE, m, Image.Resampling.BICUBIC)


_ENHANCERS = {
    "contrast": ImageEnhance.Contrast,
    "color": ImageEnhance.Color,
    "brightness": ImageEnhance.Brightness,
    "sharpness": ImageEnhance.Sharpness,
}


def enhancement(img: Image.Image, rng: np.random.Generator, kind: str, factor: float) -> Image.Image:
    """PIL ImageEnhance `kind` by `factor` (1 = unchanged)."""
    return _ENHANCERS[kind](img).enhance(factor)


# ----------------------------------------------------------------------------- text
def font_path() -> Path | None:
    """A bold TrueType font: one shipped in data_retrieval/fonts/, else matplotlib's DejaVu Sans Bold."""
    shipped = sorted((Path(__file__).parent / "fonts").glob("*.ttf"))
    if shipped:
        return shipped[0]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / FONT_FILE
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=64)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The text font at `size` pixels (Pillow's built-in font if no TrueType file is found)."""
    path = font_path()
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


def text_font_size(width: int, height: int) -> int:
    """The seed's font size (40 px on a 512-wide image, other rules for small or elongated images)."""
    if width / height <= 0.5 or width / height >= 2:
        size = (
            round(40 * (width + height) / 2 / 512) - 2
            if min(width, height) >= 100
            else round(6 * (width + height) / 2 / 100) - 2
        )
    else:
        size = round(40 * width / 512) if min(width, height) >= 100 else round(6 * width / 100)
    return max(6, round(size * FONT_SCALE))


def text_overlay(img: Image.Image, rng: np.random.Generator, length: int) -> Image.Image:
    """Meme-like random text: `length` alphanumerics, white fill, black outline, at a random place that fits.

    The text is drawn on its own layer and squeezed horizontally by CONDENSE (an Impact-like
    condensed face), then pasted at a random position where it fits whole.
    """
    w, h = img.size
    chars = rng.choice(list(TEXT_CHARACTERS), size=length)
    line = 20 if h < 2 * w else max(1, math.floor(20 * w / h))
    text = "\n".join("".join(chars[i : i + line]) for i in range(0, length, line))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = text_font_size(w, h)
    while True:  # shrink the font until the text fits (tiny images)
        font = load_font(size)
        left, top, right, bottom = probe.multiline_textbbox(
            (0, 0), text, font=font, stroke_width=2, align="center"
        )
        left, top = math.floor(left), math.floor(top)
        tw, th = math.ceil(right) - left, math.ceil(bottom) - top
        cw = max(1, math.ceil(tw * CONDENSE))
        if (cw <= w - 2 and th <= h - 2) or size <= 6:
            break
        size = max(6, int(size * 0.9))
    layer = Image.new("RGBA", (max(1, tw), max(1, th)), (0, 0, 0, 0))
    ImageDraw.Draw(layer).multiline_text(
        (-left, -top), text, font=font, fill="white", stroke_fill="black", stroke_width=2, align="center"
    )
    layer = layer.resize((cw, max(1, th)), Image.Resampling.LANCZOS)
    x = int(rng.integers(1, max(2, w - cw - 1)))
    y = int(rng.integers(1, max(2, h - th - 1)))
    out = img.copy()
    out.paste(layer, (x, y), layer)
    return out


# ----------------------------------------------------------------------------- extras
def flip(img: Image.Image, rng: np.random.Generator, direction: str) -> Image.Image:
    """Mirror left-right ('horizontal') or top-bottom ('vertical')."""
    method = Image.Transpose.FLIP_LEFT_RIGHT if direction == "horizontal" else Image.Transpose.FLIP_TOP_BOTTOM
    return img.transpose(method)


def padding(img: Image.Image, rng: np.random.Generator, percent: float) -> Image.Image:
    """Add a border of `percent` % of each side in one random colour (the output is larger)."""
    w, h = img.size
    px, py = max(1, round(w * percent / 100)), max(1, round(h * percent / 100))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    out = Image.new("RGB", (w + 2 * px, h + 2 * py), colour)
    out.paste(img, (px, py))
    return out


def random_background(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A smooth random colour field (upsampled 4x4 noise), the canvas for overlays."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse, "RGB").resize(size, Image.Resampling.BICUBIC)


def overlay(img: Image.Image, rng: np.random.Generator, scale: float) -> Image.Image:
    """Paste the image, shrunk by `scale`, at a random place on another (generated) picture of the same size."""
    w, h = img.size
    out = random_background((w, h), rng)
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    x = int(rng.integers(0, w - small.width + 1))
    y = int(rng.integers(0, h - small.height + 1))
    out.paste(small, (x, y))
    return out


def combination(img: Image.Image, rng: np.random.Generator, steps: tuple[str, ...]) -> Image.Image:
    """Apply several catalogue attacks in order, each with its own stream of the same generator."""
    for step in steps:
        img = _REGISTRY[step](img, rng).convert("RGB")
    return img


# ----------------------------------------------------------------------------- registry
def _catalogue() -> dict[str, Attack]:
    """The 58 attacks in the seed's order: noise, filters, JPEG, scaling, crop, rotation, shear, enhance, text."""
    table: dict[str, Attack] = {}
    table.update({f"gaussian_noise_{v}": partial(gaussian_noise, var=v) for v in GAUSSIAN_NOISE_VARS})
    table.update({f"s&p_noise_{a}": partial(salt_pepper_noise, amount=a) for a in SALT_PEPPER_AMOUNTS})
    table.update({f"speckle_noise_{v}": partial(speckle_noise, var=v) for v in SPECKLE_NOISE_VARS})
    table.update({f"gaussian_filter_{k}x{k}": partial(gaussian_filter, size=k) for k in FILTER_SIZES})
    table.update({f"median_filter_{k}x{k}": partial(median_filter, size=k) for k in FILTER_SIZES})
    table.update({f"jpg_compression_{q}": partial(jpeg_compression, quality=q) for q in JPEG_QUALITIES})
    table.update({f"scaling_{r}": partial(scaling, ratio=r) for r in SCALING_RATIOS})
    table.update({f"cropping_{p}_and_rescaling": partial(cropping, percent=p) for p in CROP_PERCENTS})
    table.update({f"rotation_{a}_and_rescaling": partial(rotation, angle=a) for a in ROTATION_ANGLES})
    table.update({f"shearing_{s}": partial(shearing, angle=s) for s in SHEAR_ANGLES})
    for kind in _ENHANCERS:
        table.update(
            {f"{kind}_enhancement_{f}": partial(enhancement, kind=kind, factor=f) for f in ENHANCE_FACTORS}
        )
    table.update({f"text_length_{n}": partial(text_overlay, length=n) for n in TEXT_LENGTHS})
    return table


def _extras() -> dict[str, Attack]:
    """Attacks beyond the seed's catalogue: flips, padding, overlay on another picture, combinations."""
    table: dict[str, Attack] = {
        "horizontal_flip": partial(flip, direction="horizontal"),
        "vertical_flip": partial(flip, direction="vertical"),
    }
    table.update({f"padding_{p}": partial(padding, percent=p) for p in (10, 20)})
    table.update({f"overlay_{s}": partial(overlay, scale=s) for s in (0.5, 0.75)})
    combos = {
        "combo_flip_crop_20": ("horizontal_flip", "cropping_20_and_rescaling"),
        "combo_text_30_jpg_50": ("text_length_30", "jpg_compression_50"),
        "combo_rotation_10_scaling_0.8_jpg_50": (
            "rotation_10_and_rescaling",
            "scaling_0.8",
            "jpg_compression_50",
        ),
        "combo_color_1.5_crop_10_noise_0.01": (
            "color_enhancement_1.5",
            "cropping_10_and_rescaling",
            "gaussian_noise_0.01",
        ),
    }
    table.update({name: partial(combination, steps=steps) for name, steps in combos.items()})
    return table


def _partials() -> dict[str, Attack]:
    """The partial-copy attacks (data_retrieval/partial_attacks.py), image only; their boxes via apply_partial_attack."""
    return {a: (lambda img, rng, f=f: f(img, rng, font=load_font).image) for a, f in PARTIAL_ATTACKS.items()}


_REGISTRY: dict[str, Attack] = {**_catalogue(), **_extras(), **_partials()}

#: The 58 stable ids of the seed's catalogue, in catalogue order.
ATTACK_IDS: list[str] = list(_catalogue())
#: Further attacks, never part of the default 58.
EXTRA_ATTACK_IDS: list[str] = list(_extras())


def check_attack_ids(attack_ids: Iterable[str] | None) -> list[str]:
    """The ids to run (all 58 when None), each checked; ValueError lists the valid ids."""
    if attack_ids is None:
        return list(ATTACK_IDS)
    if isinstance(attack_ids, str):
        attack_ids = [attack_ids]
    ids = list(dict.fromkeys(attack_ids))
    unknown = [a for a in ids if a not in _REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown attack id(s) {unknown}; valid ids: {', '.join(ATTACK_IDS)}; extras: {', '.join(EXTRA_ATTACK_IDS)}; "
            f"partial copies: {', '.join(PARTIAL_ATTACK_IDS)}"
        )
    return ids


def apply_attack(img: Image.Image, attack_id: str, seed: int = 0) -> Image.Image:
    """The `attack_id` variant of `img` (RGB in, RGB out), identical for the same (image, id, seed)."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"apply_attack expects a PIL.Image.Image, got {type(img).__name__}")
    if attack_id not in _REGISTRY:
        check_attack_ids([attack_id])
    rng = np.random.default_rng(derive_seed(seed, attack_id))
    source = img if img.mode == "RGB" else img.convert("RGB")
    return _REGISTRY[attack_id](source, rng).convert("RGB")


def apply_partial_attack(img: Image.Image, attack_id: str, seed: int = 0) -> PartialCopy:
    """A partial-copy attack with its boxes (`PartialCopy`); its image equals ``apply_attack(img, attack_id, seed)``."""
    if attack_id not in PARTIAL_ATTACKS:
        raise ValueError(f"unknown partial-copy attack {attack_id!r}; valid: {', '.join(PARTIAL_ATTACK_IDS)}")
    rng = np.random.default_rng(derive_seed(seed, attack_id))
    copy = PARTIAL_ATTACKS[attack_id](img if img.mode == "RGB" else img.convert("RGB"), rng, font=load_font)
    return PartialCopy(copy.image.convert("RGB"), copy.query_box, copy.source_box)


def apply_attacks(
    img: Image.Image, attack_ids: Iterable[str] | None = None, seed: int = 0
) -> dict[str, Image.Image]:
    """Every requested variant of `img` (all 58 by default), keyed by attack id."""
    return {a: apply_attack(img, a, seed) for a in check_attack_ids(attack_ids)}


def split_attack_stem(stem: str) -> tuple[str, str] | None:
    """('100007', 'jpg_compression_10') from '100007_jpg_compression_10'; None when no known id ends it."""
    for attack_id in sorted(_REGISTRY, key=len, reverse=True):
        if stem.endswith("_" + attack_id) and len(stem) > len(attack_id) + 1:
            return stem[: -len(attack_id) - 1], attack_id
    return None


def attack_family(attack_id: str) -> str:
    """The family of an attack id, its parameters dropped: 'gaussian_noise_0.01' -> 'gaussian_noise',
    'cropping_20_and_rescaling' -> 'cropping', 'median_filter_3x3' -> 'median_filter', 'combo_...' -> 'combo'."""
    if attack_id.startswith("combo_"):
        return "combo"
    family = partial_family(attack_id)
    if family is not None:
        return family
    stem = attack_id.removesuffix("_and_rescaling")
    head, _, last = stem.rpartition("_")
    if head and re.fullmatch(r"[0-9.]+(x[0-9]+)?", last):
        return head
    return stem


def query_attack(image_id: str) -> str | None:
    """The attack id that made an image, from its id's last name ('demo_attacks/x_jpg_compression_10'); None if none.

    A trailing file extension (ids of files whose extension is kept) is ignored.
    """
    name = str(image_id).rpartition("/")[2]
    found = split_attack_stem(name) or split_attack_stem(name.rpartition(".")[0]) if name else None
    return found[1] if found else None


#: The families of the 58 catalogue ids, in catalogue order.
ATTACK_FAMILIES: list[str] = list(dict.fromkeys(attack_family(a) for a in ATTACK_IDS))
