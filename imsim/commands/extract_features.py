"""Extract features of datasets into Features/<dataset>/<method>.h5 (resumable, shardable).

    python extract_features.py --method dhash resnet50 --dataset BSDS500_original BSDS500_attacks
    python extract_features.py --method resnet50 --weights none --folder path/to/images --limit 100
    python extract_features.py --method dhash --dataset Flickr500K --shard 3/8   # slurm array task 3
    python extract_features.py --method dhash --tars path/to/tars --start-tar 0 --total-tars 10 \
        --selected-ids ids.txt    # webdataset-style tars; ids <tar basename>/<key>
    python extract_features.py --method resnet50 --dataset Flickr500K --executor ray --ray-shards 16 \
        [--ray-address head:6379]                                               # on Ray (local without address)
    python extract_features.py --method efficientnet_lite0 timm:resnet50.a1_in1k --pooling gem \
        --transforms RESIZE_LARGE --resolution 512 --multiscale --store-fp16 --folder images/
    python extract_features.py --method hub:dinov2_vits14 --pooling local --folder images/  # patch tokens
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import cli
from helpers.images import DEFAULT_MAX_PIXELS
from helpers.paths import DATASETS_DIR, FEATURES_DIR

# ---- editable defaults -----------------------------------------------------------------
METHODS = ["dhash"]
DATASETS = ["demo_original", "demo_distractors", "demo_attacks", "demo_negatives"]  # after `make demo`
BATCH_SIZE = 64
WORKERS = 2
DEVICE = "cpu"
PRECISION = "auto"  # auto: fp32 on a CPU, bf16/fp16 AMP on CUDA; bf16 on a CPU only when asked (recorded)
LIMIT = None
WEIGHTS = "DEFAULT"  # torchvision weights tag, a .pth path, or "none" (random init)
EXECUTOR = "local"  # local: DataLoader workers in this process; ray: Ray Data (see scaleout/)
RAY_ADDRESS = None  # None: start a local Ray; "host:port" / "ray://host:port" / "auto": join a cluster
RAY_SHARDS = None  # output shard files on Ray (None: one per 50,000 images)
FEATURES_ROOT = FEATURES_DIR
DATASETS_ROOT = DATASETS_DIR
MAX_PIXELS = DEFAULT_MAX_PIXELS  # larger images are skipped as possible decompression bombs


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'3/8' -> (3, 8): the 4th of 8 parts (K counts from 0)."""
    if text is None:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", nargs="+", default=METHODS, help="extractor names (see --list), e.g. dhash phash resnet50")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", nargs="+", default=None, help=f"registered dataset names (default {DATASETS})")
    src.add_argument("--folder", nargs="+", type=cli.existing_folder, help="image folders (named after the folder)")
    src.add_argument("--tars", nargs="+", type=cli.existing_folder,
                     help="folders of webdataset-style .tar files (sorted by name)")
    p.add_argument("--start-tar", type=cli.int_in(0), default=0, help="--tars: index of the first tar to take")
    p.add_argument("--total-tars", type=cli.int_in(1), default=None, help="--tars: how many tars to take (default all)")
    p.add_argument("--selected-ids", type=cli.existing_file, default=None,
                   help="--tars: file of ids to keep, one a line (<tar basename>/<key> or bare keys)")
    p.add_argument("--batch-size", type=cli.int_in(1, 1 << 16), default=BATCH_SIZE)
    p.add_argument("--workers", type=cli.workers, default=WORKERS, help="DataLoader decoding processes")
    p.add_argument("--device", type=cli.concrete_device, default=DEVICE, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default=PRECISION, choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--limit", type=cli.int_in(1), default=LIMIT, help="only the first N images (quick checks)")
    p.add_argument("--shard", type=parse_shard, default=None, help="K/N: extract the K-th (from 0) of N parts")
    p.add_argument("--strict", action="store_true", help="stop at the first file that cannot be used")
    p.add_argument("--weights", type=cli.weights, default=WEIGHTS,
                   help="neural models: DEFAULT, a weights tag, a .pth path, or none")
    p.add_argument(
        "--init-seed",
        type=cli.int_in(0, 2**63 - 1),
        default=None,
        help="with --weights none: seed of the random initialisation (default 0, recorded in the store)",
    )
    p.add_argument("--pooling", default=None, choices=["head", "cls", "gap", "mac", "gem", "rmac", "rgem", "local"],
                   help="neural: pooling (default head = the model's own; local = patch tokens -> .tokens.h5)")
    p.add_argument("--transforms", default=None, type=str.upper,
                   choices=["RESIZE_LARGE", "RESIZE_SMALL", "RESIZE_CENTER", "RESIZE_SQUARE", "RESIZE_PAD"],
                   help="neural: ILIAS preprocessing (default: the model's own resize + crop)")
    p.add_argument("--resolution", type=cli.int_in(8, 8192), default=None, help="neural: resize size for --transforms")
    p.add_argument("--multiscale", action="store_true", help="neural: average scales 0.707, 1, 1.414 (L2)")
    p.add_argument("--multirotate", action="store_true", help="neural: average rotations 0/90/180/270 (L2)")
    p.add_argument("--l2", action="store_true", help="neural: L2-normalise the features")
    p.add_argument("--store-fp16", action="store_true", help="neural: store float16 features (half the disk)")
    p.add_argument("--hash-size", type=cli.int_in(2, 256), default=None, help="hashes: bits per side (8 -> 64 bits)")
    p.add_argument("--exact", action="store_true", help="hashes: bit-exact imagehash mode (slower decoding)")
    p.add_argument("--executor", choices=["local", "ray"], default=EXECUTOR,
                   help="local (this process) or ray (Ray Data: decode tasks, model actors, one write task per shard)")
    p.add_argument("--ray-address", default=RAY_ADDRESS, help="Ray cluster to join (default: start a local Ray)")
    p.add_argument("--ray-shards", type=cli.int_in(1), default=RAY_SHARDS,
                   help="--executor ray: number of output shard files")
    p.add_argument("--features-root", type=cli.folder, default=FEATURES_ROOT)
    p.add_argument("--datasets-root", type=cli.folder, default=DATASETS_ROOT)
    p.add_argument("--overwrite", action="store_true",
                   help="extract again even if a complete store exists (a store made from other inputs or "
                        "settings is refused without it, naming what differs)")
    p.add_argument("--max-pixels", type=cli.int_in(1), default=MAX_PIXELS,
                   help="skip images with more pixels than this as possible decompression bombs "
                        f"(default {MAX_PIXELS:,} = 16384 x 16384)")
    p.add_argument("--offline", action="store_true",
                   help="neural: read pretrained weights from local caches only, never download them "
                        "(also IMSIM_OFFLINE=1 or HF_HUB_OFFLINE=1); by default the first use downloads them")
    p.add_argument("--list", action="store_true", help="list the extractor names and exit")
    return p


#: Flags that only neural models take, with the value that means "not given".
NEURAL_ONLY = {"pooling": None, "transforms": None, "resolution": None, "multiscale": False, "multirotate": False,
               "l2": False, "store_fp16": False, "weights": WEIGHTS, "init_seed": None}
#: Flags that only hashes take.
HASH_ONLY = {"hash_size": None, "exact": False}


def check_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse flags that the asked methods would silently ignore (``--pooling local`` with dhash,
    ``--exact`` with a neural model)."""
    from extractor import hashes  # numpy and PIL only: the error comes before torch loads

    for method in args.method:
        is_hash = method in hashes.ENTRIES
        for flag, unset in (NEURAL_ONLY if is_hash else HASH_ONLY).items():
            if getattr(args, flag, unset) != unset:
                kind = "neural models" if is_hash else "hashes"
                p.error(f"argument --{flag.replace('_', '-')}: applies to {kind} only, and {method} is "
                        f"{'a hash' if is_hash else 'not a hash'}")


def _method_kwargs(method: str, args: argparse.Namespace) -> dict:
    from extractor import hashes

    if method in hashes.ENTRIES:
        return {"hash_size": args.hash_size, "exact": args.exact or None}
    weights = None if str(args.weights).lower() == "none" else args.weights
    kwargs = {"weights": weights, "device": args.device, "precision": args.precision,
              "pooling": args.pooling, "transforms": args.transforms, "resolution": args.resolution,
              "multiscale": args.multiscale or None, "multirotate": args.multirotate or None,
              "normalize": args.l2 or None}
    if weights is None:
        kwargs["init_seed"] = args.init_seed
    return kwargs


def _tar_source(folder: Path, args: argparse.Namespace):
    """The tars of `folder` (with --start-tar/--total-tars/--selected-ids) as one dataset, indexed once."""
    from data_retrieval.tars import load_tar_dataset

    listing = load_tar_dataset(folder, args.start_tar, args.total_tars, args.selected_ids)
    if listing.unknown_ids:
        head = ", ".join(listing.unknown_ids[:5]) + (", ..." if len(listing.unknown_ids) > 5 else "")
        print(f"selected ids: {len(listing.unknown_ids)} not found in the {len(listing.tars)} tars of {folder} "
              f"({head})", file=sys.stderr)
    return listing


def _extract_ray(ext, source, args: argparse.Namespace, cfg) -> int:
    """One (method, source) on Ray; returns 1 on a reported failure (counted), 0 on success."""
    from imsim.scaleout import RayClusterError, extract_dataset_ray

    if args.shard is not None:
        print(f"{cli.prog()}: error: argument --shard: for one process per shard (slurm); on Ray use "
              "--ray-shards N", file=sys.stderr)
        return 2
    try:
        paths = extract_dataset_ray(ext, source, cfg, shards=args.ray_shards, address=args.ray_address)
    except (ValueError, FileNotFoundError, RayClusterError) as e:
        print(f"{cli.prog()}: error: {ext.name} on {getattr(source, 'name', source)}: {' '.join(str(e).split())}",
              file=sys.stderr)
        return 1
    print(f"{ext.name} {getattr(source, 'name', source)}: {len(paths)} shard file(s) under {paths[0].parent}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list:
        check_flags(parser, args)
    if args.offline:
        from extractor.weights import set_offline

        set_offline()
    from extractor import (  # after --help: torch loads here
        ExtractionConfig,
        create_extractor,
        extract_dataset,
        list_extractors,
    )
    from extractor.pipeline import errors_path
    from helpers.images import set_max_pixels

    set_max_pixels(args.max_pixels)

    if args.list:
        print("\n".join(list_extractors()))
        return 0
    sources = args.folder if args.folder else (args.dataset or DATASETS)
    if args.tars:
        try:
            sources = [_tar_source(folder, args) for folder in args.tars]
        except (ValueError, FileNotFoundError) as e:  # DatasetError too: bad --tars / --start-tar / --total-tars
            print(f"{cli.prog()}: error: argument --tars: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
    cfg = ExtractionConfig(features_root=args.features_root, datasets_root=args.datasets_root,
                           batch_size=args.batch_size, workers=args.workers, limit=args.limit, strict=args.strict,
                           overwrite=args.overwrite)  # one set of settings for every source and executor
    failed = bad_args = 0
    for method in args.method:
        try:
            ext = create_extractor(method, **_method_kwargs(method, args))
        except (ValueError, TypeError, FileNotFoundError) as e:  # a bad --method / --weights / --hash-size
            print(f"{cli.prog()}: error: argument --method {method}: {' '.join(str(e).split())}",
                  file=sys.stderr)
            bad_args += 1
            continue
        for source in sources:
            if args.executor == "ray":
                failed += _extract_ray(ext, source, args, cfg)
                continue
            try:
                if getattr(ext, "local", False):
                    from extractor.local_store import extract_local

                    path = extract_local(ext, source, args.features_root, args.datasets_root, args.batch_size,
                                         args.workers, args.limit, dtype="float16" if args.store_fp16 else "float32",
                                         overwrite=args.overwrite)
                    print(f"{ext.name} {getattr(source, 'name', source)}: {path}")
                    continue
                path = extract_dataset(ext, source, shard=args.shard, config=cfg,
                                       dtype="float16" if args.store_fp16 and not ext.binary else None)
            except (ValueError, FileNotFoundError) as e:  # DatasetError, StoreError, BadImageError
                print(f"{cli.prog()}: error: {ext.name} on {getattr(source, 'name', source)}: "
                      f"{' '.join(str(e).split())}", file=sys.stderr)
                failed += 1
                continue
            errors = errors_path(path)
            n_skipped = max(0, len(errors.read_text().splitlines()) - 1) if errors.exists() else 0
            print(f"{ext.name} {getattr(source, 'name', source)}: {path}" + (f"  ({n_skipped} skipped, see {errors})" if n_skipped else ""))
    return 2 if bad_args or failed else 0  # bad input, of the flags or of the data: 2, as every command


if __name__ == "__main__":
    cli.run(main)
