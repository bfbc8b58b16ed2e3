"""A tiny encoder and training config shared by the fine-tuning tests."""

from __future__ import annotations

import torch
from torch import nn

from finetuning.training import TrainConfig


def tiny_encoder(seed: int = 0, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2), nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


def config(tmp_path, image_folder, **kw) -> TrainConfig:
    base = dict(
        name="run", dataset=str(image_folder), encoder="tiny", policy="simclr", size=32, batch_size=4, epochs=3,
        optimizer="sgd", lr=0.05, head_sizes=[16, 8], checkpoints_root=str(tmp_path / "ckpt"),
        results_root=str(tmp_path / "results"), warmup_epochs=1,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)
