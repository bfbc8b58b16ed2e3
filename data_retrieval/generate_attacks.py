"""Write every attack of every image of a folder: ``OUT/{stem}_{attack_id}.png``, on all cores, resumable.

    python data_retrieval/generate_attacks.py Datasets/BSDS500/Original Datasets/BSDS500/Attacks

Outputs that exist are skipped (a rerun writes nothing); each file is written under a hidden
temporary name and renamed, so a killed run never leaves a truncated PNG behind. Unreadable
images are logged and skipped with the reason. A fixed ``--seed`` gives identical bytes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from data_retrieval.attacks import apply_attack, apply_partial_attack, check_attack_ids, derive_seed
from data_retrieval.datasets import load_dataset
from data_retrieval.partial_attacks import PARTIAL_ATTACKS, write_boxes
from helpers import cli
from helpers.atomic import TMP_PREFIX, save_image
from helpers.images import BadImageError, load_image

# Editable defaults (each is also a command-line flag).
ATTACKS: list[str] | None = None  # None: the 58 ids of the seed's catalogue
SEED = 0
WORKERS: int | None = None  # None: every core
PNG_COMPRESS_LEVEL = 1  # lossless either way; 1 is ~3x faster to write than PIL's default 6
JPEG_QUALITY = 95  # only when writing .jpg outputs (the demo set)

log = logging.getLogger(__name__)
TMP_MARK = TMP_PREFIX  # helpers.atomic names its temporary files ".tmp-<name>.<random>"


@dataclass
class AttackReport:
    """What a run did: images seen, files written, files already there, images skipped with reasons."""

    n_images: int = 0
    written: int = 0
    existing: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    not_listed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.n_images} images: {self.written} attacks written, {self.existing} already there, "
            f"{len(self.bad)} unreadable images skipped, {len(self.not_listed)} other files ignored"
        )


def output_name(stem: str, attack_id: str, ext: str = ".png") -> str:
    """File name of one attack: '{stem}_{attack_id}{ext}'."""
    return f"{stem}_{attack_id}{ext}"


def save_atomic(img: Image.Image, path: Path, png_compress_level: int = PNG_COMPRESS_LEVEL) -> None:
    """Write `img` to a hidden temporary file next to `path`, then rename it into place."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        save_image(img, path, format="JPEG", quality=JPEG_QUALITY)
    else:
        save_image(img, path, format="PNG", compress_level=png_compress_level)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files a killed run left in `folder`; returns how many."""
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and TMP_MARK in p.name]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@dataclass(frozen=True)
class AttackJob:
    """One image and the attacks of it still missing in `out_dir`."""

    path: Path
    stem: str
    attack_ids: tuple[str, ...]
    out_dir: Path
    seed: int
    ext: str = ".png"


def plan_jobs(
    paths: Sequence[Path], out_dir: Path, attack_ids: Sequence[str], seed: int = SEED, ext: str = ".png"
) -> tuple[list[AttackJob], int]:
    """The jobs for images with missing outputs, and the number of outputs already there."""
    present = set(os.listdir(out_dir))
    jobs, existing = [], 0
    for path in paths:
        stem = path.stem
        missing = tuple(a for a in attack_ids if output_name(stem, a, ext) not in present)
        existing += len(attack_ids) - len(missing)
        if missing:
            jobs.append(AttackJob(Path(path), stem, missing, out_dir, seed, ext))
    return jobs, existing


def run_job(job: AttackJob) -> tuple[int, str | None]:
    """Attack one image and write its missing outputs: (files written, error reason or None)."""
    try:
        img = load_image(job.path)
    except BadImageError as e:
        return 0, str(e)
    image_seed = derive_seed(job.seed, job.stem)
    written = 0
    for attack_id in job.attack_ids:
        target = job.out_dir / output_name(job.stem, attack_id, job.ext)
        if target.exists():  # another run may have written it meanwhile
            continue
        try:
            if attack_id in PARTIAL_ATTACKS:  # partial copies also record where the original lies
                copy = apply_partial_attack(img, attack_id, seed=image_seed)
                write_boxes(target, copy)
                save_atomic(copy.image, target)
            else:
                save_atomic(apply_attack(img, attack_id, seed=image_seed), target)
        except Exception as e:  # an odd image must not stop a long run; the reason is reported
            return written, f"{job.path}: attack {attack_id} failed ({type(e).__name__}: {e})"
        written += 1
    return written, None


def run_jobs(
    jobs: Sequence[AttackJob], workers: int | None = None, desc: str = "attacks"
) -> Iterable[tuple[AttackJob, int, str | None]]:
    """Run jobs in a process pool (in this process when workers == 1), yielding as each finishes."""
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs)))
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not jobs)
    try:
        if workers == 1:
            for job in jobs:
                yield (job, *run_job(job))
                bar.update()
            return
        with multiprocessing.get_context().Pool(workers) as pool:
            for job, result in zip(jobs, pool.imap(run_job, jobs), strict=True):
                yield (job, *result)
                bar.update()
    finally:
        bar.close()


def generate_attacks(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    attack_ids: Iterable[str] | None = ATTACKS,
    seed: int = SEED,
    workers: int | None = WORKERS,
    ext: str = ".png",
) -> AttackReport:
    """Write the attacks of every image of `in_dir` into `out_dir`, skipping outputs that exist."""
    ids = check_attack_ids(attack_ids)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for every core), got {workers}")
    if ext not in (".png", ".jpg"):
        raise ValueError(f"ext must be '.png' or '.jpg', got {ext!r}")
    listing = load_dataset(in_dir)  # DatasetError (a FileNotFoundError) names a missing or empty folder
    out = Path(out_dir)
    if out.resolve() == listing.folder.resolve():
        raise ValueError(f"output folder {out} is the input folder: a rerun would attack the attacks")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    report = AttackReport(n_images=len(listing), not_listed=list(listing.skipped))
    for path, reason in listing.skipped:
        log.info("ignored %s: %s", path, reason)
    jobs, report.existing = plan_jobs(listing.paths, out, ids, seed, ext)
    for job, written, error in run_jobs(jobs, workers):
        report.written += written
        if error is not None:
            report.bad.append((str(job.path), error))
            log.warning("skipped %s", error)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=cli.existing_folder, help="folder of original images")
    parser.add_argument("output", type=cli.folder, help="folder for the attacked images (created)")
    parser.add_argument(
        "--attacks", nargs="+", default=ATTACKS, help="attack ids (default: the 58 of the catalogue)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (same seed, same bytes)")
    parser.add_argument("--workers", type=cli.int_in(1, cli.PER_CORE * (os.cpu_count() or 1)), default=WORKERS,
                        help="processes (default: every core)")
    parser.add_argument(
        "--jpeg", action="store_true", help=f"write JPEG (quality {JPEG_QUALITY}) instead of PNG"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = generate_attacks(
            args.input, args.output, args.attacks, args.seed, args.workers, ".jpg" if args.jpeg else ".png"
        )
    except (FileNotFoundError, ValueError) as e:  # bad folder or attack id: the message says which
        parser.error(str(e))
    for path, reason in report.bad:
        print(f"skipped {path}: {reason}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    cli.run(main)
