"""SimCLR v1/v2 ResNets in PyTorch, layer for layer as the official TensorFlow code builds them.

One definition serves both versions: SimCLR v1 is the plain path (7x7 stem, stride on the 3x3 conv),
SimCLR v2 adds selective kernels (sk_ratio > 0: 3-conv stem, SK units, ResNet-D average-pool shortcuts).
Pooling follows TensorFlow's "SAME" rules exactly, so converted weights reproduce the TF outputs.
No TensorFlow import here: conversion lives in `SimCLRv2/convert.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from SimCLRv2.names import DEPTHS, MODELS, parse_model_name  # noqa: F401  (re-exported: the names live there)

BN_EPS = 1e-5  # resnet.BATCH_NORM_EPSILON in google-research/simclr
SK_RATIO = 0.0625  # the ratio of every released sk1 checkpoint


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pooling with TF 'SAME' padding (pads after, not before, on even inputs; torch pads both)."""
    top, bottom = _same_pads(x.shape[-2], kernel, stride)
    left, right = _same_pads(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def avg_pool_shortcut(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The ResNet-D shortcut pooling of the sk1 models: 2x2 average, as `bottleneck_block` does it."""
    if stride > 1:  # fixed_padding(x, 2) (one zero row/column after), then a VALID pool counting the zeros
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride)
    # stride 1 uses 'SAME' padding, where TF averages over the valid pixels only
    sums = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1, divisor_override=1)
    ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
    counts = F.avg_pool2d(F.pad(ones, (0, 1, 0, 1)), 2, 1, divisor_override=1)
    return sums / counts


def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free conv; symmetric padding equals TF's fixed_padding/'SAME' for these odd kernels."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)


def bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the TF epsilon."""
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class Stem(nn.Module):
    """7x7/2 conv (sk0) or three 3x3 convs, the first strided (sk1), then BN-ReLU and a 3x3/2 max pool."""

    def __init__(self, channels: int, sk: bool):
        super().__init__()
        self.sk = sk
        if sk:
            self.conv1, self.bn1 = conv(3, channels // 2, 3, 2), bn(channels // 2)
            self.conv2, self.bn2 = conv(channels // 2, channels // 2, 3), bn(channels // 2)
            self.conv3, self.bn3 = conv(channels // 2, channels, 3), bn(channels)
        else:
            self.conv1, self.bn1 = conv(3, channels, 7, 2), bn(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.sk:
            x = F.relu(self.bn2(self.conv2(x)))
            x = F.relu(self.bn3(self.conv3(x)))
        return max_pool_same(x, 3, 2)


class SelectiveKernel(nn.Module):
    """SK unit: one conv gives two 3x3 streams; a squeeze path mixes them with a softmax."""

    def __init__(self, cin: int, filters: int, stride: int, sk_ratio: float, min_dim: int = 32):
        super().__init__()
        mid = max(int(filters * sk_ratio), min_dim)
        self.conv, self.bn = conv(cin, 2 * filters, 3, stride), bn(2 * filters)
        self.fc1, self.fc_bn = conv(filters, mid, 1), bn(mid)
        self.fc2 = conv(mid, 2 * filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = torch.stack(F.relu(self.bn(self.conv(x))).chunk(2, dim=1))  # (2, B, C, H, W)
        squeezed = streams.sum(0).mean((2, 3), keepdim=True)
        mixing = self.fc2(F.relu(self.fc_bn(self.fc1(squeezed))))
        weights = torch.stack(mixing.chunk(2, dim=1)).softmax(dim=0)
        return (streams * weights).sum(0)


class Downsample(nn.Module):
    """Projection shortcut: strided 1x1 conv (sk0) or 2x2 average pool then 1x1 conv (sk1, ResNet-D)."""

    def __init__(self, cin: int, cout: int, stride: int, sk: bool):
        super().__init__()
        self.stride, self.sk = stride, sk
        self.conv = conv(cin, cout, 1, 1 if sk else stride)
        self.bn = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sk:
            x = avg_pool_shortcut(x, self.stride)
        return self.bn(self.conv(x))


class Bottleneck(nn.Module):
    """Torchvision-style bottleneck (stride on the 3x3), expansion 4; the 3x3 is an SK unit for sk1."""

    expansion = 4

    def __init__(self, cin: int, filters: int, stride: int, sk_ratio: float, projection: bool):
        super().__init__()
        sk = sk_ratio > 0
        cout = filters * self.expansion
        self.downsample = Downsample(cin, cout, stride, sk) if projection else None
        self.conv1, self.bn1 = conv(cin, filters, 1), bn(filters)
        if sk:
            self.sk = SelectiveKernel(filters, filters, stride, sk_ratio)
        else:
            self.conv2, self.bn2 = conv(filters, filters, 3, stride), bn(filters)
        self.conv3, self.bn3 = conv(filters, cout, 1), bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.sk(x) if hasattr(self, "sk") else F.relu(self.bn2(self.conv2(x)))
        return F.relu(self.bn3(self.conv3(x)) + shortcut)


class ResNet(nn.Module):
    """SimCLR ResNet: `forward_features` gives the pooled backbone output, `forward` the fc logits."""

    def __init__(self, layers: tuple[int, ...] = DEPTHS[50], width: int = 1, sk_ratio: float = 0.0,
                 num_classes: int = 1000, base_channels: int = 64):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 positive block counts, got {layers!r}")
        if width < 1 or base_channels < 2:
            raise ValueError(f"width must be >= 1 and base_channels >= 2, got {width!r}, {base_channels!r}")
        self.layers, self.width, self.sk_ratio = tuple(layers), width, sk_ratio
        channels = base_channels * width
        self.stem = Stem(channels, sk_ratio > 0)
        cin = channels
        for i, blocks in enumerate(layers):
            filters = channels * 2**i
            stage = [Bottleneck(cin, filters, 1 if i == 0 else 2, sk_ratio, True)]
            cin = filters * Bottleneck.expansion
            stage += [Bottleneck(cin, filters, 1, sk_ratio, False) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled backbone output, shape (B, 2048 * width) for the real models."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


class ScaleOnlyBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d without the beta offset, like TF's batch_normalization(center=False)."""

    def __init__(self, num_features: int, eps: float = BN_EPS):
        super().__init__(num_features, eps=eps)
        self.register_parameter("bias", None)


class ContrastiveHead(nn.Module):
    """SimCLR v2 projection head: (Linear no bias, BN, ReLU) x2, then Linear no bias, BN without beta."""

    def __init__(self, in_dim: int, out_dim: int = 128, num_layers: int = 3):
        super().__init__()
        self.linears, self.bns = nn.ModuleList(), nn.ModuleList()
        for i in range(num_layers):
            last = i == num_layers - 1
            dim = out_dim if last else in_dim
            self.linears.append(nn.Linear(in_dim, dim, bias=False))
            self.bns.append(ScaleOnlyBatchNorm1d(dim) if last else nn.BatchNorm1d(dim, eps=BN_EPS))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, (linear, norm) in enumerate(zip(self.linears, self.bns, strict=True)):
            h = norm(linear(h))
            if i < len(self.linears) - 1:
                h = F.relu(h)
        return h


def get_resnet(name: str = "r50_2x_sk1", num_classes: int = 1000) -> tuple[ResNet, ContrastiveHead]:
    """The backbone (with its supervised fc) and the contrastive head of one released v2 model."""
    depth, width, sk = parse_model_name(name)
    model = ResNet(DEPTHS[depth], width, SK_RATIO if sk else 0.0, num_classes)
    return model, ContrastiveHead(model.num_features)
