"""The embedded demo set, built offline from photographs that installed packages ship.

    python -m data_retrieval.demo [--root Datasets] [--distractors 5000]

- ``Original``: about 30 sample photographs of scikit-image, scikit-learn and matplotlib,
  downscaled to at most 512 px, named without ``_`` (``astronaut.png``).
- ``Attacks``: the 58 attacks of every original (``astronaut_jpg_compression_10.jpg``, JPEG quality 95).
- ``Negatives``: queries whose original is not in the database, of two kinds (each >= 1,000, so
  a 1 % FPR figure per kind rests on at least 1,000 negatives): *photo* = the 58 attacks of the
  held-out photographs plus crops of them (``flower-crop12.jpg``); *procedural* = the 58 attacks of
  procedural pictures plus plain procedural pictures (``procedural7.jpg``), none of them originals
  or distractors.
- ``Distractors``: deterministic procedural pictures (gradients, shapes, textures, noise, text;
  ``123.jpg``) and tiles of photographs that are never originals nor negatives (``tower-tile5.jpg``).

`data_retrieval.datasets.image_generator` names the generator of every demo image from these
file-name rules ("procedural", or "photo:<photograph>"): reports split every metric by the kind of
negative, and score normalisation refuses a background that shares a generator with its negatives.

Everything is deterministic for a given seed and resumable (existing files are kept).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from data_retrieval.attacks import ATTACK_IDS, TEXT_CHARACTERS, check_attack_ids, derive_seed, load_font
from data_retrieval.datasets import dataset_folder
from data_retrieval.generate_attacks import (
    AttackJob,
    plan_jobs,
    remove_stale_temporaries,
    run_jobs,
    save_atomic,
)
from helpers import cli
from helpers.images import load_image
from helpers.paths import DATASETS_DIR

# Editable defaults (each is also a command-line flag).
N_DISTRACTORS = 4000  # procedural distractors
N_PHOTO_DISTRACTORS = 1000  # tiles of DISTRACTOR_PHOTOS (5,000 distractors in all by default)
SEED = 0
MAX_SIDE = 512  # originals are downscaled so that their longer side is at most this
DISTRACTOR_SIDE = 256
N_SYNTHETIC_NEGATIVES = 5  # procedural originals attacked into negatives, on top of the held-out photos
#: Crops of the held-out photos: 290 attacks + 1,500 crops = 1,790 photo negatives. Plain procedural
#: pictures: 290 attacks + 1,300 = 1,590 procedural negatives. Each kind keeps >= 1,000 negatives
#: in the test split of the training protocol (finetuning/protocol.py: 3 of the 5 photographs).
N_PHOTO_NEGATIVES = 1500
N_PROCEDURAL_NEGATIVES = 1300
#: Attacked queries are written as JPEG (quality 95): 2x less CPU than PNG (the PNG encoder dominates the
#: build) and 4x less disk. generate_attacks.py keeps the seed's lossless PNG for the real datasets.
QUERY_EXT = ".jpg"

#: (package, path inside the package, stem). Stems carry no '_' (the ground-truth rule splits on it).
#: Left out: the chessboards (trivial patterns), motorcycle_right (a near-copy of motorcycle_left),
#: and the tiny multipage/GIF test files.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("skimage", "data/astronaut.png", "astronaut"),
    ("skimage", "data/brick.png", "brick"),
    ("skimage", "data/camera.png", "camera"),
    ("skimage", "data/cell.png", "cell"),
    ("skimage", "data/chelsea.png", "chelsea"),
    ("skimage", "data/clock_motion.png", "clock"),
    ("skimage", "data/coffee.png", "coffee"),
    ("skimage", "data/coins.png", "coins"),
    ("skimage", "data/color.png", "color"),
    ("skimage", "data/grass.png", "grass"),
    ("skimage", "data/gravel.png", "gravel"),
    ("skimage", "data/horse.png", "horse"),
    ("skimage", "data/hubble_deep_field.jpg", "hubble"),
    ("skimage", "data/ihc.png", "ihc"),
    ("skimage", "data/logo.png", "skimagelogo"),
    ("skimage", "data/microaneurysms.png", "microaneurysms"),
    ("skimage", "data/moon.png", "moon"),
    ("skimage", "data/motorcycle_left.png", "motorcycle"),
    ("skimage", "data/page.png", "page"),
    ("skimage", "data/phantom.png", "phantom"),
    ("skimage", "data/retina.jpg", "retina"),
    ("skimage", "data/rocket.jpg", "rocket"),
    ("skimage", "data/text.png", "text"),
    ("sklearn", "datasets/images/china.jpg", "china"),
    ("sklearn", "datasets/images/flower.jpg", "flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "gracehopper"),
    ("matplotlib", "mpl-data/sample_data/logo2.png", "matplotliblogo"),
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "present"),
)

#: The demo's queries: the 58 catalogue attacks and one id of each partial-copy family (boxes in
#: ``.boxes/``; 6 more files per original keep `make demo` about 10 % longer, not 20 %).
DEMO_PARTIAL_IDS: tuple[str, ...] = ("paste_photo_35", "meme_caption_25", "collage_2x2", "screenshot_frame_50",
                                     "partial_crop_45", "turned_meme_flip")
DEMO_ATTACK_IDS: tuple[str, ...] = (*ATTACK_IDS, *DEMO_PARTIAL_IDS)

#: Photographs kept out of the database: their attacks and crops are negative queries.
HELD_OUT = ("coins", "flower", "gravel", "moon", "rocket")

#: Photographs that only give distractor tiles (never originals, never negatives): the ones the
#: installed gradio package ships (a requirement of the app). A missing one is skipped with a warning.
#: Left out: cheetah1 (a crop of cheetah), the logos and icons.
DISTRACTOR_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("gradio", "media_assets/images/cheetah.jpg", "cheetah"),
    ("gradio", "test_data/cheetah2.jpg", "cheetahtwo"),
    ("gradio", "media_assets/images/groot.jpeg", "groot"),
    ("gradio", "media_assets/images/tower.jpg", "tower"),
    ("gradio", "media_assets/images/lion.jpg", "lion"),
)

log = logging.getLogger(__name__)


def package_file(package: str, relative: str) -> Path | None:
    """The file `relative` inside installed `package` (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def available_photos(stems: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(stem, file) of the packaged photographs present on disk, in catalogue order (`stems` selects)."""
    if stems is not None:
        known = {s for _, _, s in PHOTOS}
        unknown = sorted(set(stems) - known)
        if unknown:
            raise ValueError(f"unknown demo photo(s) {unknown}; valid: {', '.join(s for _, _, s in PHOTOS)}")
    found = []
    for package, relative, stem in PHOTOS:
        if stems is not None and stem not in stems:
            continue
        path = package_file(package, relative)
        if path is None:
            log.warning("demo photo %s (%s/%s) is not installed; skipped", stem, package, relative)
        else:
            found.append((stem, path))
    return found


def distractor_photos() -> list[tuple[str, Path]]:
    """(stem, file) of the `DISTRACTOR_PHOTOS` present on disk."""
    found = []
    for package, relative, stem in DISTRACTOR_PHOTOS:
        path = package_file(package, relative)
        if path is None:
            log.warning("distractor photo %s (%s/%s) is not installed; skipped", stem, package, relative)
        else:
            found.append((stem, path))
    return found


def downscale(img: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """`img` shrunk (Lanczos) so that its longer side is at most `max_side`."""
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    ratio = max_side / max(w, h)
    return img.resize((max(1, round(w * ratio)), max(1, round(h * ratio))), Image.Resampling.LANCZOS)


# ----------------------------------------------------------------------------- procedural pictures
def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A background: gradient, radial, waves, smooth noise or stripes (drawn at 1/4 size, then upsampled)."""
    sw, sh = max(2, w // 4), max(2, h // 4)
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32)
    x, y = x / sw, y / sh
    c1, c2 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    kind = int(rng.integers(5))
    resample = Image.Resampling.BILINEAR
    if kind == 0:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * x + np.sin(a) * y)[..., None]
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == 1:  # radial gradient around a random centre
        cx, cy = rng.uniform(0, 1, 2)
        t = np.clip(np.sqrt((x - cx) ** 2 + (y - cy) ** 2)[..., None] / rng.uniform(0.3, 1.2), 0, 1)
    elif kind == 2:  # interfering waves, one pattern per channel
        f = rng.uniform(1, 12, (3, 2)).astype(np.float32)
        p = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (f[:, 0] * x[..., None] + f[:, 1] * y[..., None]) + p)
    elif kind == 3:  # smooth colour noise (upsampled coarse grid)
        g = int(rng.integers(3, 12))
        coarse = Image.fromarray(rng.integers(0, 256, (g, g, 3), dtype=np.uint8), "RGB")
        return coarse.resize((w, h), Image.Resampling.BICUBIC)
    else:  # stripes or checker, kept sharp
        f = rng.uniform(2, 20)
        s = (
            np.sin(2 * np.pi * f * x)
            if rng.random() < 0.5
            else np.sin(2 * np.pi * f * x) * np.sin(2 * np.pi * f * y)
        )
        t = (s > 0).astype(np.float32)[..., None]
        resample = Image.Resampling.NEAREST
    small = Image.fromarray((c1 + (c2 - c1) * t).astype(np.uint8), "RGB")
    return small.resize((w, h), resample)


def procedural_image(seed: int, size: int = DISTRACTOR_SIDE) -> Image.Image:
    """A deterministic synthetic picture, about `size` px, distinct for every seed."""
    rng = np.random.default_rng(seed)
    w = size
    h = int(size * rng.choice([0.75, 1.0, 1.0, 0.8, 0.66]))  # the longer side is `size`
    if rng.random() < 0.5:
        w, h = h, w
    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 12))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, x1 = sorted(rng.integers(-w // 4, w + w // 4, 2).tolist())
        y0, y1 = sorted(rng.integers(-h // 4, h + h // 4, 2).tolist())
        shape = int(rng.integers(5))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 2:
            points = [
                (int(a), int(b)) for a, b in zip(rng.integers(0, w, 5), rng.integers(0, h, 5), strict=True)
            ]
            draw.polygon(points[: int(rng.integers(3, 6))], fill=colour)
        elif shape == 3:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 12)))
        else:
            draw.arc(
                (x0, y0, x1, y1), 0, int(rng.integers(30, 360)), fill=colour, width=int(rng.integers(1, 8))
            )
    if rng.random() < 0.3:  # a word
        word = "".join(rng.choice(list(TEXT_CHARACTERS), size=int(rng.integers(3, 12))))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        xy = (int(rng.integers(0, w // 2)), int(rng.integers(0, h - 20)))
        draw.text(xy, word, fill=colour, font=load_font(int(rng.integers(12, 40))))
    if rng.random() < 0.3:  # grain: monochrome noise of random strength, in 2x2 blocks (4x fewer draws)
        sigma = float(rng.uniform(3, 25))
        grain = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 1), dtype=np.float32) * np.float32(sigma)
        grain = grain.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
        img = Image.fromarray(
            np.clip(np.asarray(img, dtype=np.float32) + grain, 0, 255).astype(np.uint8), "RGB"
        )
    elif rng.random() < 0.25:
        img = img.filter(ImageFilter.BoxBlur(float(rng.uniform(0.5, 3))))
    return img


def _write_distractors(job: tuple[Path, int, Sequence[int]]) -> int:
    """Write one chunk of distractors (pool worker): returns how many were written."""
    folder, seed, indices = job
    written = 0
    for i in indices:
        path = folder / f"{i}.jpg"
        if not path.exists():
            save_atomic(procedural_image(derive_seed(seed, "distractor", i)), path)
            written += 1
    return written


def write_distractors(
    folder: Path, n: int, seed: int = SEED, workers: int | None = None, chunk: int = 100
) -> int:
    """Write distractors 0.jpg .. (n-1).jpg into `folder` (existing ones kept); returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    present = set(os.listdir(folder))
    todo = [i for i in range(n) if f"{i}.jpg" not in present]
    jobs = [(folder, seed, todo[i : i + chunk]) for i in range(0, len(todo), chunk)]
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs)))
    with tqdm(total=len(todo), desc="distractors", unit="img", disable=not todo) as bar:
        if workers == 1:
            for job in jobs:
                bar.update(_write_distractors(job))
            return bar.n
        with multiprocessing.get_context().Pool(workers) as pool:
            for count in pool.imap_unordered(_write_distractors, jobs):
                bar.update(count)
        return bar.n


def photo_crop(img: Image.Image, rng: np.random.Generator, side: int = DISTRACTOR_SIDE) -> Image.Image:
    """A random crop of 20-60 % of each side of `img` (aspect 3:4 to 4:3, mirrored half the time), at most `side` px."""
    w, h = img.size
    frac = float(rng.uniform(0.2, 0.6))
    aspect = float(rng.uniform(0.75, 4 / 3))
    cw = min(w, max(32, round(frac * w * aspect**0.5)))
    ch = min(h, max(32, round(frac * h / aspect**0.5)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return downscale(crop, side)


def write_photo_crops(
    sources: Sequence[tuple[str, Path]], folder: Path, n: int, tag: str, seed: int = SEED
) -> int:
    """Crops ``{stem}-{tag}{i}.jpg`` (i < n, photos taken in turn) into `folder`; returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    if not sources or n <= 0:
        return 0
    present = set(os.listdir(folder))
    todo = [i for i in range(n) if f"{sources[i % len(sources)][0]}-{tag}{i}.jpg" not in present]
    loaded: dict[str, Image.Image] = {}
    for i in tqdm(todo, desc=f"photo {tag}s", unit="img", disable=len(todo) < 50):
        stem, path = sources[i % len(sources)]
        if stem not in loaded:
            loaded[stem] = load_image(path)
        rng = np.random.default_rng(derive_seed(seed, "photo", tag, stem, i))
        save_atomic(photo_crop(loaded[stem], rng), folder / f"{stem}-{tag}{i}.jpg")
    return len(todo)


def write_procedural(folder: Path, n: int, seed: int = SEED, stream: str = "plain-negative") -> int:
    """Plain procedural pictures ``procedural{i}.jpg`` (their own seed stream); returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    present = set(os.listdir(folder))
    todo = [i for i in range(n) if f"procedural{i}.jpg" not in present]
    for i in tqdm(todo, desc="procedural negatives", unit="img", disable=len(todo) < 50):
        save_atomic(procedural_image(derive_seed(seed, stream, i)), folder / f"procedural{i}.jpg")
    return len(todo)


def write_originals(photos: Sequence[tuple[str, Path]], folder: Path, max_side: int = MAX_SIDE) -> list[Path]:
    """Save each photo as RGB PNG `folder/{stem}.png`, downscaled (kept if it exists); returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem, source in photos:
        path = folder / f"{stem}.png"
        if not path.exists():
            save_atomic(downscale(load_image(source), max_side), path)
        out.append(path)
    return out


def write_synthetic_originals(folder: Path, n: int, seed: int = SEED, max_side: int = MAX_SIDE) -> list[Path]:
    """Procedural negative originals `synthetic{i}.png` (a seed stream apart from the distractors')."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"synthetic{i}.png"
        if not path.exists():
            save_atomic(procedural_image(derive_seed(seed, "negative", i), size=max_side * 3 // 4), path)
        out.append(path)
    return out


def build_demo(
    root: Path = DATASETS_DIR,
    n_distractors: int = N_DISTRACTORS,
    seed: int = SEED,
    workers: int | None = None,
    photos: Sequence[str] | None = None,
    attack_ids: Sequence[str] | None = None,
    n_synthetic_negatives: int = N_SYNTHETIC_NEGATIVES,
    n_photo_distractors: int = N_PHOTO_DISTRACTORS,
    n_photo_negatives: int = N_PHOTO_NEGATIVES,
    n_procedural_negatives: int = N_PROCEDURAL_NEGATIVES,
) -> dict[str, int]:
    """Build (or complete) the demo set under `root`; returns the number of files per folder.

    `photos` (stems of PHOTOS) and `attack_ids` restrict the set, for quick tests.
    """
    counts = {
        "n_distractors": n_distractors, "n_synthetic_negatives": n_synthetic_negatives,
        "n_photo_distractors": n_photo_distractors, "n_photo_negatives": n_photo_negatives,
        "n_procedural_negatives": n_procedural_negatives,
    }
    if any(v < 0 for v in counts.values()):
        raise ValueError(f"counts must be >= 0, got {', '.join(f'{k}={v}' for k, v in counts.items())}")
    ids = check_attack_ids(attack_ids if attack_ids is not None else DEMO_ATTACK_IDS)
    root = Path(root)
    folders = {
        "Original": dataset_folder("demo_original", root),
        "Attacks": dataset_folder("demo_attacks", root),
        "Negatives": dataset_folder("demo_negatives", root),
        "Distractors": dataset_folder("demo_distractors", root),
    }
    sources = (
        folders["Original"].parent / "NegativeSources"
    )  # originals of the negatives, outside the database
    found = available_photos(photos)
    kept = [(s, p) for s, p in found if s not in HELD_OUT]
    held = [(s, p) for s, p in found if s in HELD_OUT]
    originals = write_originals(kept, folders["Original"])
    negative_sources = write_originals(held, sources) + write_synthetic_originals(
        sources, n_synthetic_negatives, seed
    )

    jobs: list[AttackJob] = []
    for paths, kind in ((originals, "Attacks"), (negative_sources, "Negatives")):
        folders[kind].mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folders[kind])
        jobs += plan_jobs(paths, folders[kind], ids, seed, QUERY_EXT)[0]
    jobs.sort(key=lambda j: -len(j.attack_ids))
    for job, _, error in run_jobs(jobs, workers, desc="demo attacks"):
        if error is not None:
            log.warning("demo attack of %s failed: %s", job.path, error)
    write_distractors(folders["Distractors"], n_distractors, seed, workers)
    write_photo_crops(distractor_photos(), folders["Distractors"], n_photo_distractors, "tile", seed)
    write_photo_crops(held, folders["Negatives"], n_photo_negatives, "crop", seed)
    write_procedural(folders["Negatives"], n_procedural_negatives, seed)
    return {
        name: sum(1 for p in folder.iterdir() if not p.name.startswith("."))
        for name, folder in folders.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description="Build the embedded demo set (no network).")
    parser.add_argument("--root", type=lambda t: Path(cli.folder(t)), default=DATASETS_DIR, help="datasets root (default: Datasets/)")
    parser.add_argument(
        "--distractors", type=cli.int_in(0, 10_000_000), default=N_DISTRACTORS, help="number of procedural distractors"
    )
    parser.add_argument("--photo-distractors", type=cli.int_in(0, 10_000_000), default=N_PHOTO_DISTRACTORS,
                        help="number of distractor tiles of photographs never used as originals or negatives")
    parser.add_argument("--seed", type=cli.int_in(0, 2**63 - 1), default=SEED, help="random seed (same seed, same files)")
    parser.add_argument("--workers", type=cli.int_in(1, cli.PER_CORE * (os.cpu_count() or 1)), default=None, help="processes (default: every core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    start = time.perf_counter()
    counts = build_demo(args.root, args.distractors, args.seed, args.workers,
                        n_photo_distractors=args.photo_distractors)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main)
