"""The SimCLR training loop: one process (CPU or one GPU) or several GPUs under ``torchrun``.

A checkpoint is written after every epoch; resuming from it reseeds and restores everything
(model, optimiser, schedule, generator states, history), so an interrupted run ends with the
same parameters as an uninterrupted one (bitwise on CPU with ``workers=0``).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from finetuning.augment import make_views
from finetuning.checkpoint import (
    check_architecture,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from finetuning.data import TwoViewDataset, training_paths
from finetuning.encoders import load_encoder
from finetuning.lars import LARS, default_lr, param_groups
from finetuning.losses import nt_xent
from finetuning.model import ProjectionHead, SimCLR
from finetuning.schedule import make_scheduler
from helpers.atomic import atomic_write, save_figure
from helpers.jsonio import save_json
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, RESULTS_DIR

log = logging.getLogger(__name__)
OPTIMIZERS = ("lars", "adam", "sgd")


@dataclass
class TrainConfig:
    """Every setting of a fine-tuning run; saved in each checkpoint and in Results/<name>/config.json."""

    name: str = "finetune"
    dataset: str | list[str] = "demo_distractors"  # registered names or folders
    encoder: str = "resnet18"
    weights: str | None = None
    head_sizes: list[int] | None = None  # None: [dim, dim, 128]
    head_mlp: bool = False
    policy: str = "copy"
    attacks: list[str] | None = None  # attack ids of the copy policy (None: the 58 of the catalogue)
    size: int = 224
    batch_size: int = 32  # per process
    epochs: int = 10
    optimizer: str = "lars"
    lr: float | None = None  # None: 0.005 * sqrt(total batch) for lars/sgd, 1e-3 for adam
    weight_decay: float = 1e-6
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    temperature: float = 0.1
    workers: int = 0
    seed: int = 123
    device: str = "auto"
    preload: int | None = None
    steps_per_epoch: int | None = None  # cap, for quick runs
    sync_bn: bool = True
    datasets_root: str = str(DATASETS_DIR)
    checkpoints_root: str = str(CHECKPOINTS_DIR)
    results_root: str = str(RESULTS_DIR)
    extra: dict[str, Any] = field(default_factory=dict)

    def run_dirs(self) -> tuple[Path, Path]:
        """(checkpoint folder, results folder) of this run."""
        return Path(self.checkpoints_root) / self.name, Path(self.results_root) / self.name


def _dist_info() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment, (0, 0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def resolve_lr(cfg: TrainConfig, world: int) -> float:
    """The lr given, or the default of the optimiser (square-root rule for LARS and SGD)."""
    if cfg.lr is not None:
        return cfg.lr
    return 1e-3 if cfg.optimizer == "adam" else default_lr(cfg.batch_size * world)


def make_optimizer(cfg: TrainConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """LARS, Adam or SGD over two groups (biases/BN parameters without weight decay)."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "sgd":
        for g in groups:
            g.pop("lars_adaptation")
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        for g in groups:
            g.pop("lars_adaptation")
        return torch.optim.Adam(groups, lr=lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def build_model(cfg: TrainConfig, encoder: nn.Module | None = None, dim: int | None = None) -> tuple[SimCLR, Any]:
    """SimCLR model of the registry encoder `cfg.encoder` (or of a given module), and its preprocessing cfg."""
    preprocess = None
    if encoder is None:
        encoder, dim, preprocess = load_encoder(cfg.encoder, cfg.weights)
    if dim is None:
        raise ValueError("pass the feature dimension `dim` with a custom encoder")
    sizes = cfg.head_sizes or [dim, dim, 128]
    return SimCLR(encoder, ProjectionHead(dim, sizes, mlp=cfg.head_mlp)), preprocess


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed(cfg.seed + 1000 * epoch + rank)


def _write_logs(history: dict[str, list], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    with atomic_write(results / "train_log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "loss", "lr"])
        w.writerows(zip(history["step"], history["epoch"], history["loss"], history["lr"], strict=True))
    save_json(history["epochs"], results / "train_history.json")
    plot_training(history, results / "training.png")


def plot_training(history: dict[str, list], path: str | os.PathLike) -> None:
    """Loss and learning rate against step, one figure with two panels (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(history["step"], history["loss"], lw=1)
    ax1.set(xlabel="step", ylabel="NT-Xent loss", title="training loss")
    ax2.plot(history["step"], history["lr"], lw=1, color="tab:red")
    ax2.set(xlabel="step", ylabel="learning rate", title="learning rate")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def _empty_history() -> dict[str, list]:
    return {"step": [], "epoch": [], "loss": [], "lr": [], "epochs": []}


def train(
    cfg: TrainConfig,
    resume: str | os.PathLike | None = None,
    encoder: nn.Module | None = None,
    dim: int | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train, checkpointing every epoch; returns the history.

    `resume` is a checkpoint path or 'latest'; `encoder`/`dim` replace the registry encoder
    (tests, custom modules); `stop_after` ends after that epoch as if interrupted (time-boxed runs).
    """
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    rank, local_rank, world = _dist_info()
    distributed = world > 1
    device = _device(cfg, local_rank)
    if distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(cfg.seed)
    model, preprocess = build_model(cfg, encoder, dim)
    mean = getattr(preprocess, "mean", None)
    std = getattr(preprocess, "std", None)
    paths = training_paths(cfg.dataset, cfg.batch_size * world, cfg.datasets_root)
    views = make_views(cfg.policy, cfg.size, mean=mean, std=std, attack_ids=cfg.attacks)
    data = TwoViewDataset(paths, views, preload=cfg.preload)
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(
        data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True
    )
    steps = len(loader) if cfg.steps_per_epoch is None else min(len(loader), cfg.steps_per_epoch)
    arch = {"encoder": cfg.encoder, **model.architecture()}
    if distributed and cfg.sync_bn and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    lr = resolve_lr(cfg, world)
    optimizer = make_optimizer(cfg, model, lr)
    scheduler = make_scheduler(optimizer, steps * cfg.epochs, math.ceil(cfg.warmup_epochs * steps), cfg.scheduler)
    ckpt_dir, results = cfg.run_dirs()
    history, start = _empty_history(), 1
    if resume is None and list_checkpoints(ckpt_dir):
        raise FileExistsError(
            f"{ckpt_dir} already holds checkpoints of a run named {cfg.name!r}: pass --resume to continue it, "
            "or choose another --name"
        )
    if distributed:
        dist.barrier()  # every process has checked before rank 0 writes epoch 0
    if resume is not None:
        path = _resume_path(resume, ckpt_dir)
        ckpt = load_checkpoint(path, map_location=device)
        check_architecture(ckpt, arch, path)
        check_resume_config(ckpt["config"], cfg, path)
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(f"{path} was saved for another architecture: {str(err).splitlines()[0]}") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        history, start = ckpt["history"], int(ckpt["epoch"]) + 1
        log.info("resumed from %s (epoch %d)", path, ckpt["epoch"])
    elif rank == 0:
        save_json({**dataclasses.asdict(cfg), "lr_resolved": lr, "world_size": world}, results / "config.json")
        # epoch 0: the untrained model, the baseline of evaluation
        _save(cfg, ckpt_dir, 0, model, optimizer, scheduler, arch, history, lr)
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    for epoch in range(start, last + 1):
        _seed_epoch(cfg, epoch, rank)
        sampler.set_epoch(epoch)
        net.train()
        t0, losses = time.time(), []
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=rank != 0, leave=False)
        for i, (v1, v2) in enumerate(bar):
            if i >= steps:
                break
            z = net(torch.cat([v1, v2]).to(device, non_blocking=True))
            z1, z2 = z.float().chunk(2)
            loss = nt_xent(z1, z2, cfg.temperature, gather=distributed)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {float(loss)} at epoch {epoch}, step {i}: lower --lr or raise --temperature; "
                    f"checkpoints up to epoch {epoch - 1} are intact"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            current_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            losses.append(value)
            step = (epoch - 1) * steps + i
            for key, v in zip(("step", "epoch", "loss", "lr"), (step, epoch, value, current_lr), strict=True):
                history[key].append(v)
            bar.set_postfix(loss=f"{value:.3f}")
        history["epochs"].append(
            {"epoch": epoch, "loss": sum(losses) / max(1, len(losses)), "lr": current_lr, "seconds": time.time() - t0}
        )
        if rank == 0:
            _save(cfg, ckpt_dir, epoch, model, optimizer, scheduler, arch, history, lr)
            _write_logs(history, results)
    if distributed:
        dist.barrier()
    return history


#: Settings a resumed run must share with its checkpoint (they shape the schedule and the data order).
RESUME_FIXED = ("epochs", "batch_size", "steps_per_epoch", "optimizer", "scheduler", "warmup_epochs", "seed", "policy")


def check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Raise ValueError naming every setting of `RESUME_FIXED` that differs from the checkpoint's."""
    diff = {k: (saved.get(k), getattr(cfg, k)) for k in RESUME_FIXED if saved.get(k) != getattr(cfg, k)}
    if diff:
        detail = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume {path} with different settings ({detail}); start a new run (--name) instead")


def _resume_path(resume: str | os.PathLike, ckpt_dir: Path) -> Path:
    if str(resume) != "latest":
        return Path(resume)
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise FileNotFoundError(f"--resume: no checkpoint epoch_*.pth in {ckpt_dir}")
    return found[max(found)]


def _save(cfg, ckpt_dir, epoch, model, optimizer, scheduler, arch, history, lr) -> None:
    save_checkpoint(
        checkpoint_path(ckpt_dir, epoch),
        {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "architecture": arch,
            "config": dataclasses.asdict(cfg),
            "history": history,
            "lr": lr,
        },
    )
