"""SSCD's objective: the KoLeo term against hand-computed cases, InfoNCE over all copies, mixup positives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from finetuning.losses import koleo, match_matrix, mix_batch, sscd_loss


def test_koleo_hand_computed_on_a_square_and_three_points():
    # four unit vectors at 90 degrees: every nearest neighbour is at distance sqrt(2)
    square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
    assert koleo(square).item() == pytest.approx(-math.log(math.sqrt(2)))
    # 0 and 60 degrees, and 180: nearest distances 1, 1, and 2*sin(60)=sqrt(3)
    pts = torch.tensor([[1.0, 0], [0.5, math.sqrt(3) / 2], [-1, 0]])
    expected = -(math.log(1) + math.log(1) + math.log(math.sqrt(3))) / 3
    assert koleo(pts).item() == pytest.approx(expected, abs=1e-6)
    # excluding the partner of each row (SSCD excludes copies of the same image)
    exclude = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    expected = -(math.log(2) + math.log(math.sqrt(3)) + math.log(math.sqrt(3))) / 3
    assert koleo(pts, exclude=exclude).item() == pytest.approx(expected, abs=1e-6)


def test_koleo_is_lower_for_spread_out_points():
    torch.manual_seed(0)
    spread = F.normalize(torch.randn(16, 8), dim=1)
    bunched = F.normalize(torch.ones(16, 8) + 0.01 * torch.randn(16, 8), dim=1)
    assert koleo(spread) < koleo(bunched)


def test_sscd_loss_equals_the_formula_written_out():
    torch.manual_seed(1)
    z = F.normalize(torch.randn(6, 5), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    t = 0.1
    loss, parts = sscd_loss(z, labels, temperature=t, entropy_weight=0.0)
    sim = z @ z.T
    total = 0.0
    for i in range(6):
        negatives = [k for k in range(6) if labels[k] != labels[i]]
        for j in range(6):
            if j != i and labels[j] == labels[i]:
                num = math.exp(sim[i, j] / t)
                total += -math.log(num / (num + sum(math.exp(sim[i, k] / t) for k in negatives)))
    assert loss.item() == pytest.approx(total / 6, rel=1e-5)
    assert set(parts) == {"info_nce", "positive_sim", "nearest_negative_sim"}
    with_entropy, parts = sscd_loss(z, labels, temperature=t, entropy_weight=30.0)
    assert with_entropy.item() == pytest.approx(total / 6 + 30 * koleo(z, exclude=match_matrix(labels)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="two views"):
        sscd_loss(z, torch.arange(6))


def test_mixup_positives_share_weights_and_keep_shapes():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    same_x, weights = mix_batch(x, labels, p=0.0)
    assert torch.equal(same_x, x) and torch.equal(weights, F.one_hot(labels, 4).float())
    mixed, weights = mix_batch(x, labels, p=1.0)
    assert mixed.shape == x.shape and weights.shape == (8, 4)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(8))
    # row i is mixed with row 7 - i, so it matches both instances
    assert match_matrix(weights)[0, 7 - 0] and match_matrix(weights)[0, 4]
    z = F.normalize(torch.randn(8, 5), dim=1)
    loss, _ = sscd_loss(z, weights)
    assert torch.isfinite(loss)
