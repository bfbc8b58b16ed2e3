"""Download an official SimCLR v2 checkpoint and convert it to PyTorch.

    cd SimCLRv2 && python3 download.py --model r50_2x_sk1 --simclr_category pretrained --ema

Writes `torch_checkpoints/{Pretrained|Finetuned_100pct|...}/{model}[_ema].pth`, a plain dict
{'encoder': backbone + fc state dict, 'head': contrastive head state dict} (no 'head' with
--supervised), loadable with torch.load(..., weights_only=True). Needs network and TensorFlow
(`pip install -r requirements-convert.txt`); the TF files go to `tf_checkpoints/` (--keep-tf/--remove-tf).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python3 download.py` from inside SimCLRv2/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import cli  # noqa: E402
from helpers.download import checkpoint_parser, report_conversion  # noqa: E402
from helpers.paths import CACHE_DIR  # noqa: E402
from SimCLRv2.names import MODELS  # noqa: E402

# ---- editable defaults (each is also a command-line flag) --------------------------------------
MODEL = "r50_2x_sk1"
CATEGORY = "pretrained"
EMA = True
SUPERVISED = None  # None: only for the 'supervised' category (its contrastive head is untrained)
KEEP_TF = True
ROOT = CACHE_DIR / "SimCLRv2"  # tf_checkpoints/ and torch_checkpoints/ go here (~/.cache/imsim/SimCLRv2)

BASE_URL = "https://storage.googleapis.com/simclr-checkpoints/simclrv2/{category}/{model}/"
STEPS = {"pretrained": 250228, "finetuned_100pct": 37535, "finetuned_10pct": 3754,
         "finetuned_1pct": 751, "supervised": 28151}
FOLDERS = {"pretrained": "Pretrained", "finetuned_100pct": "Finetuned_100pct", "finetuned_10pct": "Finetuned_10pct",
           "finetuned_1pct": "Finetuned_1pct", "supervised": "Supervised"}


def _check(model: str, category: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown SimCLR v2 model {model!r}; valid: {', '.join(MODELS)}")
    if category not in STEPS:
        raise ValueError(f"unknown SimCLR v2 category {category!r}; valid: {', '.join(STEPS)}")


def torch_checkpoint_path(model: str = MODEL, category: str = CATEGORY, ema: bool = EMA,
                          root: str | Path = ROOT) -> Path:
    """Where download.py writes (and the extractor reads) one converted v2 checkpoint."""
    _check(model, category)
    return Path(root) / "torch_checkpoints" / FOLDERS[category] / f"{model}{'_ema' if ema else ''}.pth"


def download_command(model: str = MODEL, category: str = CATEGORY, ema: bool = EMA) -> str:
    """The shell command that creates torch_checkpoint_path(model, category, ema)."""
    return (f"cd SimCLRv2 && python3 download.py --model {model} --simclr_category {category} "
            f"{'--ema' if ema else '--no-ema'}")


def download_and_convert(model: str = MODEL, category: str = CATEGORY, ema: bool = EMA,
                         supervised: bool | None = SUPERVISED, keep_tf: bool = KEEP_TF, root: str | Path = ROOT,
                         force: bool = False, all_files: bool = False, ignore: tuple[str, ...] = ()) -> Path:
    """Fetch one released v2 checkpoint, convert it (strictly, by name) and save it; returns the .pth path."""
    from SimCLRv2.convert import convert_v2
    from SimCLRv2.tf_checkpoint import fetch_and_convert

    _check(model, category)
    supervised = category == "supervised" if supervised is None else supervised
    tf_folder = Path(root) / "tf_checkpoints" / FOLDERS[category] / model
    return fetch_and_convert(
        BASE_URL.format(category=category, model=model), STEPS[category], tf_folder,
        torch_checkpoint_path(model, category, ema, root),
        lambda prefix: convert_v2(prefix, model, ema=ema, supervised=supervised, ignore=ignore),
        keep_tf=keep_tf, force=force, all_files=all_files)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = checkpoint_parser(__doc__, MODEL, MODELS, CATEGORY, STEPS, KEEP_TF, ROOT)
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=EMA,
                        help="convert the exponential-moving-average weights (default: %(default)s)")
    parser.add_argument("--supervised", action=argparse.BooleanOptionalAction, default=SUPERVISED,
                        help="skip the contrastive head (default: only for --simclr_category supervised)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    return report_conversion(lambda: download_and_convert(
        args.model, args.simclr_category, args.ema, args.supervised, args.keep_tf, args.root, args.force,
        args.all_files, tuple(args.ignore_tf)))


if __name__ == "__main__":
    cli.run(main)  # DownloadError, ConversionError, a missing file or package: one line, exit 2
