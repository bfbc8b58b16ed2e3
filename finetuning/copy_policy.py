"""The copy-detection augmentation policy of the SSCD recipe: one composable list, each step with its probability.

SSCD's "advanced" set (horizontal flip, rotation by 90/180/270, text overlay, emoji-like overlay,
random resized crop, colour jitter, greyscale, blur, JPEG at a random quality) plus CopyNCE's
pasting onto / under another training image, padding and perspective. A step is
``Step(name, p, fn, covers)``: `fn(img, rng, ctx)` with a numpy Generator, `covers` the attack
families of `data_retrieval.attacks` it imitates (what an honest split must hold out).

Every random choice comes from one ``numpy.random.Generator`` per view, seeded from torch's
generator (seeded per DataLoader worker and saved in checkpoints), so ``policy(img, seed=s)`` is
deterministic and a training run is reproducible and resumable.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from data_retrieval.attacks import flip, jpeg_compression, load_font, random_background

#: A step's function: (image, generator, context) -> image. The context gives `other(rng)`, a random training image.
StepFn = Callable[[Image.Image, np.random.Generator, "Context"], Image.Image]


@dataclass
class Context:
    """What a step may need beyond the image: the output size, and other training images to paste."""

    size: int
    other: Callable[[np.random.Generator], Image.Image] | None = None

    def other_image(self, rng: np.random.Generator, like: Image.Image) -> Image.Image:
        """A random training image (or, without a pool, a smooth random colour field the size of `like`)."""
        if self.other is not None:
            return self.other(rng).convert("RGB")
        return random_background(like.size, rng)


@dataclass(frozen=True)
class Step:
    """One augmentation: applied with probability `p`; `covers` lists the catalogue families it imitates."""

    name: str
    p: float
    fn: StepFn = field(repr=False, compare=False)
    covers: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- geometry
def hflip(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Mirror left-right (the catalogue's horizontal flip)."""
    return flip(img, rng, "horizontal")


def rotate90(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Rotate by 90, 180 or 270 degrees (counter-clockwise), chosen uniformly."""
    ops = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    return img.transpose(ops[int(rng.integers(3))])


def random_resized_crop(
    img: Image.Image, rng: np.random.Generator, ctx: Context, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Image.Image:
    """torchvision's RandomResizedCrop (area share in `scale`, log-uniform aspect in `ratio`) to size x size."""
    w, h = img.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:  # central crop at the closest allowed aspect
        if w / h < ratio[0]:
            cw, ch = w, round(w / ratio[0])
        elif w / h > ratio[1]:
            cw, ch = round(h * ratio[1]), h
        else:
            cw, ch = w, h
        x, y = (w - cw) // 2, (h - ch) // 2
    return img.resize((ctx.size, ctx.size), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))


def padding(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """A border of 5-30 % on each side (drawn per side), one random colour: the output is larger."""
    w, h = img.size
    left, right = (round(w * rng.uniform(0.05, 0.3)) for _ in range(2))
    top, bottom = (round(h * rng.uniform(0.05, 0.3)) for _ in range(2))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    out = Image.new("RGB", (w + left + right, h + top + bottom), colour)
    out.paste(img, (left, top))
    return out


def perspective(img: Image.Image, rng: np.random.Generator, ctx: Context, distortion=(0.1, 0.4)) -> Image.Image:
    """Move each corner inwards by up to `distortion` x half the side (torchvision's RandomPerspective); same size."""
    w, h = img.size
    d = rng.uniform(*distortion)
    dx, dy = d * w / 2, d * h / 2
    start = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    signs = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    end = [(x + sx * rng.uniform(0, dx), y + sy * rng.uniform(0, dy)) for (x, y), (sx, sy) in zip(start, signs, strict=True)]
    # PIL maps output pixels to input pixels: coefficients from the distorted corners back to the originals
    a = []
    b = []
    for (x, y), (u, v) in zip(end, start, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    coeffs = np.linalg.solve(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return img.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC)


# ----------------------------------------------------------------------------- overlays and pastes
def _random_text(rng: np.random.Generator, n: int) -> str:
    chars = string.ascii_letters + string.digits + "      !?"
    return "".join(chars[int(i)] for i in rng.integers(0, len(chars), n))


def overlay_text(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Random text (font 10-30 % of the height, opacity 0.1-1, random colour and place), as SSCD's OverlayText."""
    w, h = img.size
    font = load_font(max(6, round(h * rng.uniform(0.1, 0.3))))
    text = _random_text(rng, int(rng.integers(3, 15)))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    alpha = int(255 * rng.uniform(0.1, 1.0))
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    x, y = rng.uniform(0, 0.8) * w, rng.uniform(0, 0.8) * h
    draw.text((x, y), text, font=font, fill=(*colour, alpha))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def overlay_emoji(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """An emoji-like face (disc, two eyes, a mouth) of 10-50 % of the shorter side, opacity 0.7-1, at a random place.

    No emoji font ships with the library, so the shape is drawn; it plays the role of SSCD's OverlayEmoji.
    """
    w, h = img.size
    s = max(4, round(min(w, h) * rng.uniform(0.1, 0.5)))
    face = tuple(int(v) for v in rng.integers(0, 256, 3))
    layer = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = int(255 * rng.uniform(0.7, 1.0))
    draw.ellipse((0, 0, s - 1, s - 1), fill=(*face, alpha))
    e = max(1, s // 8)
    for cx in (s * 0.33, s * 0.67):
        draw.ellipse((cx - e, s * 0.35 - e, cx + e, s * 0.35 + e), fill=(0, 0, 0, alpha))
    draw.arc((s * 0.25, s * 0.35, s * 0.75, s * 0.8), 20, 160, fill=(0, 0, 0, alpha), width=max(1, s // 16))
    x, y = int(rng.integers(0, max(1, w - s + 1))), int(rng.integers(0, max(1, h - s + 1)))
    out = img.convert("RGBA")
    out.alpha_composite(layer, (x, y))
    return out.convert("RGB")


def paste_onto(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """The image shrunk to 30-90 % of another training image's size, pasted at a random place on it."""
    bg = ctx.other_image(rng, img).copy()
    bw, bh = bg.size
    scale = rng.uniform(0.3, 0.9) * min(bw / img.width, bh / img.height)
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)
    bg.paste(small, (int(rng.integers(0, bw - small.width + 1)), int(rng.integers(0, bh - small.height + 1))))
    return bg


def paste_under(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Another training image, shrunk to 10-40 % of this one's size, pasted over it at a random place."""
    fg = ctx.other_image(rng, img)
    scale = rng.uniform(0.1, 0.4) * min(img.width / fg.width, img.height / fg.height)
    small = fg.resize((max(1, round(fg.width * scale)), max(1, round(fg.height * scale))), Image.Resampling.BICUBIC)
    out = img.copy()
    out.paste(small, (int(rng.integers(0, img.width - small.width + 1)), int(rng.integers(0, img.height - small.height + 1))))
    return out


# ----------------------------------------------------------------------------- photometric
def color_jitter(img: Image.Image, rng: np.random.Generator, ctx: Context, s=(0.8, 0.8, 0.8, 0.2)) -> Image.Image:
    """Brightness, contrast, saturation factors in [1-s, 1+s] and a hue shift in [-h, h], in random order."""
    b, c, sat, hue = s
    ops = [
        lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(max(0, 1 - b), 1 + b)),
        lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(max(0, 1 - c), 1 + c)),
        lambda im: ImageEnhance.Color(im).enhance(rng.uniform(max(0, 1 - sat), 1 + sat)),
        lambda im: _shift_hue(im, rng.uniform(-hue, hue)),
    ]
    for k in rng.permutation(len(ops)):
        img = ops[int(k)](img)
    return img


def _shift_hue(img: Image.Image, shift: float) -> Image.Image:
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(shift * 255)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def greyscale(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Luminance copied to the three channels."""
    return img.convert("L").convert("RGB")


def blur(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Gaussian blur of radius 1-5 px at 224 px (scaled with the training size), as SSCD's strong blur."""
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 5.0) * ctx.size / 224))


def jpeg(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
    """Encode as JPEG at a quality drawn from 0-100, decode again (the catalogue's JPEG round trip)."""
    return jpeg_compression(img, rng, int(rng.integers(0, 101)))


def catalogue_attack(attack_ids: Sequence[str]) -> StepFn:
    """A step applying one of the given `data_retrieval.attacks` ids (to train on part of the catalogue)."""
    from data_retrieval.attacks import apply_attack, check_attack_ids

    ids = check_attack_ids(list(attack_ids))

    def fn(img: Image.Image, rng: np.random.Generator, ctx: Context) -> Image.Image:
        return apply_attack(img, ids[int(rng.integers(len(ids)))], int(rng.integers(2**31 - 1)))

    return fn


# ----------------------------------------------------------------------------- the policy
def sscd_steps(crop_scale: tuple[float, float] = (0.08, 1.0)) -> list[Step]:
    """SSCD's advanced set with CopyNCE's pastes, padding and perspective, in application order."""

    def rrc(img, rng, ctx):
        return random_resized_crop(img, rng, ctx, scale=crop_scale)

    return [
        Step("hflip", 0.5, hflip),
        Step("rotate90", 0.05, rotate90, ("rotation",)),
        Step("overlay_text", 0.1, overlay_text, ("text_length",)),
        Step("overlay_emoji", 0.2, overlay_emoji),
        Step("paste_onto", 0.1, paste_onto),
        Step("paste_under", 0.1, paste_under),
        Step("padding", 0.05, padding),
        Step("perspective", 0.1, perspective, ("shearing",)),
        Step("random_resized_crop", 1.0, rrc, ("cropping", "scaling")),
        Step("color_jitter", 0.8, color_jitter, ("brightness_enhancement", "contrast_enhancement", "color_enhancement")),
        Step("greyscale", 0.2, greyscale, ("color_enhancement",)),
        Step("blur", 0.5, blur, ("gaussian_filter",)),
        Step("jpeg", 0.2, jpeg, ("jpg_compression",)),
    ]


STEP_NAMES = tuple(s.name for s in sscd_steps())


class CopyPolicy:
    """Applies `steps` in order, each with its probability, then resizes to size x size and normalises.

    ``policy(img)`` draws the view's seed from torch's generator; ``policy.augment(img, seed)`` is
    the PIL image for a given seed (deterministic). `bind(pool)` gives the pasting steps other
    training images: `pool(i)` returns image i of `n` (the training dataset).
    """

    def __init__(
        self,
        size: int = 224,
        steps: Sequence[Step] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.size = int(size)
        self.steps = list(steps) if steps is not None else sscd_steps()
        self.mean, self.std = mean, std
        self._pool: Callable[[int], Image.Image] | None = None
        self._n = 0

    def bind(self, pool: Callable[[int], Image.Image], n: int) -> CopyPolicy:
        """Let the pasting steps draw other images from `pool(0..n-1)`."""
        self._pool, self._n = pool, int(n)
        return self

    def _other(self, rng: np.random.Generator) -> Image.Image:
        return self._pool(int(rng.integers(self._n)))

    def covers(self) -> list[str]:
        """The catalogue attack families that some step of this policy imitates (sorted)."""
        return sorted({f for s in self.steps if s.p > 0 for f in s.covers})

    def augment(self, img: Image.Image, seed: int) -> Image.Image:
        """The augmented PIL image (size x size) for `seed`."""
        rng = np.random.default_rng(seed)
        ctx = Context(self.size, self._other if self._pool is not None and self._n else None)
        img = img.convert("RGB")
        for step in self.steps:
            if step.p >= 1 or rng.random() < step.p:
                img = step.fn(img, rng, ctx).convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.Resampling.BICUBIC)
        return img

    def to_tensor(self, img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        if self.mean is not None and self.std is not None:
            x = (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)
        return x

    def __call__(self, img: Image.Image) -> torch.Tensor:
        seed = int(torch.randint(2**62, ()).item())
        return self.to_tensor(self.augment(img, seed))

    def describe(self) -> list[dict]:
        """The steps as plain data (name, probability, families covered), for the run's split file."""
        return [{"name": s.name, "p": s.p, "covers": list(s.covers)} for s in self.steps]


def make_policy(
    size: int,
    mean=None,
    std=None,
    probabilities: dict[str, float] | None = None,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    train_attacks: Sequence[str] | None = None,
    train_attack_p: float = 0.3,
) -> CopyPolicy:
    """The SSCD policy with some probabilities changed (``{"paste_onto": 0.0}`` drops a step).

    `train_attacks` adds a step applying catalogue attacks (covering their families) before the crop.
    """
    steps = sscd_steps(tuple(crop_scale))
    unknown = set(probabilities or {}) - set(STEP_NAMES)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; valid: {', '.join(STEP_NAMES)}")
    for name, p in (probabilities or {}).items():
        if not 0 <= p <= 1:
            raise ValueError(f"probability of {name} must be in [0, 1], got {p}")
    steps = [replace(s, p=float((probabilities or {}).get(s.name, s.p))) for s in steps]
    if train_attacks:
        from data_retrieval.attacks import attack_family

        families = tuple(sorted({attack_family(a) for a in train_attacks}))
        at = next(i for i, s in enumerate(steps) if s.name == "random_resized_crop")
        steps.insert(at, Step("catalogue_attack", train_attack_p, catalogue_attack(train_attacks), families))
    return CopyPolicy(size, steps, mean, std)


class TwoCopies:
    """Two independent draws of the same policy: SSCD's positive pair (RepeatedAugmentation, copies=2)."""

    def __init__(self, policy: CopyPolicy) -> None:
        self.policy = policy

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(img), self.policy(img)
