"""Download an official SimCLR v1 checkpoint and convert it to PyTorch.

    cd SimCLRv1 && python3 download.py --model 4x --simclr_category pretrain

Writes `torch_checkpoints/{Pretrained|Finetuned_100pct|Finetuned_10pct}/resnet50-{w}x.pth`, a plain
dict {'state_dict': ResNet-50 state dict including the fc weight and bias}, loadable with
torch.load(..., weights_only=True). Needs network and TensorFlow (`pip install -r requirements-convert.txt`);
the TF files go to `tf_checkpoints/` (--keep-tf/--remove-tf).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python3 download.py` from inside SimCLRv1/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import cli  # noqa: E402
from helpers.download import checkpoint_parser, report_conversion  # noqa: E402
from helpers.paths import CACHE_DIR  # noqa: E402
from SimCLRv1.names import MODELS, parse_model_name  # noqa: E402

# ---- editable defaults (each is also a command-line flag) --------------------------------------
MODEL = "4x"
CATEGORY = "pretrain"
KEEP_TF = True
ROOT = CACHE_DIR / "SimCLRv1"  # tf_checkpoints/ and torch_checkpoints/ go here (~/.cache/imsim/SimCLRv1)

BASE_URL = "https://storage.googleapis.com/simclr-checkpoints/simclrv1/{category}/{model}/"
STEPS = {"pretrain": {"1x": 225206, "2x": 225206, "4x": 225206},
         "finetune_100pct": {"1x": 9384, "2x": 18768, "4x": 4692},
         "finetune_10pct": {"1x": 939, "2x": 939, "4x": 470}}
FOLDERS = {"pretrain": "Pretrained", "finetune_100pct": "Finetuned_100pct", "finetune_10pct": "Finetuned_10pct"}


def _check(model: str, category: str) -> None:
    parse_model_name(model)
    if category not in STEPS:
        raise ValueError(f"unknown SimCLR v1 category {category!r}; valid: {', '.join(STEPS)}")


def torch_checkpoint_path(model: str = MODEL, category: str = CATEGORY, root: str | Path = ROOT) -> Path:
    """Where download.py writes (and the extractor reads) one converted v1 checkpoint."""
    _check(model, category)
    return Path(root) / "torch_checkpoints" / FOLDERS[category] / f"resnet50-{model}.pth"


def download_command(model: str = MODEL, category: str = CATEGORY) -> str:
    """The shell command that creates torch_checkpoint_path(model, category)."""
    return f"cd SimCLRv1 && python3 download.py --model {model} --simclr_category {category}"


def download_and_convert(model: str = MODEL, category: str = CATEGORY, keep_tf: bool = KEEP_TF,
                         root: str | Path = ROOT, force: bool = False, all_files: bool = False,
                         ignore: tuple[str, ...] = ()) -> Path:
    """Fetch one released v1 checkpoint, convert it (strictly, by name) and save it; returns the .pth path."""
    from SimCLRv1.convert import convert_v1
    from SimCLRv2.tf_checkpoint import fetch_and_convert

    _check(model, category)
    tf_folder = Path(root) / "tf_checkpoints" / FOLDERS[category] / model
    return fetch_and_convert(
        BASE_URL.format(category=category, model=model), STEPS[category][model], tf_folder,
        torch_checkpoint_path(model, category, root),
        lambda prefix: convert_v1(prefix, parse_model_name(model), ignore=ignore),
        keep_tf=keep_tf, force=force, all_files=all_files)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return checkpoint_parser(__doc__, MODEL, MODELS, CATEGORY, STEPS, KEEP_TF, ROOT).parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    return report_conversion(lambda: download_and_convert(
        args.model, args.simclr_category, args.keep_tf, args.root, args.force, args.all_files, tuple(args.ignore_tf)))


if __name__ == "__main__":
    cli.run(main)  # DownloadError, ConversionError, a missing file or package: one line, exit 2
