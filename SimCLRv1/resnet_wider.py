"""SimCLR v1 ResNet-50 at widths 1x, 2x, 4x: the plain (no selective kernel) SimCLR ResNet.

The v1 checkpoints use the same TensorFlow ResNet as v2 without selective kernels (7x7 stem,
torchvision-style bottleneck with the stride on the 3x3 conv, every channel times the width), so the
layers are defined once in `SimCLRv2.resnet` and reused here.
"""

from __future__ import annotations

from SimCLRv1.names import MODELS, WIDTHS, parse_model_name  # noqa: F401  (re-exported: the names live there)
from SimCLRv2.resnet import DEPTHS, ResNet


def resnet50_wider(width: int, num_classes: int = 1000) -> ResNet:
    """SimCLR v1 ResNet-50 of the given width (1, 2 or 4); features are 2048 * width wide."""
    if width not in WIDTHS:
        raise ValueError(f"SimCLR v1 width must be one of {WIDTHS}, got {width!r}")
    return ResNet(DEPTHS[50], width, sk_ratio=0.0, num_classes=num_classes)


def resnet50x1(num_classes: int = 1000) -> ResNet:
    """SimCLR v1 ResNet-50 (1x), 2048-d features."""
    return resnet50_wider(1, num_classes)


def resnet50x2(num_classes: int = 1000) -> ResNet:
    """SimCLR v1 ResNet-50 (2x), 4096-d features."""
    return resnet50_wider(2, num_classes)


def resnet50x4(num_classes: int = 1000) -> ResNet:
    """SimCLR v1 ResNet-50 (4x), 8192-d features."""
    return resnet50_wider(4, num_classes)
