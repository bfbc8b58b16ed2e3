"""Fine-tune an encoder of the extractor registry: SimCLR (NT-Xent) or SSCD (copy detection), one process or torchrun.

    python finetune.py --name demo_r18 --dataset demo_distractors demo_original --encoder resnet18 \
        --policy copy --size 96 --batch-size 32 --epochs 5 --optimizer adam
    torchrun --nproc_per_node 4 finetune.py --name big --dataset Flickr500K --encoder resnet50 ...
    python finetune.py --name demo_r18 ... --resume            # continue from the latest checkpoint
    python finetune.py --recipe sscd --name sscd_lite0 --encoder efficientnet_lite0 --weights DEFAULT \
        --dataset Datasets/sscd_train --size 128 --batch-size 32 --epochs 4 --eval-every 1

Checkpoints: Checkpoints/<name>/epoch_<e>.pth (epoch 0 = untrained); logs and figure: Results/<name>/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from finetuning.names import AUGMENTATION_STEPS, OPTIMIZERS, RECIPES
from helpers import cli
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

if TYPE_CHECKING:
    from finetuning.training import TrainConfig

# Editable defaults (each is also a flag).
NAME = "finetune"
DATASETS = ["demo_distractors"]
ENCODER = "resnet18"
WEIGHTS = None  # None: random init; "DEFAULT" or a file for pretrained weights
POLICY = "copy"
SIZE = 224
BATCH_SIZE = 32  # per process
EPOCHS = 10
OPTIMIZER = "lars"
LR = None  # None: 0.005 * sqrt(total batch) for lars/sgd, 1e-3 for adam
WEIGHT_DECAY = 1e-6
MOMENTUM = 0.9
NESTEROV = False
WARMUP_EPOCHS = 0.0
TEMPERATURE = None  # None: 0.1 for simclr, 0.05 for sscd
RECIPE = "simclr"
HEAD_SIZES = None  # None: [dim, dim, 128], SimCLR v2's 3-layer head
WORKERS = 0
SEED = 123


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--name", type=cli.name, default=NAME, help="run name: Checkpoints/<name>/, Results/<name>/")
    data.add_argument("--dataset", nargs="+", default=DATASETS, help="registered dataset names or image folders")
    data.add_argument("--policy", default=POLICY, choices=["simclr", "copy"], help="augmentation policy")
    data.add_argument("--attacks", nargs="+", default=None, help="attack ids of the copy policy (default: all 58)")
    data.add_argument("--size", type=cli.int_in(8, 4096), default=SIZE, help="training crop size in pixels")
    data.add_argument("--preload", type=cli.int_in(8), default=None, help="decode all images once, shorter side <= this")
    data.add_argument("--workers", type=cli.workers, default=WORKERS, help="DataLoader worker processes")
    model = p.add_argument_group("model")
    model.add_argument("--encoder", default=ENCODER, help="extractor registry name (extract_features.py --list)")
    model.add_argument("--weights", type=cli.weights, default=WEIGHTS, help="weights of the encoder (default: random init)")
    model.add_argument("--head-sizes", type=cli.int_in(1), nargs="+", default=HEAD_SIZES,
                       help="projection head layer sizes")
    model.add_argument("--head-mlp", action=argparse.BooleanOptionalAction, default=False,
                       help="plain MLP head (bias, no BN) instead of SimCLR v2's")  # fmt: skip
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=cli.int_in(2), default=BATCH_SIZE, help="images per process and step")
    opt.add_argument("--epochs", type=cli.int_in(1), default=EPOCHS)
    opt.add_argument("--steps-per-epoch", type=cli.int_in(1), default=None, help="cap on steps per epoch (quick runs)")
    opt.add_argument("--optimizer", default=OPTIMIZER, choices=OPTIMIZERS)
    opt.add_argument("--lr", type=cli.float_in(0, lo_open=True), default=LR, help="base lr (default: the optimiser's rule)")
    opt.add_argument("--weight-decay", type=cli.float_in(0), default=WEIGHT_DECAY, help="not applied to biases and BN")
    opt.add_argument("--momentum", type=cli.float_in(0, 1), default=MOMENTUM)
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=NESTEROV,
                     help="Nesterov momentum (lars, sgd); --no-nesterov to turn off")  # fmt: skip
    opt.add_argument("--scheduler", default="cosine", choices=["cosine", "constant"])
    opt.add_argument("--warmup-epochs", type=cli.float_in(0), default=WARMUP_EPOCHS, help="linear warm-up length")
    opt.add_argument("--temperature", type=cli.float_in(0, lo_open=True), default=TEMPERATURE,
                     help="NT-Xent / InfoNCE temperature (default 0.1 simclr, 0.05 sscd)")  # fmt: skip
    opt.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=True, help="SyncBatchNorm under DDP")
    sscd = p.add_argument_group("SSCD recipe (--recipe sscd)")
    sscd.add_argument("--recipe", default=RECIPE, choices=list(RECIPES),
                      help="simclr: encoder + head, NT-Xent; sscd: GeM + projection + L2, InfoNCE + KoLeo")  # fmt: skip
    sscd.add_argument("--dim", type=cli.int_in(1), default=512, help="projection size")
    sscd.add_argument("--gem-p", type=cli.float_in(0, lo_open=True), default=3.0, help="GeM exponent (1: average pooling)")
    sscd.add_argument("--learn-p", action=argparse.BooleanOptionalAction, default=False, help="learn the GeM exponent")
    sscd.add_argument("--entropy-weight", type=cli.float_in(0), default=30.0, help="weight of the KoLeo term (0: none)")
    sscd.add_argument("--mixup", type=cli.float_in(0, 1), default=0.0, help="probability of a mixup/cutmix positive per row")
    sscd.add_argument("--aug-p", nargs="+", default=[], metavar="STEP=P",
                      help=f"augmentation probabilities, e.g. paste_onto=0.2 blur=0 (steps: {', '.join(AUGMENTATION_STEPS)})")  # fmt: skip
    sscd.add_argument("--crop-scale", type=cli.float_in(0, 1, lo_open=True), nargs=2, default=(0.08, 1.0), help="random resized crop area range")
    sscd.add_argument("--train-attacks", nargs="+", default=None, help="catalogue attack ids added to the policy")
    sscd.add_argument("--freeze", type=cli.float_in(0, 1), default=0.0, help="share of the backbone (input side) kept frozen")
    sscd.add_argument("--eval-every", type=cli.int_in(0), default=0, help="evaluate copy detection every N epochs (0: never)")
    sscd.add_argument("--eval-size", type=cli.int_in(8), default=None, help="evaluation resolution (default: --size)")
    sscd.add_argument("--eval-database", nargs="+", default=["demo_original", "demo_distractors"])
    sscd.add_argument("--eval-queries", nargs="+", default=["demo_attacks", "demo_negatives"])
    sscd.add_argument("--eval-attacks", default="heldout", choices=["heldout", "all"],
                      help="score queries of the attack families the policy never applies, or all")  # fmt: skip
    sscd.add_argument("--eval-background", type=cli.int_in(0), default=1000,
                      help="training images used as score-normalisation background (0: none)")  # fmt: skip
    sscd.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on CUDA")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=cli.int_in(0, 2**63 - 1), default=SEED)
    run.add_argument("--device", type=cli.device, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    run.add_argument("--resume", nargs="?", const="latest", default=None,
                     help="continue from the latest checkpoint of --name, or from the given file")  # fmt: skip
    run.add_argument("--stop-after", type=cli.int_in(1), default=None, help="stop after this epoch (resume later)")
    run.add_argument("--datasets-root", type=cli.folder, default=str(DATASETS_DIR))
    run.add_argument("--checkpoints-root", type=cli.folder, default=str(CHECKPOINTS_DIR))
    run.add_argument("--results-root", type=cli.folder, default=str(RESULTS_DIR))
    run.add_argument("--features-root", type=cli.folder, default=str(FEATURES_DIR),
                     help="where per-epoch evaluation stores features")
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, before any work, what the flags cannot mean: unknown augmentation steps or attack ids,
    a crop-scale range upside down, SSCD-only flags with another recipe."""
    try:
        probabilities = parse_probabilities(args.aug_p)
    except ValueError as e:
        p.error(f"argument --aug-p: {e}")
    unknown = sorted(set(probabilities) - set(AUGMENTATION_STEPS))
    if unknown:
        p.error(f"argument --aug-p: unknown step(s) {unknown}; steps: {', '.join(AUGMENTATION_STEPS)}")
    bad = {k: v for k, v in probabilities.items() if not 0 <= v <= 1}
    if bad:
        p.error(f"argument --aug-p: probabilities must be in [0, 1], got {bad}")
    low, high = args.crop_scale
    if low > high:
        p.error(f"argument --crop-scale: expected MIN MAX with MIN <= MAX, got {low:g} {high:g}")
    if args.train_attacks:
        from data_retrieval.attacks import ATTACK_IDS, EXTRA_ATTACK_IDS

        unknown = sorted(set(args.train_attacks) - set(ATTACK_IDS) - set(EXTRA_ATTACK_IDS))
        if unknown:
            p.error(f"argument --train-attacks: unknown attack id(s) {unknown} (see data_retrieval/attacks.py)")
    if args.recipe != "sscd":
        given = [flag for flag, value in (("--aug-p", args.aug_p), ("--train-attacks", args.train_attacks)) if value]
        if given:
            p.error(f"argument {given[0]}: applies to --recipe sscd only (this run uses --recipe {args.recipe})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags describe."""
    from finetuning.training import TrainConfig  # after --help: torch loads here

    fields = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["dataset"] = list(args.dataset)
    if values.get("temperature") is None:
        values["temperature"] = 0.05 if args.recipe == "sscd" else 0.1
    values["crop_scale"] = tuple(args.crop_scale)
    values["aug_p"] = parse_probabilities(args.aug_p)
    return TrainConfig(**values)


def parse_probabilities(items: list[str]) -> dict[str, float]:
    """``["blur=0", "jpeg=0.5"]`` -> ``{"blur": 0.0, "jpeg": 0.5}`` (ValueError on a malformed item)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if sep and out[name] != out[name]:  # nan
            sep = ""
        if not sep:
            raise ValueError(f"--aug-p expects STEP=PROBABILITY items, got {item!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from finetuning.training import train

        history = train(config_from_args(args), resume=args.resume, stop_after=args.stop_after)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        print(f"finetune.py: error: {err}", file=sys.stderr)
        return 2
    if history["epochs"]:
        last = history["epochs"][-1]
        print(f"epoch {last['epoch']}: loss {last['loss']:.4f}, lr {last['lr']:.3g}, {last['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
