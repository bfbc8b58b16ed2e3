"""Augmentation policies that turn one image into two views: SimCLR's, and copy detection's.

Both return tensors in [0, 1] then normalised with the encoder's mean/std (the same
normalisation its features are extracted with). Randomness comes from torch's global generator
(seeded, saved in checkpoints), so a run is reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms as T


def _finish(mean: Sequence[float] | None, std: Sequence[float] | None) -> list:
    steps: list = [T.ToTensor()]
    if mean is not None and std is not None:
        steps.append(T.Normalize(mean, std))
    return steps


def simclr_transform(
    size: int = 224, jitter: float = 1.0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> T.Compose:
    """SimCLR v1/v2: random resized crop (bicubic), flip, colour jitter p=0.8, greyscale p=0.2, blur p=0.5."""
    kernel = int(0.1 * size) // 2 * 2 + 1
    return T.Compose(
        [
            T.RandomResizedCrop(size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(0.8 * jitter, 0.8 * jitter, 0.8 * jitter, 0.2 * jitter)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
            *_finish(mean, std),
        ]
    )


class SimCLRViews:
    """Two independent SimCLR augmentations of the same image."""

    def __init__(self, size: int = 224, jitter: float = 1.0, mean=None, std=None) -> None:
        self.size, self.jitter, self.mean, self.std = size, jitter, mean, std
        self.transform = simclr_transform(size, jitter, mean, std)

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(img)


class CopyDetectionViews:
    """View 1 is a light crop of the image; view 2 a light crop of an attacked copy of it.

    The attack is drawn uniformly from `attack_ids` (default: the 58 ids of
    `data_retrieval.attacks.ATTACK_IDS`; the extras such as flips are accepted too) and made by
    `apply_attack` with a seed drawn from torch's generator, so the positive pair is exactly what
    copy detection must match.
    """

    def __init__(
        self,
        size: int = 224,
        attack_ids: Sequence[str] | None = None,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        mean=None,
        std=None,
    ) -> None:
        from data_retrieval.attacks import check_attack_ids

        self.attack_ids = check_attack_ids(list(attack_ids) if attack_ids else None)
        self.size, self.crop_scale, self.mean, self.std = size, crop_scale, mean, std
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(size, scale=crop_scale, interpolation=T.InterpolationMode.BICUBIC),
                *_finish(mean, std),
            ]
        )

    def attacked(self, img: Image.Image) -> Image.Image:
        """An attacked copy of `img`, attack and seed drawn from torch's generator."""
        from data_retrieval.attacks import apply_attack

        k = int(torch.randint(len(self.attack_ids), ()).item())
        seed = int(torch.randint(2**31 - 1, ()).item())
        return apply_attack(img, self.attack_ids[k], seed).convert("RGB")

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(self.attacked(img))


POLICIES = {"simclr": SimCLRViews, "copy": CopyDetectionViews}


def make_views(policy: str, size: int, mean=None, std=None, attack_ids: Sequence[str] | None = None):
    """The two-view policy named `policy` ('simclr' or 'copy'; `attack_ids` only for 'copy')."""
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation policy {policy!r}; valid: {', '.join(POLICIES)}")
    if policy == "copy":
        return CopyDetectionViews(size=size, attack_ids=attack_ids, mean=mean, std=std)
    return SimCLRViews(size=size, mean=mean, std=std)
