"""The SimCLR model: an encoder from the extractor registry plus a projection head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """SimCLR v2's head: Linear (no bias) + BN1d (+ ReLU except after the last layer), for each size.

    ``ProjectionHead(2048, [2048, 2048, 128])`` is the 3-layer v2 head; ``mlp=True`` gives a plain
    MLP instead (Linear with bias, ReLU between layers, no BN), as in SimCLR v1.
    """

    def __init__(self, in_dim: int, sizes: Sequence[int] = (2048, 2048, 128), mlp: bool = False) -> None:
        sizes = [int(s) for s in sizes]
        if not sizes or min(sizes) < 1 or in_dim < 1:
            raise ValueError(f"head sizes must be positive integers, got in_dim={in_dim}, sizes={sizes}")
        layers: list[nn.Module] = []
        dims = [int(in_dim), *sizes]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(sizes) - 1
            if mlp:
                layers.append(nn.Linear(a, b))
            else:
                layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b, affine=True)]
            if not last:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.in_dim, self.sizes, self.mlp = int(in_dim), sizes, mlp


class SimCLR(nn.Module):
    """Encoder (pooled features, shape (B, dim)) followed by a projection head; both are trained."""

    def __init__(self, encoder: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if h.ndim != 2:
            h = torch.flatten(h, 1)
        return self.head(h)

    def architecture(self) -> dict:
        """What a checkpoint must match to be loaded into this model (checked on --resume)."""
        return {
            "encoder_class": type(self.encoder).__name__,
            "head_in": self.head.in_dim,
            "head_sizes": list(self.head.sizes),
            "head_mlp": bool(self.head.mlp),
        }
