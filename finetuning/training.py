"""The SimCLR training loop: one process (CPU or one GPU) or several GPUs under ``torchrun``.

A checkpoint is written after every epoch; resuming from it reseeds and restores everything
(model, optimiser, schedule, generator states, history), so an interrupted run ends with the
same parameters as an uninterrupted one (bitwise on CPU with ``workers=0``).
"""

from __future__ import annotations

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

from extractor.sscd import SSCDNet, build_sscd, eval_preprocess
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
from finetuning.copy_policy import CopyPolicy, TwoCopies, make_policy
from finetuning.data import TwoViewDataset, training_paths
from finetuning.encoders import load_encoder
from finetuning.lars import LARS, default_lr, param_groups
from finetuning.losses import mix_batch, nt_xent, sscd_loss
from finetuning.model import ProjectionHead, SimCLR
from finetuning.names import OPTIMIZERS, RECIPES
from finetuning.schedule import make_scheduler
from helpers.atomic import save_figure
from helpers.cli import check_name
from helpers.jsonio import save_json
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR
from helpers.tables import write_csv

log = logging.getLogger(__name__)


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
    amp: bool = True  # bf16 autocast on CUDA (CPU always trains in fp32)
    # --- the SSCD recipe (recipe="sscd"): backbone -> GeM -> projection -> L2, InfoNCE + KoLeo
    recipe: str = "simclr"
    dim: int = 512  # projection size
    gem_p: float = 3.0
    learn_p: bool = False
    entropy_weight: float = 30.0
    mixup: float = 0.0  # probability per row of a mixup/cutmix positive (SSCD: 0.05)
    aug_p: dict[str, float] = field(default_factory=dict)  # step name -> probability overrides
    crop_scale: tuple[float, float] = (0.08, 1.0)
    train_attacks: list[str] | None = None  # catalogue attack ids added to the policy (held out from evaluation)
    freeze: float = 0.0  # share of the trunk's parameter tensors (from the input side) kept frozen
    eval_every: int = 0  # evaluate copy detection every N epochs (0: never; epoch 0 = before training)
    eval_size: int | None = None  # evaluation resolution (None: the training size)
    eval_database: list[str] = field(default_factory=lambda: ["demo_original", "demo_distractors"])
    eval_queries: list[str] = field(default_factory=lambda: ["demo_attacks", "demo_negatives"])
    eval_attacks: str = "heldout"  # "heldout" (families the policy never applies) or "all"
    eval_background: int = 1000  # training images used as the score-normalisation background (0: none)
    features_root: str = str(FEATURES_DIR)
    datasets_root: str = str(DATASETS_DIR)
    checkpoints_root: str = str(CHECKPOINTS_DIR)
    results_root: str = str(RESULTS_DIR)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "the run name (--name)")  # a folder under each root, never a path ('..', 'a/b')

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
    return 1e-3 if cfg.optimizer in ("adam", "adamw") else default_lr(cfg.batch_size * world)


def make_optimizer(cfg: TrainConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """LARS, Adam or SGD over two groups (biases/BN parameters without weight decay)."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "sgd":
        for g in groups:
            g.pop("lars_adaptation")
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer in ("adam", "adamw"):
        for g in groups:
            g.pop("lars_adaptation")
        return (torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam)(groups, lr=lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def build_model(
    cfg: TrainConfig, encoder: nn.Module | None = None, dim: int | None = None
) -> tuple[SimCLR | SSCDNet, Any]:
    """The recipe's model on registry encoder `cfg.encoder` (or a given module), and its preprocessing cfg.

    SimCLR: encoder + projection head. SSCD: the encoder's feature-map trunk -> GeM -> projection
    to `cfg.dim` -> L2 (a custom `encoder` must then output a (B, C, H, W) feature map).
    """
    if cfg.recipe == "sscd":
        if encoder is not None:
            net = SSCDNet(encoder, cfg.dim, cfg.gem_p, cfg.learn_p, backbone=cfg.encoder)
            return net, None
        return build_sscd(cfg.encoder, cfg.weights, cfg.dim, cfg.gem_p, cfg.learn_p)
    preprocess = None
    if encoder is None:
        encoder, dim, preprocess = load_encoder(cfg.encoder, cfg.weights)
    if dim is None:
        raise ValueError("pass the feature dimension `dim` with a custom encoder")
    sizes = cfg.head_sizes or [dim, dim, 128]
    return SimCLR(encoder, ProjectionHead(dim, sizes, mlp=cfg.head_mlp)), preprocess


def freeze_trunk(model: SSCDNet, share: float) -> list[nn.Module]:
    """Freeze the first `share` of the trunk's parameter tensors (input side); returns the fully frozen
    modules, kept in eval mode while training so their BatchNorm statistics stay those of the backbone."""
    if not 0 <= share <= 1:
        raise ValueError(f"freeze must be a share in [0, 1], got {share}")
    params = list(model.trunk.parameters())
    for p in params[: round(share * len(params))]:
        p.requires_grad_(False)
    return [
        m for m in model.trunk.modules()
        if list(m.parameters(recurse=False)) and not any(p.requires_grad for p in m.parameters(recurse=False))
    ]  # fmt: skip


def sscd_policy(cfg: TrainConfig, mean=None, std=None) -> CopyPolicy:
    """The copy augmentation policy a config describes."""
    return make_policy(cfg.size, mean, std, cfg.aug_p, tuple(cfg.crop_scale), cfg.train_attacks)


#: Catalogue families that the SimCLR policy's transforms imitate (RandomResizedCrop, colour
#: jitter, greyscale, Gaussian blur): none of them is scored after training with that policy.
SIMCLR_FAMILIES = ("brightness_enhancement", "color_enhancement", "contrast_enhancement", "cropping",
                   "gaussian_filter", "scaling")


def training_families(views: Any) -> list[str]:
    """The catalogue attack families a run's views apply (sorted): what evaluation must hold out."""
    from data_retrieval.attacks import attack_family

    if hasattr(views, "policy") and hasattr(views.policy, "covers"):  # SSCD's TwoCopies
        return views.policy.covers()
    if hasattr(views, "attack_ids"):  # SimCLR's copy policy: the catalogue attacks it draws
        return sorted({attack_family(a) for a in views.attack_ids})
    return sorted(SIMCLR_FAMILIES)


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed(cfg.seed + 1000 * epoch + rank)


def _write_logs(history: dict[str, list], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    columns = ["step", "epoch", "loss", "lr"]
    rows = [dict(zip(columns, r, strict=True)) for r in zip(*(history[c] for c in columns), strict=True)]
    write_csv(rows, results / "train_log.csv", columns)
    save_json(history["epochs"], results / "train_history.json")
    plot_training(history, results / "training.png")


def plot_training(history: dict[str, list], path: str | os.PathLike) -> None:
    """Loss and learning rate against step, one figure with two panels."""
    from matplotlib.figure import Figure  # the object API: no backend, no global pyplot state

    fig = Figure(figsize=(10, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(history["step"], history["loss"], lw=1)
    ax1.set(xlabel="step", ylabel="NT-Xent loss", title="training loss")
    ax2.plot(history["step"], history["lr"], lw=1, color="tab:red")
    ax2.set(xlabel="step", ylabel="learning rate", title="learning rate")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _empty_history() -> dict[str, list]:
    return {"step": [], "epoch": [], "loss": [], "lr": [], "epochs": []}


@dataclass
class Runtime:
    """Where this process runs: its rank among `world` processes and its device."""

    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1


@dataclass
class RunParts:
    """Everything built from the config: model, data, optimisation, and what a checkpoint must match."""

    model: nn.Module
    preprocess: Any
    sampler: torch.utils.data.DistributedSampler
    loader: torch.utils.data.DataLoader
    steps: int  # optimisation steps per epoch
    arch: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    lr: float
    frozen: list[nn.Module] = field(default_factory=list)  # modules kept in eval mode (frozen BN statistics)


@dataclass
class Progress:
    """The history so far and the first epoch still to train."""

    history: dict[str, list]
    start: int


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Rank, world size and device; joins the process group under torchrun."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if cfg.recipe not in RECIPES:
        raise ValueError(f"unknown recipe {cfg.recipe!r}; valid: {', '.join(RECIPES)}")
    rank, local_rank, world = _dist_info()
    rt = Runtime(rank, local_rank, world, _device(cfg, local_rank))
    if rt.distributed and not dist.is_initialized():
        if rt.device.type == "cuda":
            torch.cuda.set_device(rt.device)
        dist.init_process_group("nccl" if rt.device.type == "cuda" else "gloo")
    return rt


def build_parts(cfg: TrainConfig, rt: Runtime, encoder: nn.Module | None = None, dim: int | None = None) -> RunParts:
    """Model, two-view data loader, optimiser and schedule of a fresh run (seeded by `cfg.seed`)."""
    torch.manual_seed(cfg.seed)
    model, preprocess = build_model(cfg, encoder, dim)
    frozen = freeze_trunk(model, cfg.freeze) if cfg.recipe == "sscd" else []
    mean, std = getattr(preprocess, "mean", None), getattr(preprocess, "std", None)
    paths = training_paths(cfg.dataset, cfg.batch_size * rt.world, cfg.datasets_root)
    if cfg.recipe == "sscd":
        policy = sscd_policy(cfg, mean, std)
        data = TwoViewDataset(paths, TwoCopies(policy), preload=cfg.preload, with_index=True)
        policy.bind(data.image, len(data))
    else:
        views = make_views(cfg.policy, cfg.size, mean=mean, std=std, attack_ids=cfg.attacks)
        data = TwoViewDataset(paths, views, preload=cfg.preload)
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=rt.world, rank=rt.rank, shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(
        data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True,
        persistent_workers=cfg.workers > 0,
    )  # fmt: skip
    steps = len(loader) if cfg.steps_per_epoch is None else min(len(loader), cfg.steps_per_epoch)
    arch = {"encoder": cfg.encoder, **model.architecture()}
    if rt.distributed and cfg.sync_bn and rt.device.type == "cuda":  # SyncBatchNorm runs on GPUs only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(rt.device)
    lr = resolve_lr(cfg, rt.world)
    optimizer = make_optimizer(cfg, model, lr)
    scheduler = make_scheduler(optimizer, steps * cfg.epochs, math.ceil(cfg.warmup_epochs * steps), cfg.scheduler)
    return RunParts(model, preprocess, sampler, loader, steps, arch, optimizer, scheduler, lr, frozen)


def start_or_resume(cfg: TrainConfig, rt: Runtime, parts: RunParts, resume: str | os.PathLike | None) -> Progress:
    """Restore a checkpoint (`resume`), or write the config, the split and epoch 0 of a new run."""
    ckpt_dir, results = cfg.run_dirs()
    found = list_checkpoints(ckpt_dir)
    if resume is None and set(found) == {0} and rt.rank == 0:
        # only the untrained baseline of a run that failed before finishing an epoch: not work to keep
        log.warning("%s: replacing epoch 0 of a run that never finished an epoch", found[0])
        found[0].unlink()
        found = {}
    if rt.distributed:
        dist.barrier()
        found = list_checkpoints(ckpt_dir)
    if resume is None and found:
        raise FileExistsError(
            f"{ckpt_dir} already holds checkpoints of a run named {cfg.name!r}: pass --resume to continue it, "
            "or choose another --name"
        )
    if rt.distributed:
        dist.barrier()  # every process has checked before rank 0 writes epoch 0
    if resume is not None:
        path = _resume_path(resume, ckpt_dir)
        ckpt = load_checkpoint(path, map_location=rt.device)
        check_architecture(ckpt, parts.arch, path)
        check_resume_config(ckpt["config"], cfg, path)
        try:
            parts.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(f"{path} was saved for another architecture: {str(err).splitlines()[0]}") from None
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        parts.scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s (epoch %d)", path, ckpt["epoch"])
        return Progress(ckpt["history"], int(ckpt["epoch"]) + 1)
    history = _empty_history()
    if rt.rank == 0:
        save_json({**dataclasses.asdict(cfg), "lr_resolved": parts.lr, "world_size": rt.world}, results / "config.json")
        from finetuning.copy_eval import write_split  # every recipe: images by bytes, families (issue 21)

        views = parts.loader.dataset.views
        policy = getattr(views, "policy", views)
        write_split(cfg, parts.loader.dataset.paths, policy, results / "split.json", training_families(views))
        # epoch 0: the untrained model, the baseline of evaluation
        _save(cfg, ckpt_dir, 0, parts, history)
        _evaluate(cfg, 0, ckpt_dir)
    return Progress(history, 1)


def train_epoch(cfg: TrainConfig, rt: Runtime, parts: RunParts, net: nn.Module, epoch: int, history: dict) -> dict:
    """One epoch of optimisation steps; appends per-step rows to `history`; returns the epoch's summary."""
    _seed_epoch(cfg, epoch, rt.rank)
    parts.sampler.set_epoch(epoch)
    net.train()
    for module in parts.frozen:
        module.eval()
    t0, losses, current_lr = time.time(), [], parts.optimizer.param_groups[0]["lr"]
    components: dict[str, list[float]] = {}  # the loss's parts (SSCD: InfoNCE, KoLeo, similarities)
    amp = rt.device.type == "cuda" and cfg.amp
    bar = tqdm(parts.loader, total=parts.steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=rt.rank != 0, leave=False)
    for i, batch in enumerate(bar):
        if i >= parts.steps:
            break
        with torch.autocast(rt.device.type, dtype=torch.bfloat16 if amp else None, enabled=amp):
            loss, parts_ = _batch_loss(cfg, rt, net, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {float(loss)} at epoch {epoch}, step {i}: lower --lr or raise --temperature; "
                f"checkpoints up to epoch {epoch - 1} are intact"
            )
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        current_lr = parts.optimizer.param_groups[0]["lr"]
        parts.optimizer.step()
        parts.scheduler.step()
        value = float(loss.detach())
        losses.append(value)
        for key, v in parts_.items():
            components.setdefault(key, []).append(v)
        step = (epoch - 1) * parts.steps + i
        for key, v in zip(("step", "epoch", "loss", "lr"), (step, epoch, value, current_lr), strict=True):
            history[key].append(v)
        bar.set_postfix(loss=f"{value:.3f}")
    summary = {"epoch": epoch, "loss": sum(losses) / max(1, len(losses)), "lr": current_lr}
    summary.update({key: sum(v) / len(v) for key, v in components.items()})
    return {**summary, "seconds": time.time() - t0}


def _batch_loss(cfg: TrainConfig, rt: Runtime, net: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The recipe's loss of one batch and its parts: NT-Xent of the two views, or SSCD's InfoNCE + KoLeo (mixup)."""
    if cfg.recipe == "sscd":
        v1, v2, index = batch
        x = torch.cat([v1, v2])
        labels = torch.cat([index, index])
        if cfg.mixup > 0:
            x, labels = mix_batch(x, labels, p=cfg.mixup)
        z = net(x.to(rt.device, non_blocking=True)).float()
        return sscd_loss(z, labels.to(rt.device), cfg.temperature, cfg.entropy_weight)
    v1, v2 = batch
    z = net(torch.cat([v1, v2]).to(rt.device, non_blocking=True))
    z1, z2 = z.float().chunk(2)
    return nt_xent(z1, z2, cfg.temperature, gather=rt.distributed), {}


def end_epoch(cfg: TrainConfig, rt: Runtime, parts: RunParts, progress: Progress, summary: dict) -> None:
    """Record the epoch, then (rank 0) checkpoint it, write logs and figure, and evaluate it when due."""
    progress.history["epochs"].append(summary)
    if rt.rank == 0:
        ckpt_dir, results = cfg.run_dirs()
        _save(cfg, ckpt_dir, summary["epoch"], parts, progress.history)
        _write_logs(progress.history, results)
        _evaluate(cfg, summary["epoch"], ckpt_dir)


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
    rt = setup_runtime(cfg)
    parts = build_parts(cfg, rt, encoder, dim)
    progress = start_or_resume(cfg, rt, parts, resume)
    net: nn.Module = parts.model
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[rt.device] if rt.device.type == "cuda" else None)
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    for epoch in range(progress.start, last + 1):
        summary = train_epoch(cfg, rt, parts, net, epoch, progress.history)
        end_epoch(cfg, rt, parts, progress, summary)
    if rt.distributed:
        dist.barrier()
    return progress.history


def _evaluate(cfg: TrainConfig, epoch: int, ckpt_dir: Path) -> None:
    """Copy-detection evaluation of an SSCD checkpoint every `eval_every` epochs (0: never)."""
    if cfg.recipe != "sscd" or not cfg.eval_every or epoch % cfg.eval_every:
        return
    from finetuning.copy_eval import evaluate_epoch

    evaluate_epoch(cfg, epoch, checkpoint_path(ckpt_dir, epoch))


#: Settings a resumed run must share with its checkpoint (they shape the schedule and the data order).
RESUME_FIXED = (
    "epochs", "batch_size", "steps_per_epoch", "optimizer", "scheduler", "warmup_epochs", "seed", "policy", "recipe",
    "mixup", "aug_p", "train_attacks", "freeze",
)  # fmt: skip


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


def _save(cfg: TrainConfig, ckpt_dir: Path, epoch: int, parts: RunParts, history: dict) -> None:
    payload = {
        "epoch": epoch,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "rng": rng_state(),
        "architecture": parts.arch,
        "config": dataclasses.asdict(cfg),
        "history": history,
        "lr": parts.lr,
    }
    if cfg.recipe == "sscd":
        mean, std = getattr(parts.preprocess, "mean", None), getattr(parts.preprocess, "std", None)
        payload["eval_preprocess"] = eval_preprocess(cfg.eval_size or cfg.size, mean, std).to_dict()
    save_checkpoint(checkpoint_path(ckpt_dir, epoch), payload)
