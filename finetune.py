"""Fine-tune an encoder of the extractor registry with SimCLR (NT-Xent), one process or under torchrun.

    python finetune.py --name demo_r18 --dataset demo_distractors demo_original --encoder resnet18 \
        --policy copy --size 96 --batch-size 32 --epochs 5 --optimizer adam
    torchrun --nproc_per_node 4 finetune.py --name big --dataset Flickr500K --encoder resnet50 ...
    python finetune.py --name demo_r18 ... --resume            # continue from the latest checkpoint

Checkpoints: Checkpoints/<name>/epoch_<e>.pth (epoch 0 = untrained); logs and figure: Results/<name>/.
"""

from __future__ import annotations

import argparse
import logging
import sys

from finetuning.training import OPTIMIZERS, TrainConfig, train
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, RESULTS_DIR

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
TEMPERATURE = 0.1
HEAD_SIZES = None  # None: [dim, dim, 128], SimCLR v2's 3-layer head
WORKERS = 0
SEED = 123


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--name", default=NAME, help="run name: Checkpoints/<name>/, Results/<name>/")
    data.add_argument("--dataset", nargs="+", default=DATASETS, help="registered dataset names or image folders")
    data.add_argument("--policy", default=POLICY, choices=["simclr", "copy"], help="augmentation policy")
    data.add_argument("--attacks", nargs="+", default=None, help="attack ids of the copy policy (default: all 58)")
    data.add_argument("--size", type=int, default=SIZE, help="training crop size in pixels")
    data.add_argument("--preload", type=int, default=None, help="decode all images once, shorter side <= this")
    data.add_argument("--workers", type=int, default=WORKERS, help="DataLoader worker processes")
    model = p.add_argument_group("model")
    model.add_argument("--encoder", default=ENCODER, help="extractor registry name (python -m extractor list)")
    model.add_argument("--weights", default=WEIGHTS, help="weights of the encoder (default: random init)")
    model.add_argument("--head-sizes", type=int, nargs="+", default=HEAD_SIZES, help="projection head layer sizes")
    model.add_argument("--head-mlp", action=argparse.BooleanOptionalAction, default=False,
                       help="plain MLP head (bias, no BN) instead of SimCLR v2's")  # fmt: skip
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per process and step")
    opt.add_argument("--epochs", type=int, default=EPOCHS)
    opt.add_argument("--steps-per-epoch", type=int, default=None, help="cap on steps per epoch (quick runs)")
    opt.add_argument("--optimizer", default=OPTIMIZER, choices=OPTIMIZERS)
    opt.add_argument("--lr", type=float, default=LR, help="base lr (default: the optimiser's rule)")
    opt.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY, help="not applied to biases and BN")
    opt.add_argument("--momentum", type=float, default=MOMENTUM)
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=NESTEROV,
                     help="Nesterov momentum (lars, sgd); --no-nesterov to turn off")  # fmt: skip
    opt.add_argument("--scheduler", default="cosine", choices=["cosine", "constant"])
    opt.add_argument("--warmup-epochs", type=float, default=WARMUP_EPOCHS, help="linear warm-up length")
    opt.add_argument("--temperature", type=float, default=TEMPERATURE, help="NT-Xent temperature")
    opt.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=True, help="SyncBatchNorm under DDP")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=SEED)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    run.add_argument("--resume", nargs="?", const="latest", default=None,
                     help="continue from the latest checkpoint of --name, or from the given file")  # fmt: skip
    run.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (resume later)")
    run.add_argument("--datasets-root", default=str(DATASETS_DIR))
    run.add_argument("--checkpoints-root", default=str(CHECKPOINTS_DIR))
    run.add_argument("--results-root", default=str(RESULTS_DIR))
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags describe."""
    fields = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["dataset"] = list(args.dataset)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        history = train(config_from_args(args), resume=args.resume, stop_after=args.stop_after)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        print(f"finetune.py: error: {err}", file=sys.stderr)
        return 2
    if history["epochs"]:
        last = history["epochs"][-1]
        print(f"epoch {last['epoch']}: loss {last['loss']:.4f}, lr {last['lr']:.3g}, {last['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
