"""NT-Xent against a hand computation, its gradient, the exact self-term mask, and the pair InfoNCE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from finetuning.losses import nt_xent, symmetric_info_nce


def _hand_nt_xent(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """Loop form of SimCLR's loss: -log(exp(s_ip/t) / sum_{k != i} exp(s_ik/t)), averaged over 2B rows."""
    z = np.concatenate([z1, z2])
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-7)  # zero rows stay zero
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        p = i + n if i < n else i - n
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[p] / t) / denom)
    return total / (2 * n)


def test_nt_xent_matches_hand_value_on_two_pairs():
    # Views equal, e1 and e2, t=1: every row sees its partner at cos 1 and two others at cos 0, so
    # loss = -log(e / (e + 1 + 1)) = log(1 + 2/e) for each of the 4 rows. The self term is left out.
    z = torch.eye(2, dtype=torch.float64)
    assert nt_xent(z, z.clone(), temperature=1.0).item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-12)
    # t=0.5 and orthogonal partners: row e1 sees partner [1,1]/sqrt2 at cos .7071, e2 at 0, [-1,1]/sqrt2 at -.7071.
    z1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    z2 = np.array([[1.0, 1.0], [-1.0, 1.0]])
    a = math.exp(2**0.5)
    row0 = -math.log(a / (1 + a + 1 / a))
    assert _hand_nt_xent(z1, z2, 0.5) == pytest.approx(
        (row0 + _row(z1, z2, 0.5, 1) + _row(z1, z2, 0.5, 2) + _row(z1, z2, 0.5, 3)) / 4
    )
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=0.5).item()
    assert got == pytest.approx(_hand_nt_xent(z1, z2, 0.5), abs=1e-10)


def _row(z1, z2, t, i):
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    p = i + n if i < n else i - n
    denom = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
    return -math.log(math.exp(z[i] @ z[p] / t) / denom)


def test_nt_xent_matches_loop_form_on_random_inputs():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    for t in (0.1, 0.5, 2.0):
        got = nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=t).item()
        assert got == pytest.approx(_hand_nt_xent(z1, z2, t), rel=1e-9)


def test_self_term_is_excluded_exactly_not_assumed_one():
    # With unnormalised-but-normalised-inside inputs the self term is exp(1/t); the seed subtracted
    # exp(1/t) from the row sum, which is wrong in low precision and whenever norms are clamped.
    # Here: a zero vector (norm clamped) has self-similarity 0, not 1: masking must still be exact.
    z1 = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    z2 = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    got = nt_xent(z1, z2, temperature=0.2).item()
    assert got == pytest.approx(_hand_nt_xent(z1.numpy(), z2.numpy(), 0.2), abs=1e-10)
    # Changing only the self-similarity (scaling a row keeps cosines) leaves the loss unchanged.
    assert nt_xent(z1 * 3, z2 * 0.5, temperature=0.2).item() == pytest.approx(got, abs=1e-10)


def test_nt_xent_gradient_gradcheck_float64():
    torch.manual_seed(0)
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def test_nt_xent_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(3, 2), torch.ones(3, 2), temperature=0)


def test_info_nce_without_groups_is_clip_loss_and_groups_reduce_to_it():
    torch.manual_seed(1)
    a, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    plain = symmetric_info_nce(a, b, 0.1)
    same = symmetric_info_nce(a, b, 0.1, groups=torch.arange(6))
    assert plain.item() == pytest.approx(same.item(), abs=1e-12)
    torch.autograd.gradcheck(
        lambda x, y: symmetric_info_nce(x, y, 0.5, torch.tensor([0, 0, 1, 2, 2, 2])),
        (a.clone().requires_grad_(), b.clone().requires_grad_()),
    )


def test_info_nce_groups_do_not_treat_copies_of_one_original_as_negatives():
    # Two queries of the same original, both perfectly aligned with it: loss must be the minimum
    # reachable, i.e. no penalty for the duplicated original column.
    o = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = o.clone()
    grouped = symmetric_info_nce(q, o, 0.05, groups=torch.tensor([0, 0, 1])).item()
    ungrouped = symmetric_info_nce(q, o, 0.05).item()
    assert grouped < 1e-6 < ungrouped
