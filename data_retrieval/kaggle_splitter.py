"""Turn the Kaggle memes archive into ``Memes/{template}_{stem}.ext`` plus one ``Templates/{template}.ext`` each.

    python data_retrieval/kaggle_splitter.py archive/reddit_posts.csv archive/images/kaggle_images archive/images/Templates

The CSV (Kaggle "most-viewed-memes-templates-of-2018", ``reddit_posts.csv``) has a header row,
then the image stem in column 0 and its template in column 1. Every image is renamed to
``{template with _ -> -}_{stem with _ -> -}{ext}`` (``?`` stripped from stems; stems with no file
are skipped and counted), then one image of each template (its first CSV row with a file) is *copied* to
``TEMPLATES/{template}{ext}``. Safe to rerun: renamed files are recognised and never renamed
twice, existing templates are kept. As in the seed, ``EQKrGAq_imgr.png`` is relabelled
bad-luck-brian and ``EQKrGAq`` never becomes a template.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from data_retrieval.datasets import list_images, natural_key
from helpers import cli
from helpers.atomic import atomic_path

# Editable defaults (each is also a command-line flag).
HEADER = True  # the Kaggle CSV starts with a header row
STEM_COLUMN = 0
TEMPLATE_COLUMN = 1

#: Files the seed relabels by hand (mislabelled in the archive), and templates it refuses.
RELABEL = {"EQKrGAq_imgr.png": "bad-luck-brian_EQKrGAq-imgr.png"}
BAD_TEMPLATES = frozenset({"EQKrGAq"})

log = logging.getLogger(__name__)


@dataclass
class SplitReport:
    """What a run did; a rerun reports everything as already done."""

    renamed: int = 0
    already_renamed: int = 0
    missing: list[str] = field(default_factory=list)
    relabelled: int = 0
    templates_written: list[str] = field(default_factory=list)
    templates_existing: int = 0
    unmatched: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.renamed} images renamed ({self.already_renamed} already renamed), "
            f"{len(self.missing)} CSV stems without a file, {self.relabelled} relabelled; "
            f"{len(self.templates_written)} templates written ({self.templates_existing} already there); "
            f"{len(self.unmatched)} images not named after a CSV template"
            + (f"; {len(self.refused)} CSV rows refused (names that are not plain file names)" if self.refused else "")
        )


def clean(name: str) -> str:
    """The seed's name rule: '_' becomes '-' (so the first '_' separates template and stem)."""
    return name.replace("_", "-")


def read_rows(csv_path: Path, header: bool = HEADER) -> list[tuple[str, str]]:
    """(stem with '?' stripped, template) for each CSV row with both columns."""
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"CSV file {csv_path} does not exist (expected reddit_posts.csv of the Kaggle archive)"
        )
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if header:
            next(reader, None)
        for line in reader:
            if (
                len(line) <= max(STEM_COLUMN, TEMPLATE_COLUMN)
                or not line[STEM_COLUMN]
                or not line[TEMPLATE_COLUMN]
            ):
                continue
            rows.append((line[STEM_COLUMN].replace("?", ""), line[TEMPLATE_COLUMN]))
    return rows


def _is_plain(name: str) -> bool:
    try:
        cli.check_name(name)
    except ValueError:
        return False
    return True


def plain_rows(rows: list[tuple[str, str]], report: SplitReport) -> list[tuple[str, str]]:
    """The rows whose stem and template are plain file names: '../x', '/abs' or 'a/b' would move
    images outside the folder, so they are refused (logged and counted), never followed."""
    kept = []
    for stem, template in rows:
        if _is_plain(stem) and _is_plain(clean(template)) and _is_plain(f"{clean(template)}_{clean(stem)}"):
            kept.append((stem, template))
        else:
            log.warning("refusing CSV row (%r, %r): not a plain file name", stem, template)
            report.refused.append(f"{stem},{template}")
    return kept


def rename_images(rows: list[tuple[str, str]], images: Path, report: SplitReport) -> None:
    """Rename each CSV image to '{template}_{stem}{ext}'; files already renamed are left alone."""
    by_stem: dict[str, Path] = {}
    for path in list_images(images)[0]:
        by_stem.setdefault(path.stem.replace("?", ""), path)
    names = {p.name for p in by_stem.values()}
    done_stems = {Path(n).stem for n in names}
    for stem, template in rows:
        target_stem = f"{clean(template)}_{clean(stem)}"
        source = by_stem.get(stem)
        if target_stem in done_stems and (source is None or source.stem == target_stem):
            report.already_renamed += 1
            continue
        if source is None:
            report.missing.append(stem)
            continue
        target = images / f"{target_stem}{source.suffix}"
        if target.exists():
            log.warning("not renaming %s: %s already exists", source, target.name)
            continue
        source.rename(target)
        by_stem.pop(stem)
        done_stems.add(target_stem)
        report.renamed += 1
    for old, new in RELABEL.items():
        if (images / old).is_file() and not (images / new).exists():
            (images / old).rename(images / new)
            report.relabelled += 1


def extract_templates(rows: list[tuple[str, str]], images: Path, out: Path, report: SplitReport) -> None:
    """Copy one image per template to `out/{template}{ext}` (kept if present).

    The chosen image is the template's first CSV row that has a file (the seed's "first
    occurrence"), else its first file in natural order.
    """
    out.mkdir(parents=True, exist_ok=True)
    present = {p.stem for p in out.iterdir()}
    templates = {clean(t) for _, t in rows} - BAD_TEMPLATES
    csv_rank: dict[str, int] = {}
    for i, (stem, template) in enumerate(rows):
        csv_rank.setdefault(f"{clean(template)}_{clean(stem)}", i)
    chosen: dict[str, Path] = {}
    files = sorted(
        list_images(images)[0], key=lambda p: (csv_rank.get(p.stem, len(rows)), natural_key(p.name))
    )
    for path in files:
        template = path.stem.split("_", 1)[0]
        if "_" not in path.stem or template not in templates:
            report.unmatched.append(path.name)
        elif template not in chosen:
            chosen[template] = path
    report.unmatched.sort(key=natural_key)
    for template, path in sorted(chosen.items()):
        if template in present:
            report.templates_existing += 1
            continue
        with atomic_path(out / f"{template}{path.suffix}") as tmp:
            shutil.copyfile(path, tmp)
        report.templates_written.append(template)


def split_kaggle(
    csv_path: str | os.PathLike,
    images: str | os.PathLike,
    templates: str | os.PathLike,
    header: bool = HEADER,
) -> SplitReport:
    """Rename the archive's images after their template and write one template image per class."""
    csv_path, images, templates = Path(csv_path), Path(images), Path(templates)
    if not images.is_dir():
        raise FileNotFoundError(
            f"image folder {images} does not exist (expected the archive's images/kaggle_images)"
        )
    rows = read_rows(csv_path, header)
    if not rows:
        raise ValueError(
            f"{csv_path} has no data rows with a stem (column {STEM_COLUMN}) and a template (column {TEMPLATE_COLUMN})"
        )
    report = SplitReport()
    rows = plain_rows(rows, report)
    rename_images(rows, images, report)
    extract_templates(rows, images, templates, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=cli.existing_file, help="reddit_posts.csv of the Kaggle archive")
    parser.add_argument("images", type=cli.existing_folder, help="folder of the archive's images (renamed in place)")
    parser.add_argument("templates", type=cli.folder, help="folder for one template image per class (created)")
    parser.add_argument("--no-header", dest="header", action="store_false", help="the CSV has no header row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = split_kaggle(args.csv, args.images, args.templates, args.header)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    print(report.summary())
    return 0


if __name__ == "__main__":
    cli.run(main)
