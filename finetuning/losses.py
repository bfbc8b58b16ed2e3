"""Contrastive losses: SimCLR's NT-Xent (self term masked exactly) and a symmetric InfoNCE for pairs.

Under DDP, `nt_xent(..., gather=True)` compares the local rows with the projections of every
process (negatives from the whole global batch); `gather_with_grad` all-gathers with gradients,
so the result equals one process computing the loss over the global batch.
"""

from __future__ import annotations

import math

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


def koleo(z: torch.Tensor, exclude: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """KoLeo entropy regulariser (Sablayrolles et al. 2019, SSCD): ``-mean_i log min_j ||z_i - z_j||``.

    `z` are L2-normalised rows; the nearest neighbour of row i is taken among the rows j != i that
    `exclude[i, j]` does not mark (SSCD excludes the other copies of the same image). Minimising it
    spreads the descriptors over the sphere. The distance comes from the cosine
    (``sqrt(2 - 2 cos)``, clamped at `eps`), as SSCD computes it.
    """
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"koleo needs (N >= 2, D) rows, got shape {tuple(z.shape)}")
    sim = z @ z.T
    mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    if exclude is not None:
        mask = mask | exclude
    nearest = sim.masked_fill(mask, -2.0).max(dim=1).values
    return -(2 - 2 * nearest).clamp(min=eps).sqrt().log().mean()


def match_matrix(labels: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: rows i and j show (some of) the same image; `labels` are instance ids (N,) or mixup weights (N, C)."""
    if labels.ndim == 1:
        return labels[:, None] == labels[None, :]
    return (labels @ labels.T) > 0


def sscd_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.05, entropy_weight: float = 30.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """SSCD's objective: InfoNCE over every non-trivial match plus `entropy_weight` x KoLeo on the nearest non-match.

    `z`: (N, D) L2-normalised descriptors of all copies; `labels`: (N,) instance ids, or (N, C)
    mixup weights (rows sharing any image are positives). For each positive pair (i, j) the
    probability is ``exp(s_ij/T) / (exp(s_ij/T) + sum_{k non-match} exp(s_ik/T))``; the loss is
    ``-sum log p / N`` (mixup: the mean over each row's positives, then over rows). Returns the
    loss and its parts as floats.
    """
    if z.ndim != 2 or len(labels) != len(z):
        raise ValueError(f"z must be (N, D) with N labels, got {tuple(z.shape)} and {len(labels)} labels")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = len(z)
    sim = z @ z.T
    match = match_matrix(labels)
    identity = torch.eye(n, dtype=torch.bool, device=z.device)
    positives = match & ~identity
    if not positives.any(dim=1).all():
        raise ValueError("every row needs another copy of its image in the batch (two views per image)")
    logits = sim / temperature
    negatives = logits.masked_fill(match, float("-inf")).logsumexp(dim=1, keepdim=True)
    log_p = logits - torch.logaddexp(logits, negatives)
    per_pair = -(log_p * positives)
    if labels.ndim == 1:
        info_nce = per_pair.sum() / n
    else:
        info_nce = (per_pair.sum(dim=1) / positives.sum(dim=1)).mean()
    loss = info_nce
    parts = {"info_nce": float(info_nce.detach())}
    if entropy_weight:
        entropy = koleo(z, exclude=match)
        loss = loss + entropy_weight * entropy
        parts["koleo"] = float(entropy.detach())
    with torch.no_grad():
        parts["positive_sim"] = float(sim[positives].mean())
        parts["nearest_negative_sim"] = float(sim.masked_fill(match, -2.0).max(dim=1).values.mean())
    return loss, parts


def mix_batch(
    x: torch.Tensor, labels: torch.Tensor, p: float = 0.05, alpha: float = 2.0, cutmix_prob: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSCD's contrastive mixup/cutmix: with probability `p` per row, mix row i with row N-1-i.

    Returns the images and (N, C) label weights over the C distinct instances (one-hot for rows
    left alone), so `sscd_loss` treats every row that shares an image as a positive. `lam` ~
    Beta(alpha, alpha); cutmix (probability `cutmix_prob`) pastes a box of area 1 - lam instead.
    Randomness from torch's global generator (seeded and checkpointed by the training loop).
    """
    uniq, inverse = torch.unique(labels, return_inverse=True)
    weights = torch.nn.functional.one_hot(inverse, len(uniq)).float()
    n = len(x)
    mixed = torch.rand(n) < p
    if not mixed.any():
        return x, weights
    out, new_w = x.clone(), weights.clone()
    beta = torch.distributions.Beta(alpha, alpha)
    h, w = x.shape[-2:]
    for i in torch.nonzero(mixed).flatten().tolist():
        j = n - 1 - i
        lam = float(beta.sample())
        if float(torch.rand(())) < cutmix_prob:
            ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
            cy = int(torch.randint(h, ()))
            cx = int(torch.randint(w, ()))
            y0, y1 = max(0, cy - ch // 2), min(h, cy + ch // 2)
            x0, x1 = max(0, cx - cw // 2), min(w, cx + cw // 2)
            out[i, :, y0:y1, x0:x1] = x[j, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            out[i] = lam * x[i] + (1 - lam) * x[j]
        new_w[i] = lam * weights[i] + (1 - lam) * weights[j]
    return out, new_w
