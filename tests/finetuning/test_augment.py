"""Augmentation policies: shapes, determinism under torch's seed, the copy policy's attacked positive view."""

from __future__ import annotations

import pytest
import torch

from finetuning.augment import CopyDetectionViews, make_views, simclr_transform
from tests.conftest import synthetic_image


def test_simclr_views_shape_and_seeded_determinism():
    views = make_views("simclr", 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    img = synthetic_image(0)
    torch.manual_seed(3)
    a1, a2 = views(img)
    torch.manual_seed(3)
    b1, b2 = views(img)
    assert a1.shape == a2.shape == (3, 32, 32)
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and not torch.equal(a1, a2)
    assert simclr_transform(224).transforms[-1].__class__.__name__ == "ToTensor"  # kernel 23 blur, no Normalize


def test_copy_views_positive_is_an_attacked_copy():
    from data_retrieval.attacks import apply_attack

    img = synthetic_image(1, (40, 40))
    views = CopyDetectionViews(size=40, attack_ids=["vertical_flip"], crop_scale=(1.0, 1.0))
    torch.manual_seed(0)
    v1, v2 = views(img)
    assert torch.allclose(v2, torch.flip(v1, dims=[1]), atol=1e-6)  # the attack is the only difference
    mixed = CopyDetectionViews(size=40, attack_ids=["jpg_compression_10", "text_length_20"])
    torch.manual_seed(1)
    first = mixed.attacked(img).tobytes()
    torch.manual_seed(1)
    assert mixed.attacked(img).tobytes() == first  # attack and its seed come from torch's generator
    assert first in {apply_attack(img, a, s).tobytes() for a in mixed.attack_ids for s in [_seed_after(1)]}


def _seed_after(seed: int) -> int:
    """The attack seed CopyDetectionViews draws right after choosing the attack, under torch seed `seed`."""
    torch.manual_seed(seed)
    torch.randint(2, ())
    return int(torch.randint(2**31 - 1, ()).item())


def test_unknown_policy_and_attack_ids():
    with pytest.raises(ValueError, match="simclr"):
        make_views("mixup", 32)
    with pytest.raises(ValueError, match="unknown attack id"):
        CopyDetectionViews(32, attack_ids=["melt"])
    assert len(CopyDetectionViews(32).attack_ids) == 58
