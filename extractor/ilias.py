"""ILIAS's feature-extraction layout: partitions, file names, ids and its `extract.py` flag set.

ILIAS (github ilias-vrg/ilias, ``feature_extraction/extract.py``) writes, into ``--hdf5_dir``:

- ``features_image_queries.hdf5`` and ``features_positives.hdf5``: the core images under
  ``--dataset_dir`` whose path contains ``quer`` / ``pos`` (jpg, jpeg, png), ids = relative paths
  with extension, sorted, escaped by `escape_id`;
- ``features_text_queries.hdf5``: the ``T*.txt`` instance descriptions, ids = relative paths;
- ``features_distractors_<5 digits>.hdf5``: one file per batch of ``--tar_batch_size`` (10) tars
  of ``--dataset_dir/*.tar`` (sorted), ids ``<tar basename>/<key>``; batch number =
  ``i + start_tar // tar_batch_size``.

Each file holds ``features`` and ``index``; ours add attributes and a ``skipped`` dataset, which
ILIAS's loader ignores. Every file is written through `extract_dataset`, so each is resumable on
its own: a finished file is kept, an unfinished one resumes. `ilias_extractor` is the one place
that maps ILIAS's ``--framework/--model/--pooling/...`` onto `create_extractor`.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_retrieval.datasets import DatasetError, ImageList
from extractor.extraction_config import ExtractionConfig
from helpers.atomic import write_text

PARTITIONS = ("image_queries", "positives", "text_queries", "distractors")
#: ILIAS's extract.py defaults (batch 128, 8 loader workers)
ILIAS_EXTRACTION = ExtractionConfig(batch_size=128, workers=8)
#: ILIAS's image extensions for the core partitions (lower or upper case, as its glob takes them).
CORE_EXTENSIONS = ("jpg", "jpeg", "png")
#: ILIAS's --framework names -> ours (``<framework>:<model>`` names of `create_extractor`); ``lib``
#: takes a name of this library's registry as is (``dhash``, ``efficientnet_lite0``).
FRAMEWORKS: dict[str, str | None] = {"timm": "timm", "tv": "torchvision", "och": "open_clip", "fb": "hub",
                                     "text": "open_clip", "lib": None}
#: ILIAS frameworks that need code or weights this library does not carry.
UNSUPPORTED = {
    "hf": "Hugging Face transformers models",
    "cvn": "CVNet / SuperGlobal",
    "unc": "UNIC",
    "unicom": "UNICOM",
    "hier": "Hier",
}
#: ILIAS's defaults for the flags that change features (extract.py's argparse defaults).
ILIAS_DEFAULTS: dict[str, Any] = {
    "pooling": "head",
    "transforms": "RESIZE_LARGE",
    "resolution": 512,
    "multiscale": False,
    "multirotate": False,
    "comp_fp16": True,
    "store_fp16": True,
}
#: ILIAS's --framework text: the open_clip (model, pretrained tag) of each image model name.
TEXT_MODELS: dict[str, tuple[str, str | None]] = {
    "vit_large_patch16_siglip_384.webli": ("hf-hub:timm/ViT-L-16-SigLIP-384", None),
    "vit_so400m_patch14_siglip_384.webli": ("hf-hub:timm/ViT-SO400M-14-SigLIP-384", None),
    "convnext_large_mlp.clip_laion2b_ft_soup_320": ("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup"),
    "vit_large_patch14_clip_336.openai": ("ViT-L-14-336", "openai"),
    "eva02_large_patch14_clip_336.merged2b": ("EVA02-L-14", "merged2b_s4b_b131k"),
    "vit_large_patch14_clip_224.metaclip_2pt5b": ("ViT-L-14-quickgelu", "metaclip_fullcc"),
    "RN50.openai": ("RN50", "openai"),
    "vit_base_patch16_clip_224.openai": ("ViT-B-16", "openai"),
    "vit_large_patch14_clip_224.openai": ("ViT-L-14", "openai"),
    "vit_large_patch14_clip_224.laion2b": ("ViT-L-14", "laion2b_s32b_b82k"),
    "convnext_base.clip_laion2b_augreg": ("convnext_base_w", "laion2b_s13b_b82k_augreg"),
    "eva02_base_patch16_clip_224.merged2b": ("EVA02-B-16", "merged2b_s8b_b131k"),
    "vit_base_patch16_siglip_224.webli": ("hf-hub:timm/ViT-B-16-SigLIP", None),
    "vit_base_patch16_siglip_512.webli": ("hf-hub:timm/ViT-B-16-SigLIP-512", None),
    "vit_base_patch16_clip_224.metaclip_2pt5b": ("ViT-B-16-quickgelu", "metaclip_fullcc"),
    "vit_base_patch16_siglip_256.webli": ("hf-hub:timm/ViT-B-16-SigLIP-256", None),
    "vit_base_patch16_siglip_384.webli": ("hf-hub:timm/ViT-B-16-SigLIP-384", None),
    "vit_large_patch16_siglip_256.webli": ("hf-hub:timm/ViT-L-16-SigLIP-256", None),
    "vit_base_patch16_siglip_384.v2_webli": ("hf-hub:timm/ViT-B-16-SigLIP2-384", None),
    "vit_base_patch16_siglip_512.v2_webli": ("hf-hub:timm/ViT-B-16-SigLIP2-512", None),
    "vit_large_patch16_siglip_384.v2_webli": ("hf-hub:timm/ViT-L-16-SigLIP2-384", None),
    "vit_large_patch16_siglip_512.v2_webli": ("hf-hub:timm/ViT-L-16-SigLIP2-512", None),
    "vit_giantopt_patch16_siglip_384.v2_webli": ("hf-hub:timm/ViT-gopt-16-SigLIP2-384", None),
    "vit_so400m_patch16_siglip_512.v2_webli": ("hf-hub:timm/ViT-SO400M-16-SigLIP2-512", None),
    "vit_pe_core_base_patch16_224.fb": ("hf-hub:timm/PE-Core-B-16", None),
    "vit_pe_core_large_patch14_336.fb": ("hf-hub:timm/PE-Core-L-14-336", None),
}


def output_path(hdf5_dir: str | os.PathLike, partition: str, hdf5_name: str = "features",
                batch: int | None = None) -> Path:
    """``<hdf5_dir>/<hdf5_name>_<partition>.hdf5``, or ``..._<batch:05d>.hdf5`` for distractors."""
    suffix = "" if batch is None else f"_{batch:05d}"
    return Path(hdf5_dir) / f"{hdf5_name}_{partition}{suffix}.hdf5"


def escape_id(relative_path: str) -> str:
    """ILIAS's id of a core image: non-ASCII characters written ``#Uxxxx`` (as extract.py does)."""
    return str(relative_path.encode("unicode-escape")).replace("\\\\u", "#U").replace("\\\\x", "#U00")[2:-1]


def _partition_word(partition: str) -> str:
    return {"image_queries": "quer", "positives": "pos"}[partition]


def core_listing(dataset_dir: str | os.PathLike, partition: str,
                 selected_ids: Sequence[str] | None = None) -> tuple[ImageList, list[str]]:
    """The images of ``image_queries`` or ``positives`` under `dataset_dir` (ILIAS's ids and order),
    and the selected ids that name no file.

    Without `selected_ids`: every jpg/jpeg/png file (any depth) whose path relative to
    `dataset_dir` contains ``quer`` / ``pos``, sorted. With them: those relative paths in that order.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"--dataset_dir {root} is not a folder")
    word = _partition_word(partition)
    if selected_ids is None:
        exts = {v for e in CORE_EXTENSIONS for v in (e, e.lower(), e.upper())}
        rels = sorted(
            os.path.relpath(p, root)
            for p in glob.glob(f"{glob.escape(str(root))}/**/*.*", recursive=True)
            if p.rsplit(".", 1)[-1] in exts and word in os.path.relpath(p, root) and os.path.isfile(p)
        )
        unknown: list[str] = []
    else:
        rels = [r for r in selected_ids if (root / r).is_file()]
        unknown = [r for r in selected_ids if not (root / r).is_file()]
    if not rels:
        raise DatasetError(f"no {partition} images under {root} (ILIAS takes jpg/jpeg/png files whose path "
                           f"contains {word!r})")
    listing = ImageList(name=partition, folder=root, paths=[root / r for r in rels], ids=[escape_id(r) for r in rels])
    return listing, unknown


def text_listing(dataset_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(ids, descriptions) of the ``T*.txt`` files under `dataset_dir`, sorted by relative path."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"--dataset_dir {root} is not a folder")
    ids = sorted(os.path.relpath(p, root) for p in glob.glob(f"{glob.escape(str(root))}/**/T*.txt", recursive=True))
    if not ids:
        raise DatasetError(f"no text queries (T*.txt files) under {root}")
    return ids, [(root / i).read_text(encoding="utf-8") for i in ids]


def ilias_extractor(
    framework: str,
    model: str,
    *,
    device: str | None = None,
    pooling: str | None = None,
    transforms: str | None = None,
    resolution: int | None = None,
    multiscale: bool | None = None,
    multirotate: bool | None = None,
    comp_fp16: bool | None = None,
    min_size: int | None = None,
    **extra: Any,
):
    """The extractor ILIAS's ``--framework F --model M`` (and feature flags) name, from our registry.

    For ILIAS's frameworks, unset flags take ILIAS's defaults (head pooling, RESIZE_LARGE at 512,
    fp16 compute on CUDA) and features are L2-normalised as ILIAS's extractors do; for ``lib`` only the flags given are passed on. `extra` (e.g.
    ``weights=None`` for random weights, or a checkpoint path) goes to `create_extractor` as is.
    """
    from extractor.registry import create_extractor

    if framework in UNSUPPORTED:
        raise ValueError(f"--framework {framework} ({UNSUPPORTED[framework]}) is not available in this library; "
                         f"supported: {', '.join(FRAMEWORKS)}")
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown --framework {framework!r}; supported: {', '.join(FRAMEWORKS)}")
    given = {"pooling": pooling, "transforms": transforms, "resolution": resolution, "multiscale": multiscale,
             "multirotate": multirotate, "comp_fp16": comp_fp16}
    if framework == "lib":
        opts = {k: v for k, v in given.items() if v is not None}
        name = model
    else:
        opts = {k: (ILIAS_DEFAULTS[k] if v is None else v) for k, v in given.items()}
        if framework == "text":
            if model not in TEXT_MODELS:
                raise ValueError(f"--framework text: no text tower known for {model!r}; ILIAS maps these: "
                                 f"{', '.join(TEXT_MODELS)}")
            oc_model, tag = TEXT_MODELS[model]
            model = oc_model if tag is None else f"{oc_model}/{tag}"
        elif framework == "och":  # ILIAS spells open_clip models "<model>.<pretrained tag>" (RN50.openai)
            oc_model, _, tag = model.partition(".")
            model = f"{oc_model}/{tag}" if tag else oc_model
        name = f"{FRAMEWORKS[framework]}:{model}"
    kwargs: dict[str, Any] = {}
    if opts.pop("comp_fp16", False) and str(device or "").startswith("cuda"):
        kwargs["precision"] = "fp16"
    if opts.get("multiscale") is False:
        opts.pop("multiscale")
    if opts.get("multirotate") is False:
        opts.pop("multirotate")
    if min_size:
        opts["min_size"] = min_size
    if framework != "lib" or not _is_hash(model):
        kwargs["device"] = device
    if framework != "lib":  # ILIAS L2-normalises every descriptor (GenericFeatureExtractor._l2_norm)
        kwargs["normalize"] = True
    kwargs.update(opts)
    kwargs.update(extra)
    return create_extractor(name, **kwargs)


def _is_hash(name: str) -> bool:
    from extractor import hashes

    return name in hashes.ENTRIES


def _report_unknown(unknown: Sequence[str], n_listed: int, where: str, out: Path) -> None:
    if not unknown:
        return
    write_text(out, "".join(f"{i}\n" for i in unknown))
    head = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    print(f"selected ids: {len(unknown)} of {n_listed} not found in {where} ({head}); all listed in {out}",
          file=sys.stderr)


def extract_partition(
    ext,
    partition: str,
    dataset_dir: str | os.PathLike,
    hdf5_dir: str | os.PathLike,
    *,
    hdf5_name: str = "features",
    start_tar: int = 0,
    total_tars: int | None = None,
    tar_batch_size: int = 10,
    selected_ids: Sequence[str] | None = None,
    store_fp16: bool = True,
    config: ExtractionConfig | None = None,
    **options: Any,
) -> list[Path]:
    """Write one ILIAS partition's feature file(s) into `hdf5_dir`; returns their paths.

    `config` (an `extractor.ExtractionConfig`, default batch 128 and 8 workers as ILIAS's ``extract.py``;
    `options` override its fields) is the one shared with `extract_dataset`: its batch_size, workers,
    overwrite and progress apply (the files go to `hdf5_dir`, not to a feature root).
    Finished files are kept (unless `overwrite`), unfinished ones resumed; for ``distractors``
    each batch of `tar_batch_size` tars is its own file, so a killed run loses at most one chunk.
    """
    cfg = ExtractionConfig.of(config or ILIAS_EXTRACTION, **options)
    from extractor.pipeline import extract_dataset

    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}; ILIAS's partitions: {', '.join(PARTITIONS)}")
    hdf5_dir = Path(hdf5_dir)
    hdf5_dir.mkdir(parents=True, exist_ok=True)
    dtype = "float16" if store_fp16 else "float32"
    common = {"config": ExtractionConfig(batch_size=cfg.batch_size, workers=cfg.workers, overwrite=cfg.overwrite,
                                         progress=cfg.progress), "dtype": dtype}
    if partition == "text_queries":
        return [_extract_text(ext, dataset_dir, output_path(hdf5_dir, partition, hdf5_name), dtype, cfg.overwrite)]
    if partition != "distractors":
        listing, unknown = core_listing(dataset_dir, partition, selected_ids)
        out = output_path(hdf5_dir, partition, hdf5_name)
        _report_unknown(unknown, len(selected_ids or ()), str(dataset_dir),
                        out.with_name(f"{hdf5_name}_{partition}.unknown_ids.txt"))
        return [extract_dataset(ext, listing, out=out, **common)]
    return _extract_distractors(ext, dataset_dir, hdf5_dir, hdf5_name, start_tar, total_tars, tar_batch_size,
                                selected_ids, common)


def _extract_distractors(ext, dataset_dir, hdf5_dir: Path, hdf5_name: str, start_tar: int,
                         total_tars: int | None, tar_batch_size: int, selected_ids, common: dict) -> list[Path]:
    from data_retrieval.tars import list_tars, load_tars
    from extractor.pipeline import extract_dataset

    if tar_batch_size < 1 or start_tar % tar_batch_size:
        raise ValueError(f"--start_tar ({start_tar}) must be a multiple of --tar_batch_size ({tar_batch_size}), "
                         "as ILIAS numbers its distractor files by tar batch")
    tars = list_tars(dataset_dir, start_tar, total_tars)
    print(f"distractors: {len(tars)} tars from {dataset_dir} (start {start_tar}), "
          f"{-(-len(tars) // tar_batch_size)} files of up to {tar_batch_size} tars", file=sys.stderr)
    written, unknown, scanned = [], None, 0
    for i in range(0, len(tars), tar_batch_size):
        batch_id = i // tar_batch_size + start_tar // tar_batch_size
        out = output_path(hdf5_dir, "distractors", hdf5_name, batch_id)
        if out.exists() and not common["config"].overwrite:
            print(f"existing feature file: {out}", file=sys.stderr)
            written.append(out)
            continue
        listing = load_tars(tars[i : i + tar_batch_size], name=f"distractors_{batch_id:05d}", folder=dataset_dir,
                            selected_ids=selected_ids, progress=common["config"].progress)
        scanned += len(listing.tars)
        if selected_ids is not None:
            missing = set(listing.unknown_ids)
            unknown = missing if unknown is None else unknown & missing
        written.append(extract_dataset(ext, listing, out=out, **common))
    if selected_ids is not None and unknown:
        first, last = start_tar // tar_batch_size, start_tar // tar_batch_size + len(written) - 1
        _report_unknown([i for i in selected_ids if i in unknown], len(selected_ids),
                        f"the {scanned} tars indexed in this run",
                        hdf5_dir / f"{hdf5_name}_distractors_{first:05d}-{last:05d}.unknown_ids.txt")
    return written


def _extract_text(ext, dataset_dir, out: Path, dtype: str, overwrite: bool) -> Path:
    import numpy as np

    from extractor.store import write_features

    if out.exists() and not overwrite:
        print(f"existing feature file: {out}", file=sys.stderr)
        return out
    encode = getattr(ext, "encode_text", None)
    if encode is None:
        raise ValueError(f"{ext.name} has no text tower: text_queries need --framework text (open_clip) or an "
                         "extractor with encode_text")
    ids, texts = text_listing(dataset_dir)
    feats = np.asarray(encode(texts), dtype=dtype)
    if out.exists():
        out.unlink()
    return write_features(out, ids, feats, method=ext.name, dataset="text_queries")
