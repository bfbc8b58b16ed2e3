"""Contrastive losses: SimCLR's NT-Xent (self term masked exactly) and a symmetric InfoNCE for pairs.

Under DDP, `nt_xent(..., gather=True)` compares the local rows with the projections of every
process (negatives from the whole global batch); `gather_with_grad` all-gathers with gradients,
so the result equals one process computing the loss over the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every process's gradient of the gathered rows and keeps the local slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All rows of `x` from every process (rank order) and the offset of this process's rows.

    Gradients flow back to every process's rows (all-reduced in backward), so the gradient of
    the sum of the per-process losses is exact; DDP's averaging then gives that of their mean.
    Every process must pass the same number of rows (DistributedSampler with drop_last).
    """
    if not _distributed():
        return x, 0
    return _GatherWithGrad.apply(x), dist.get_rank() * x.shape[0]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1, gather: bool = False) -> torch.Tensor:
    """NT-Xent of SimCLR: each view must pick its partner among the 2N - 1 other projections.

    Row i of ``cat(z1, z2)`` has logits ``cos(z_i, z_j) / temperature`` over every projection
    ``j != i`` (the self-similarity column is masked with -inf, never assumed to equal 1), and its
    target is the other view of the same image. Averaged over the 2B local rows.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must be (B, D) of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.shape[0]
    z1 = F.normalize(z1, dim=1, eps=1e-7)
    z2 = F.normalize(z2, dim=1, eps=1e-7)
    if gather:
        k1, offset = gather_with_grad(z1)
        k2, _ = gather_with_grad(z2)
    else:
        k1, k2, offset = z1, z2, 0
    n = k1.shape[0]
    queries = torch.cat([z1, z2])
    keys = torch.cat([k1, k2])
    logits = queries @ keys.T / temperature
    local = torch.arange(b, device=z1.device) + offset
    self_cols = torch.cat([local, local + n])
    positive = torch.cat([local + n, local])
    rows = torch.arange(2 * b, device=z1.device)
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[rows, self_cols] = True
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, positive)


class NTXentLoss(torch.nn.Module):
    """Module wrapper of `nt_xent` holding the temperature and whether to gather across processes."""

    def __init__(self, temperature: float = 0.1, gather: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature, self.gather)


def symmetric_info_nce(
    a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of `a` (queries) and `b` (their originals).

    With `groups` (one id per pair), pairs sharing an original are not negatives of each other:
    columns are the distinct originals, a -> b picks its original, and b -> a treats every query of
    that original as a positive. Without `groups` each pair is its own group (the CLIP loss).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must be (N, D) of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    if groups is None:
        logits = a @ b.T / temperature
        target = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    uniq, inverse = torch.unique(groups, return_inverse=True)
    first = torch.full((len(uniq),), len(groups), dtype=torch.long, device=a.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(groups), device=a.device), reduce="amin")
    logits = a @ b[first].T / temperature  # (N, U)
    loss_ab = F.cross_entropy(logits, inverse)
    positive = inverse[:, None] == torch.arange(len(uniq), device=a.device)[None, :]
    cols = logits.T  # (U, N)
    pos = cols.masked_fill(~positive.T, float("-inf")).logsumexp(dim=1)
    loss_ba = (cols.logsumexp(dim=1) - pos).mean()
    return (loss_ab + loss_ba) / 2
