"""Every dataset layout, id rule and ground-truth rule, in one place.

- An image's **id** is ``"<dataset>/<path relative to the dataset folder, without extension>"``,
  e.g. ``BSDS500_original/100007`` or ``Flickr500K/12/100007``: ids of two datasets never collide.
- A **query** dataset names the dataset it copies (`DatasetSpec.targets`). A query's original is
  the image of that dataset whose stem is a prefix of the query's stem followed by ``_``
  (attacks: ``100007_jpg_compression_10`` -> ``100007``; memes: ``harold_abc12`` -> ``harold``).
  A query whose original is not in the database is a **negative** query (used for false-positive rates).
- Files are listed in natural order (``2.jpg`` before ``10.jpg``), hidden and non-image files are
  skipped with a reason, and a missing or empty folder raises `DatasetError` naming it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.images import IMAGE_EXTENSIONS, is_image_file
from helpers.paths import DATASETS_DIR


class DatasetError(FileNotFoundError):
    """A dataset that cannot be listed: unknown name, missing or empty folder."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the datasets root, and which dataset its images copy."""

    name: str
    folder: str
    description: str
    targets: str | None = None
    recursive: bool = False
    how_to_get: str = ""


_BSDS = "Download BSDS500 and put its images in Datasets/BSDS500/Original (docs/datasets.md)."
_MEMES = "Download the Kaggle memes archive and run data_retrieval/kaggle_splitter.py (docs/datasets.md)."
_DEMO = "Run `python -m data_retrieval.demo` (or `make demo`) to build it."

SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("BSDS500_original", "BSDS500/Original", "500 BSDS500 photographs", how_to_get=_BSDS),
        DatasetSpec(
            "BSDS500_attacks",
            "BSDS500/Attacks",
            "attacked BSDS500 copies, {stem}_{attack_id}.png",
            targets="BSDS500_original",
            how_to_get="Run data_retrieval/generate_attacks.py Datasets/BSDS500/Original Datasets/BSDS500/Attacks.",
        ),
        DatasetSpec("Kaggle_templates", "Kaggle_memes/Templates", "one image per meme template", how_to_get=_MEMES),
        DatasetSpec(
            "Kaggle_memes",
            "Kaggle_memes/Memes",
            "memes named {template}_{stem}",
            targets="Kaggle_templates",
            how_to_get=_MEMES,
        ),
        DatasetSpec(
            "Flickr500K",
            "Flickr500K",
            "distractors: MIRFLICKR-1M images0..4, folders 0..49",
            recursive=True,
            how_to_get="Unzip images0.zip..images4.zip of MIRFLICKR-1M so folders 0..49 sit in Datasets/Flickr500K.",
        ),
        DatasetSpec(
            "Cartoons",
            "Cartoons",
            "Kaggle cartoon classification (fine-tuning only)",
            recursive=True,
            how_to_get="Download the Kaggle 'cartoon classification' set into Datasets/Cartoons.",
        ),
        DatasetSpec("demo_original", "demo/Original", "demo originals (packaged sample photos)", how_to_get=_DEMO),
        DatasetSpec(
            "demo_attacks", "demo/Attacks", "attacked demo originals", targets="demo_original", how_to_get=_DEMO
        ),
        DatasetSpec(
            "demo_negatives",
            "demo/Negatives",
            "images whose original is NOT in the database: photo and procedural kinds",
            targets="demo_original",
            how_to_get=_DEMO,
        ),
        DatasetSpec("demo_distractors", "demo/Distractors", "procedural pictures and photograph tiles",
                    how_to_get=_DEMO),
    ]
}

#: Meme templates the seed dropped for the `clean` partition (noisy or mislabelled classes).
NOISY_MEME_TEMPLATES = (
    "zuckerberg",
    "harold",
    "netflix-adaptation",
    "shrek",
    "so-glad",
    "who-would-win",
    "you-vs-the-guy",
    "skyrim-100",
)


@dataclass
class ImageList:
    """The images of one dataset: parallel `paths` and `ids`, plus what was skipped and why."""

    name: str
    folder: Path
    paths: list[Path]
    ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    targets: str | None = None

    def __len__(self) -> int:
        return len(self.paths)


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically: 'a2' < 'a10', '9/5' < '10/1'.

    Ties such as '1.jpg' and '01.jpg' are broken by the text itself, so the order never depends
    on the file system's listing order.
    """
    parts = re.split(r"(\d+)", text)  # odd positions hold the digit runs
    return (tuple(int(t) if i % 2 else t for i, t in enumerate(parts)), text)


def list_images(folder: str | os.PathLike, recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files of `folder` in natural order, and the (path, reason) of every file skipped.

    One `os.scandir` pass (the file type comes with the listing, no `stat` per file); hidden
    folders are not walked, symlinked folders are not followed (as `os.walk`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"image folder {folder} {what}")
    found: list[tuple[str, str]] = []  # (relative posix path, full path)
    skipped: list[tuple[str, str]] = []
    pending = [(os.fspath(folder), "")]
    while pending:
        dirpath, prefix = pending.pop()
        try:
            entries = os.scandir(dirpath)
        except OSError as e:
            if dirpath == os.fspath(folder):
                raise DatasetError(f"image folder {folder} cannot be listed ({e.strerror})") from None
            skipped.append((dirpath, f"folder cannot be listed ({e.strerror})"))
            continue
        with entries as listed:
            for entry in listed:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not name.startswith("."):
                        pending.append((entry.path, f"{prefix}{name}/"))
                elif name.startswith("."):
                    skipped.append((entry.path, "hidden file"))
                elif (odd := _not_a_file(entry)) is not None:  # a loop, a broken link, a FIFO, a device
                    skipped.append((entry.path, odd))
                elif not is_image_file(name):
                    skipped.append((entry.path, "not an image extension"))
                else:
                    found.append((prefix + name, entry.path))
    found.sort(key=lambda f: natural_key(f[0]))
    skipped.sort()
    return [Path(path) for _, path in found], skipped


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def _not_a_file(entry: os.DirEntry) -> str | None:
    """None for a regular file (or a link to one), else why the entry is skipped: reading a FIFO
    would block forever, a device never ends, a loop or a broken link cannot be opened."""
    try:
        if entry.is_file():  # the listing's file type, no stat: the common case stays cheap
            return None
    except OSError:
        pass
    link = entry.is_symlink()
    try:
        mode = os.stat(entry.path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if link and isinstance(e, FileNotFoundError):
            return "broken symlink (its target does not exist)"
        return f"cannot stat ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    what = next((text for test, text in _KINDS if test(mode)), "not a regular file")
    return ("symlink to " if link else "") + what + (" (not followed)" if stat.S_ISDIR(mode) else "")


def relative_posix(folder: Path, path: Path) -> str:
    """`path` relative to `folder`, with '/' separators (string slicing when `path` lies under it)."""
    full, base = os.fspath(path), os.fspath(folder).rstrip(os.sep)
    if full.startswith(base + os.sep) and os.sep == "/" and base:
        return full[len(base) + 1:]
    return path.relative_to(folder).as_posix()


def strip_suffix(rel: str) -> str:
    """`rel` without its last extension, by `pathlib`'s rule: ``a.tar.gz`` -> ``a.tar``, while
    ``.bashrc`` and ``a.`` keep their names."""
    head, slash, name = rel.rpartition("/")
    i = name.rfind(".")
    return f"{head}{slash}{name[:i]}" if 0 < i < len(name) - 1 else rel


def unique_ids(dataset: str, folder: Path, paths: Sequence[Path]) -> list[str]:
    """Ids of `paths`, never two alike: '<dataset>/<stem>', and for files sharing a stem
    (``photo.bmp``, ``photo.webp``) each keeps its extension (``photo.bmp``), as ILIAS does.

    An id only changes when a file with the same stem is added or removed (the store's provenance
    notices that); the ground-truth rules read stems with the extension stripped (`id_stem`).
    """
    rels = [relative_posix(folder, p) for p in paths]
    stems = [f"{dataset}/{strip_suffix(rel)}" for rel in rels]
    counts = Counter(stems)
    return [f"{dataset}/{rel}" if counts[i] > 1 else i for rel, i in zip(rels, stems, strict=True)]


def id_stem(image_id: str) -> str:
    """`image_id` without an image extension (``orig/photo.bmp`` -> ``orig/photo``): the name the
    ground-truth rules compare."""
    head, dot, ext = image_id.rpartition(".")
    return head if dot and "/" not in ext and f".{ext.lower()}" in IMAGE_EXTENSIONS else image_id


def split_id(image_id: str) -> tuple[str, str]:
    """('BSDS500_original', '100007') from 'BSDS500_original/100007'."""
    dataset, _, key = image_id.partition("/")
    if not key:
        raise ValueError(f"{image_id!r} is not a dataset-qualified id ('<dataset>/<name>')")
    return dataset, key


def get_spec(name: str) -> DatasetSpec:
    """The registered layout of `name`; the error lists the valid names."""
    try:
        return SPECS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(SPECS)} (or pass a folder path)") from None


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return list(SPECS)


def dataset_folder(name: str, root: str | os.PathLike = DATASETS_DIR) -> Path:
    """Folder of registered dataset `name` under `root`."""
    return Path(root) / get_spec(name).folder


def load_dataset(
    name_or_folder: str | os.PathLike,
    root: str | os.PathLike = DATASETS_DIR,
    name: str | None = None,
    recursive: bool | None = None,
    targets: str | None = None,
) -> ImageList:
    """List a registered dataset by name, or any folder (named after it unless `name` is given).

    Files sharing a stem (``a.jpg`` and ``a.png``) keep their extensions in their ids
    (`unique_ids`); file names that are not valid UTF-8 are skipped with their reason.
    """
    key = str(name_or_folder)
    if key in SPECS:
        spec = SPECS[key]
        folder = Path(root) / spec.folder
        name, targets = spec.name, spec.targets if targets is None else targets
        recursive = spec.recursive if recursive is None else recursive
        if not folder.is_dir():
            raise DatasetError(f"dataset {name!r}: folder {folder} does not exist. {spec.how_to_get}")
    else:
        folder = Path(name_or_folder)
        if not folder.is_dir():
            raise DatasetError(f"{key!r} is neither a registered dataset ({', '.join(SPECS)}) nor a folder")
        name = name or folder.resolve().name
        recursive = bool(recursive)
    if "/" in name:
        raise ValueError(f"dataset name {name!r} must not contain '/'")
    paths, skipped = list_images(folder, recursive=recursive)
    kept = []
    for path in paths:
        try:
            relative_posix(folder, path).encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name: an id must be valid UTF-8 (HDF5, JSON)
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            skipped.append((shown, "file name is not valid UTF-8 (rename the file)"))
            continue
        kept.append(path)
    ids = unique_ids(name, folder, kept)
    if not kept:
        raise DatasetError(f"dataset {name!r}: no image files in {folder} ({len(skipped)} other files skipped)")
    return ImageList(name=name, folder=folder, paths=kept, ids=ids, skipped=skipped, targets=targets)


def original_candidates(query_id: str, targets: str) -> list[str]:
    """Possible original ids of a query, longest first: every prefix of its stem ending before a '_'."""
    _, key = split_id(id_stem(query_id))
    head, _, stem = key.rpartition("/")
    cuts = [i for i, ch in enumerate(stem) if ch == "_"]
    return [f"{targets}/{stem[:i]}" for i in reversed(cuts)]


def find_originals(
    query_ids: Sequence[str], database_ids: Sequence[str], targets: dict[str, str] | None = None
) -> np.ndarray:
    """Index in `database_ids` of each query's original, or -1 for a negative query.

    The target dataset of a query comes from its dataset's spec (or `targets`, a mapping from
    query dataset name to target dataset name, for plain folders). Queries of a dataset with no
    target are all negatives.
    """
    position = {image_id: i for i, image_id in enumerate(database_ids)}
    for i, image_id in enumerate(database_ids):  # 'orig/photo.bmp' (a stem shared by two files) is 'orig/photo' too
        position.setdefault(id_stem(image_id), i)
    mapping = {n: s.targets for n, s in SPECS.items() if s.targets}
    mapping.update(targets or {})
    out = np.full(len(query_ids), -1, dtype=np.int64)
    for q, query_id in enumerate(query_ids):
        target = mapping.get(split_id(query_id)[0])
        if target is None:
            continue
        for candidate in original_candidates(query_id, target):
            if candidate in position:
                out[q] = position[candidate]
                break
    return out


def image_paths(
    image_ids: Sequence[str], root: str | os.PathLike = DATASETS_DIR, folders: dict[str, str | os.PathLike] | None = None
) -> list[Path | None]:
    """The file of each id (None where it cannot be found), listing each dataset once.

    Registered datasets are found under `root`; others need `folders`, a mapping from dataset
    name to its folder (the feature store records it as the ``folder`` attribute).
    """
    folders = folders or {}
    by_dataset: dict[str, dict[str, Path]] = {}
    out: list[Path | None] = []
    for image_id in image_ids:
        dataset, _ = split_id(image_id)
        if dataset not in by_dataset:
            try:
                if dataset in folders:
                    listing = load_dataset(folders[dataset], name=dataset, recursive=True)
                else:
                    listing = load_dataset(dataset, root=root)
                by_dataset[dataset] = dict(zip(listing.ids, listing.paths, strict=True))
            except DatasetError:
                by_dataset[dataset] = {}
        out.append(by_dataset[dataset].get(image_id))
    return out


#: Demo datasets of photographs and their copies: a stem names its photograph (``astronaut_scaling_0.4``).
DEMO_PHOTO_DATASETS = ("demo_original", "demo_attacks", "demo_negatives")
DEMO_DATASETS = (*DEMO_PHOTO_DATASETS, "demo_distractors")
#: Procedural pictures, in any dataset: ``procedural7``, ``synthetic3`` (and the demo's numbered distractors).
_PROCEDURAL = re.compile(r"(procedural|synthetic)[0-9]+")
#: Tiles and crops of a photograph, in any dataset: ``tower-tile5``, ``flower-crop12``.
_PHOTO_PART = re.compile(r"(?P<photo>[A-Za-z0-9]+)-(tile|crop)[0-9]+")


def image_generator(image_id: str) -> str | None:
    """What made an image, by the file-name rules of the generators (data_retrieval/demo.py):
    "procedural", "photo:<photograph stem>", or None when no rule applies.

    ``demo_distractors/12``, ``sscd_train/procedural3``, ``demo_negatives/synthetic3_jpg_compression_10``
    -> procedural; ``demo_distractors/tower-tile5`` -> photo:tower; ``demo_negatives/flower-crop12``
    and ``demo_attacks/astronaut_scaling_0.4`` -> photo:flower, photo:astronaut.
    """
    dataset, key = split_id(id_stem(image_id))
    base = key.rpartition("/")[2].split("_", 1)[0]
    if _PROCEDURAL.fullmatch(base) or (dataset == "demo_distractors" and base.isdigit()):
        return "procedural"
    part = _PHOTO_PART.fullmatch(base)
    if part:
        return f"photo:{part['photo']}"
    return f"photo:{base}" if dataset in DEMO_PHOTO_DATASETS else None


def generator_kind(image_id: str) -> str | None:
    """"procedural" or "photo" (`image_generator` without the photograph), or None."""
    generator = image_generator(image_id)
    return None if generator is None else generator.partition(":")[0]


def shared_generators(background_ids: Sequence[str], query_ids: Sequence[str]) -> list[str]:
    """The generators that made both some background image and some query (sorted; [] when none is known)."""
    background = {g for g in map(image_generator, background_ids) if g is not None}
    return sorted(background & {g for g in map(image_generator, query_ids) if g is not None})
