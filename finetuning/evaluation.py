"""Evaluate a fine-tuning run epoch by epoch: retrieval (fast_search) and cluster geometry (clustering).

For each chosen checkpoint the encoder is registered in the extractor registry as
``<run>-epoch<e>``, its features are extracted into the feature store, a Flat search experiment
scores recall@k / micro-AP of the queries, and the ground-truth groups (query + its original)
get the seed's geometry (diameter, dispersion, SNR ratios). Epoch 0 is the untrained encoder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from finetuning.checkpoint import check_architecture, list_checkpoints, load_checkpoint
from finetuning.model import SimCLR
from finetuning.training import TrainConfig, build_model
from helpers.atomic import save_figure
from helpers.jsonio import load_json, save_json
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR
from helpers.tables import write_csv

log = logging.getLogger(__name__)


def eval_preprocess(size: int, mean=None, std=None):
    """Whole image resized to `size` x `size` (bicubic), the encoder's normalisation: what training saw."""
    from extractor.neural import PreprocessCfg

    return PreprocessCfg(
        resize_size=size, resize_mode="square", crop_size=None, interpolation="bicubic",
        mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
    )  # fmt: skip


def checkpoint_encoder(
    path: str | os.PathLike, encoder: nn.Module | None = None, dim: int | None = None
) -> tuple[nn.Module, TrainConfig, Any]:
    """(encoder in eval mode, the run's TrainConfig, the encoder's PreprocessCfg) of a checkpoint."""
    ckpt = load_checkpoint(path)
    fields = set(TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{k: v for k, v in ckpt["config"].items() if k in fields})
    model, preprocess = build_model(cfg, encoder, dim)
    check_architecture(ckpt, {"encoder": cfg.encoder, **model.architecture()}, path)
    model.load_state_dict(ckpt["model"])
    encoder = model.encoder if isinstance(model, SimCLR) else model  # SSCD: the whole network is the descriptor
    return encoder.eval(), cfg, preprocess


def register_checkpoint(path: str | os.PathLike, method: str, encoder: nn.Module | None = None, dim: int | None = None):
    """Register a checkpoint's encoder as extractor `method` (L2-normalised features); returns it."""
    from extractor.registry import register_extractor

    module, cfg, preprocess = checkpoint_encoder(path, encoder, dim)
    pre = eval_preprocess(cfg.size, getattr(preprocess, "mean", None), getattr(preprocess, "std", None))
    return register_extractor(method, module, preprocess=pre, normalize=True, params={"weights": str(path)})


def geometry_summary(method: str, datasets: Sequence[str], features_root, datasets_root) -> dict[str, float]:
    """Median cluster geometry of the ground-truth groups (query copies + original) in `datasets`."""
    from clustering.geometry import cluster_geometry
    from clustering.groundtruth import load_clustering_data
    from clustering.spaces import prepare

    data = load_clustering_data(
        method, list(datasets), negatives="exclude", features_root=features_root, datasets_root=datasets_root
    )
    return cluster_geometry(prepare(data.features, "cosine"), data.groups).summary()


def evaluate_run(
    name: str,
    database: Sequence[str],
    queries: Sequence[str],
    epochs: Sequence[int] | None = None,
    cluster_datasets: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    checkpoints_root: str | os.PathLike = CHECKPOINTS_DIR,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    results_root: str | os.PathLike = RESULTS_DIR,
    batch_size: int = 64,
    workers: int = 0,
    overwrite: bool = False,
    encoder: nn.Module | None = None,
    dim: int | None = None,
) -> list[dict[str, Any]]:
    """Score every chosen epoch of run `name`; writes Results/<name>/evaluation.{json,csv,png}.

    Rows of epochs scored by an earlier call are kept, so epochs can be evaluated as they arrive.
    Returns every row, sorted by epoch.
    """
    from extractor.pipeline import extract_dataset
    from extractor.registry import unregister_extractor
    from fast_search.experiment import run_experiment

    found = list_checkpoints(Path(checkpoints_root) / name)
    if not found:
        raise FileNotFoundError(f"no checkpoints epoch_*.pth in {Path(checkpoints_root) / name}")
    epochs = sorted(found) if epochs is None else list(epochs)
    missing = [e for e in epochs if e not in found]
    if missing:
        raise ValueError(f"run {name!r} has no checkpoint for epochs {missing}; available: {sorted(found)}")
    out = Path(results_root) / name
    previous = load_json(out / "evaluation.json") if (out / "evaluation.json").is_file() else []
    rows = [r for r in previous if r.get("epoch") not in epochs]  # earlier calls' epochs are kept
    for epoch in tqdm(epochs, desc=f"evaluate {name}"):
        method = f"{name}-epoch{epoch:03d}"
        ext = register_checkpoint(found[epoch], method, encoder, dim)
        try:
            for dataset in [*database, *queries]:
                extract_dataset(
                    ext, dataset, features_root, datasets_root, batch_size=batch_size, workers=workers,
                    overwrite=overwrite, if_changed="redo",  # a retrained epoch's checkpoint: new features
                )  # fmt: skip
        finally:
            unregister_extractor(method)
        res = run_experiment(
            f"epoch{epoch:03d}", method, list(database), list(queries), overwrite=True, ks=list(ks),
            metrics=["cosine"], features_root=str(features_root), results_root=str(out / "search"),
        )  # fmt: skip
        run = res["runs"][0]
        row = {"epoch": epoch, "method": method}
        row.update({f"recall@{k}": v for k, v in run["recall_at_k"].items()})
        row.update({"micro_ap": run["micro_ap"], "roc_auc": run["roc_auc"]})
        row.update(geometry_summary(method, cluster_datasets or [*queries, *database], features_root, datasets_root))
        rows = sorted([*rows, row], key=lambda r: r["epoch"])
        save_json(rows, out / "evaluation.json")
    write_csv(rows, out / "evaluation.csv")
    plot_evaluation(rows, out / "evaluation.png")
    return rows


def plot_evaluation(rows: list[dict], path: str | os.PathLike) -> None:
    """Retrieval (recall@k, micro-AP) and geometry (SNR ratios) against epoch."""
    from matplotlib.figure import Figure  # the object API: no backend, no global pyplot state

    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
    for key in [k for k in rows[0] if k.startswith("recall@")] + ["micro_ap"]:
        ax1.plot(epochs, [r[key] for r in rows], marker="o", label=key)
    ax1.set(xlabel="epoch", ylabel="score", title="retrieval of copies")
    ax1.legend()
    for key, label in (
        ("median_snr_diameter_separation", "diameter / separation"),
        ("median_snr_dispersion_centroid", "dispersion / centroid dist."),
    ):
        ax2.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax2.set(xlabel="epoch", ylabel="median ratio (lower is better)", title="cluster geometry")
    ax2.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
