"""LARS lr rule and update, parameter groups, warm-up cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from finetuning.lars import LARS, default_lr, param_groups
from finetuning.schedule import make_scheduler, warmup_cosine


def test_default_lr_is_square_root_rule():
    assert default_lr(256) == pytest.approx(0.08)
    assert default_lr(64) == pytest.approx(0.04)
    with pytest.raises(ValueError):
        default_lr(0)


def test_param_groups_exclude_bias_and_bn():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2, bias=False))
    decay, no_decay = param_groups(model, 1e-4)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3]), torch.Size([2, 4])]
    assert len(no_decay["params"]) == 3  # linear bias, BN weight, BN bias
    assert no_decay["weight_decay"] == 0 and not no_decay["lars_adaptation"]


def test_lars_step_uses_trust_ratio():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
    opt = LARS([{"params": [w], "lars_adaptation": True}], lr=0.1, momentum=0.0, trust_coefficient=1e-3)
    w.grad = torch.tensor([0.0, 2.0])  # norm 2
    opt.step()
    trust = 1e-3 * 5 / 2
    assert torch.allclose(w.detach(), torch.tensor([3.0, 4.0 - 0.1 * trust * 2.0]))


def test_lars_rejects_string_nesterov():
    w = nn.Parameter(torch.ones(2))
    with pytest.raises(TypeError, match="nesterov"):
        LARS([w], lr=0.1, nesterov="False")


def test_warmup_then_cosine():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1.0)
    sched = make_scheduler(opt, total_steps=4, warmup_steps=0)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])
    with pytest.raises(ValueError, match="scheduler"):
        make_scheduler(opt, 4, kind="step")
