"""ILIAS's pooling of a backbone's output: head, cls, gap, mac, gem, rmac, rgem, local.

A `Backbone` adapter gives two views of a model: `forward_head(x)` (the model's own global
descriptor) and `forward_map(x)` -> (class token or None, feature map (B, C, h, w)); ViT patch
tokens are laid out on their patch grid. `PooledModel(backbone, pooling)` then returns (B, C)
descriptors, or (B, h*w, C) tokens for `local`. Differences from ILIAS's code (on purpose):
GeM shifts negative activations (ViT tokens) up before the power and back after (ILIAS adds the
negative minimum, which drives them further down); R-MAC / R-GeM L2-normalise each region before
summing, as Tolias et al. define it; quarter-turn rotations do not cut corners.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("head", "cls", "gap", "mac", "gem", "rmac", "rgem", "local")
GEM_P = 3.0


def gap(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling (SPoC) of (B, C, h, w) -> (B, C)."""
    return x.mean(dim=(2, 3))


def mac(x: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: spatial max."""
    return x.amax(dim=(2, 3))


def gem(x: torch.Tensor, p: float = GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean (p=3): (mean x^p)^(1/p); a map with negative values is shifted to >= 0 first."""
    shift = x.amin(dim=(2, 3), keepdim=True).clamp(max=0)
    pooled = (x - shift).clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
    return pooled + shift.flatten(1)


def regions(h: int, w: int, levels: tuple[int, ...] = (1, 2, 3), overlap: float = 0.4) -> list[tuple[int, int, int]]:
    """R-MAC square regions (top, left, side) on an h x w map: the whole map, then l x l grids (Tolias et al.)."""
    side_min = min(h, w)
    steps = torch.arange(2, 8, dtype=torch.float64)
    b = (max(h, w) - side_min) / (steps - 1)
    extra = int(torch.argmin(torch.abs((side_min**2 - side_min * b) / side_min**2 - overlap))) + 1
    extra_w, extra_h = (extra, 0) if h < w else (0, extra)
    if h == w:
        extra_w = extra_h = 0
    out = [(0, 0, -1)] if 1 in levels else []  # -1: the whole map
    for level in levels:
        if level == 1:
            continue
        side = math.floor(2 * side_min / (level + 1))
        if side < 1:
            continue
        half = math.floor(side / 2 - 1)
        n_w, n_h = level + extra_w, level + extra_h
        step_w = (w - side) / (n_w - 1) if n_w > 1 else 0
        step_h = (h - side) / (n_h - 1) if n_h > 1 else 0
        lefts = [math.floor(half + i * step_w) - half for i in range(n_w)]
        tops = [math.floor(half + i * step_h) - half for i in range(n_h)]
        out += [(t, left, side) for t in tops for left in lefts]
    return out


def regional(x: torch.Tensor, aggregate, levels: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """Sum of the L2-normalised `aggregate` (mac / gem) of every R-MAC region."""
    total = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    for top, left, side in regions(x.shape[2], x.shape[3], levels):
        part = x if side < 0 else x[:, :, top:top + side, left:left + side]
        total = total + F.normalize(aggregate(part), dim=1)
    return total


def rmac(x: torch.Tensor) -> torch.Tensor:
    return regional(x, mac)


def rgem(x: torch.Tensor) -> torch.Tensor:
    return regional(x, gem)


MAP_POOLS = {"gap": gap, "mac": mac, "gem": gem, "rmac": rmac, "rgem": rgem}


def pad_to_multiple(x: torch.Tensor, multiple: int | None) -> torch.Tensor:
    """Centre zero-pad (B, C, H, W) so H and W are multiples of `multiple` (ViT patch size), as ILIAS."""
    if not multiple or multiple <= 1:
        return x
    h, w = x.shape[-2:]
    dh, dw = (-h) % multiple, (-w) % multiple
    if not (dh or dw):
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    """(B, L, C) patch tokens -> (B, C, h, w) on their grid, or (B, C, L, 1) when the grid is unknown."""
    b, length, c = tokens.shape
    if grid is None or grid[0] * grid[1] != length:
        return tokens.transpose(1, 2).reshape(b, c, length, 1)
    return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1])


class Backbone(nn.Module):
    """Adapter interface: `forward_head` (model's descriptor) and `forward_map` ((cls | None, map))."""

    #: zero-pad inputs to a multiple of this (ViT patch size), or None
    multiple: int | None = None

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_map(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no feature map: only pooling='head' is available")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(pad_to_multiple(x, self.multiple))


class AvgpoolHookBackbone(Backbone):
    """A CNN whose forward calls an `avgpool` module: the map is that module's input (torchvision, DINO R50)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._captured: torch.Tensor | None = None
        avgpool = getattr(model, "avgpool", None)
        if isinstance(avgpool, nn.Module):
            avgpool.register_forward_pre_hook(self._capture)
        self.has_map = isinstance(avgpool, nn.Module)

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._captured = args[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_map(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if not self.has_map:
            return super().forward_map(x)
        self._captured = None
        self.model(x)
        fmap, self._captured = self._captured, None
        return None, fmap


class PooledModel(nn.Module):
    """backbone + pooling: (B, 3, H, W) -> (B, C) descriptors, or (B, tokens, C) for 'local'."""

    def __init__(self, backbone: Backbone, pooling: str = "head") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")
        self.backbone = backbone
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, self.backbone.multiple)
        if self.pooling == "head":
            return self.backbone.forward_head(x)
        cls, fmap = self.backbone.forward_map(x)
        if self.pooling == "cls":
            if cls is None:
                raise ValueError(f"pooling='cls' needs a class token; {type(self.backbone).__name__} has none")
            return cls
        fmap = fmap.float()
        if self.pooling == "local":
            return fmap.flatten(2).transpose(1, 2)
        return MAP_POOLS[self.pooling](fmap)
