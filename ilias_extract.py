"""ILIAS-style extraction: ILIAS's `extract.py` flags, files and ids, run by this library's pipeline.

The lines of ILIAS's ``feature_extraction/scripts/models.sh`` / ``run_slurm.sh`` run unchanged with
``python ilias_extract.py`` in place of ``python feature_extraction/extract.py``:

    python ilias_extract.py --partition image_queries --dataset_dir ILIAS_ROOT --hdf5_dir hdf5/MODEL \\
        --framework timm --model resnet50.tv_in1k --resolution 384 --pooling head
    python ilias_extract.py --partition distractors --dataset_dir YFCC_TARS --hdf5_dir hdf5/MODEL \\
        --framework timm --model resnet50.tv_in1k --start_tar 0 --total_tars 10
    python ilias_extract.py --partition distractors --dataset_dir YFCC_TARS --hdf5_dir hdf5/dhash \\
        --framework lib --model dhash --selected_ids mini_ilias_yfcc100m_ids.txt

Files: ``features_<partition>.hdf5`` and ``features_distractors_<5 digits>.hdf5`` (one per
``--tar_batch_size`` tars). Each file is resumable: rerun the same command after a kill. Bad
images and tar members are skipped and listed in ``*.errors.tsv`` beside the files.
``--framework lib`` takes any name of this library's registry (``dhash``, ``efficientnet_lite0``);
``--weights none`` builds random weights (checks without the real files). Hyphenated spellings
(``--start-tar``) work too.
"""

from __future__ import annotations

import argparse
import sys

from helpers import cli

# ---- editable defaults (ILIAS's extract.py defaults) ------------------------------------
PARTITION = "image_queries"
FRAMEWORK = "timm"
MODEL = "vit_large_patch16_siglip_384.webli"
HDF5_NAME = "features"
BATCH_SIZE = 128
NUM_WORKERS = 8
TAR_BATCH_SIZE = 10
DEVICE = None  # None: cuda when available, else cpu

PARTITIONS = ["image_queries", "text_queries", "positives", "distractors", "uned"]
FRAMEWORK_CHOICES = ["timm", "tv", "hf", "och", "fb", "cvn", "unc", "unicom", "text", "hier", "lib"]
TRANSFORMS = ["RESIZE_LARGE", "RESIZE_SMALL", "RESIZE_CENTER", "RESIZE_SQUARE", "RESIZE_PAD"]
POOLINGS = ["head", "cls", "gap", "mac", "gem", "rmac", "rgem", "local"]


def bool_flag(text: str) -> bool:
    """ILIAS's boolean flags: true/false, on/off, 1/0."""
    value = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true/false, on/off or 1/0, got {text!r}")
    return value


def _nonneg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _nonneg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def add(flag: str, **kw) -> None:
        names = [flag] + ([flag.replace("_", "-")] if "_" in flag else [])
        p.add_argument(*names, **kw)

    add("--dataset_dir", type=cli.existing_folder, required=True, help="folder of the ILIAS core images, or of the distractor tars")
    add("--partition", default=PARTITION, choices=PARTITIONS)
    add("--hdf5_dir", type=cli.folder, required=True, help="folder of the feature files")
    add("--hdf5_name", type=cli.name, default=HDF5_NAME, help="file name prefix")
    add("--hdf5_compression", type=_nonneg, default=0, help="accepted for compatibility; files are not gzipped")
    add("--overwrite", type=bool_flag, default=False, help="redo finished files")
    add("--framework", default=FRAMEWORK, choices=FRAMEWORK_CHOICES,
        help="timm, tv (torchvision), och (open_clip), fb (torch.hub DINO), text, or lib (this library's names)")
    add("--model", default=MODEL, help="model name as the framework spells it")
    add("--pooling", default=None, choices=POOLINGS, help="default head (ILIAS)")
    add("--batch_size", type=_positive, default=BATCH_SIZE, help="images per model call")
    add("--webdl_batch_size", type=_positive, default=None, help="accepted for compatibility (one batch size here)")
    add("--transforms", default=None, choices=TRANSFORMS, help="default RESIZE_LARGE (ILIAS)")
    add("--resolution", type=_positive, default=None, help="default 512 (ILIAS)")
    add("--min_size", type=_nonneg, default=0)
    add("--multiscale", type=bool_flag, default=None, help="scales 0.707, 1, 1.414 averaged")
    add("--multirotate", type=bool_flag, default=None, help="rotations 0/90/180/270 averaged")
    add("--masking", type=bool_flag, default=False, help="not supported (needs ILIAS's bounding boxes)")
    add("--crop_resize", type=bool_flag, default=False, help="not supported (needs ILIAS's bounding boxes)")
    add("--comp_fp16", type=bool_flag, default=None, help="fp16 compute on CUDA (default true, ILIAS)")
    add("--start_tar", type=_nonneg, default=0, help="distractors: index of the first tar")
    add("--total_tars", type=_positive, default=None, help="distractors: how many tars (default all)")
    add("--tar_batch_size", type=_positive, default=TAR_BATCH_SIZE, help="tars per distractor file")
    add("--num_workers", type=cli.workers, default=NUM_WORKERS, help="decoding processes")
    add("--store_fp16", type=bool_flag, default=True, help="store float16 features (ILIAS's default)")
    add("--selected_ids", default=None,
        help="file of ids to keep (keys or <tar>/<key>; core: relative paths)")
    add("--device", type=cli.concrete_device, default=DEVICE, help="cpu, cuda, cuda:1 (default: cuda when available)")
    add("--weights", type=cli.weights, default=None, help="ours: a checkpoint file, or none for random weights "
        "(default: the framework's pretrained weights from the local cache)")
    return p


def _weights(text: str | None) -> dict:
    """--weights: unset -> the framework's default, 'none' -> random init, else a path or tag."""
    if text is None:
        return {}
    return {"weights": None if text.lower() == "none" else text}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.partition == "uned":
        parser.error("--partition uned (UnED training images) is not supported; use image_queries, positives, "
                     "text_queries or distractors")
    if args.masking or args.crop_resize:
        parser.error("--masking and --crop_resize need ILIAS's bounding-box files and are not supported")
    if args.start_tar % args.tar_batch_size:
        parser.error(f"--start_tar ({args.start_tar}) must be a multiple of --tar_batch_size ({args.tar_batch_size})")
    if args.hdf5_compression:
        print("note: --hdf5_compression is ignored (feature files are written uncompressed)", file=sys.stderr)

    from data_retrieval.datasets import DatasetError  # lazy: --help must not import torch
    from data_retrieval.tars import read_selected_ids
    from extractor import ExtractionConfig
    from extractor.ilias import extract_partition, ilias_extractor
    from extractor.store import StoreError

    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        selected = read_selected_ids(args.selected_ids) if args.selected_ids else None
        ext = ilias_extractor(
            args.framework, args.model, device=device, pooling=args.pooling, transforms=args.transforms,
            resolution=args.resolution, multiscale=args.multiscale, multirotate=args.multirotate,
            comp_fp16=args.comp_fp16, min_size=args.min_size, **_weights(args.weights),
        )
        files = extract_partition(
            ext, args.partition, args.dataset_dir, args.hdf5_dir, hdf5_name=args.hdf5_name,
            start_tar=args.start_tar, total_tars=args.total_tars, tar_batch_size=args.tar_batch_size,
            selected_ids=selected, store_fp16=args.store_fp16,
            config=ExtractionConfig(batch_size=args.batch_size, workers=args.num_workers, overwrite=args.overwrite),
        )
    except (ValueError, TypeError, FileNotFoundError, DatasetError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    cli.run(main)
