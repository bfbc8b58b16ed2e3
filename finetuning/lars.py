"""LARS (layer-wise adaptive rate scaling), as in the SimCLR PyTorch ports, and the seed's lr rule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def default_lr(total_batch: int, scale: float = 0.005) -> float:
    """The square-root rule used when no lr is given: ``0.005 * sqrt(total batch)`` (0.08 at 256)."""
    if total_batch < 1:
        raise ValueError(f"total batch must be >= 1, got {total_batch}")
    return scale * math.sqrt(total_batch)


def exclude_from_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and normalisation parameters (every 1-D tensor) get neither weight decay nor LARS scaling."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (decayed, LARS-adapted) and biases/BN parameters (neither)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if exclude_from_decay(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_adaptation": True},
        {"params": no_decay, "weight_decay": 0.0, "lars_adaptation": False},
    ]


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each adapted tensor is scaled by its trust ratio.

    ``trust = eta * ||w|| / (||g|| + weight_decay * ||w|| + eps)``; groups with
    ``lars_adaptation=False`` (biases, BN) use plain SGD with momentum. Nesterov only if asked.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        trust_coefficient: float = 1e-3,
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r} ({type(nesterov).__name__})")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            trust_coefficient=trust_coefficient,
            eps=eps,
            lars_adaptation=True,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            wd, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if group["lars_adaptation"]:
                    p_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * p_norm / (g_norm + wd * p_norm + group["eps"]),
                        torch.ones_like(p_norm),
                    )
                    d_p = d_p.add(p, alpha=wd).mul(trust)
                elif wd:
                    d_p = d_p.add(p, alpha=wd)
                if momentum:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d_p.clone()
                    else:
                        state["momentum_buffer"].mul_(momentum).add_(d_p)
                    buf = state["momentum_buffer"]
                    d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(d_p, alpha=-group["lr"])
        return loss
