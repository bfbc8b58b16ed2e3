"""Learning-rate schedule: linear warm-up then cosine decay, stepped once per optimisation step."""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr at `step`: (step+1)/warmup during warm-up, then cosine to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, kind: str = "cosine"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR for `kind` in ('cosine', 'constant'); its state_dict is plain numbers."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _Cosine(total_steps, warmup_steps))
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _Constant(warmup_steps))
    raise ValueError(f"unknown scheduler {kind!r}; valid: 'cosine', 'constant'")


class _Cosine:
    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps, self.warmup_steps = total_steps, warmup_steps

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps)


class _Constant:
    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        return (step + 1) / self.warmup_steps if step < self.warmup_steps else 1.0
