"""The copy augmentation policy: each step does what its name says, seeded runs repeat, the list composes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from finetuning import copy_policy as P
from helpers.synthetic import synthetic_image

IMG = synthetic_image(3, (80, 60))
CTX = P.Context(size=32)


def _px(img):
    return np.asarray(img, dtype=np.int16)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_geometry_steps():
    assert np.array_equal(_px(P.hflip(IMG, _rng(), CTX)), _px(IMG)[:, ::-1])
    turned = P.rotate90(IMG, _rng(), CTX)
    assert turned.size in ((60, 80), (80, 60))
    assert any(np.array_equal(_px(turned), np.rot90(_px(IMG), k)) for k in (1, 2, 3))
    crop = P.random_resized_crop(IMG, _rng(), CTX, scale=(0.2, 0.5))
    assert crop.size == (32, 32)
    padded = P.padding(IMG, _rng(), CTX)
    assert padded.width >= 80 * 1.1 - 2 and padded.height >= 60 * 1.1 - 2
    corner = _px(padded)[0, 0]
    assert (_px(padded)[:2, :] == corner).all()  # a border of one colour
    warped = P.perspective(IMG, _rng(), CTX)
    assert warped.size == IMG.size and not np.array_equal(_px(warped), _px(IMG))
    assert (_px(warped)[0, 0] == 0).all() or (_px(warped)[-1, -1] == 0).all()  # corners moved in: black fill


def test_overlays_and_pastes():
    for fn in (P.overlay_text, P.overlay_emoji):
        out = fn(IMG, _rng(1), CTX)
        assert out.size == IMG.size and out.mode == "RGB"
        changed = (_px(out) != _px(IMG)).any(axis=2).mean()
        assert 0 < changed < 0.9, fn.__name__  # some of the image is covered, not all of it
    other = Image.new("RGB", (120, 100), (0, 255, 0))
    ctx = P.Context(32, other=lambda rng: other)
    onto = P.paste_onto(IMG, _rng(), ctx)
    assert onto.size == other.size  # the image now lies on the other one
    green = (_px(onto) == [0, 255, 0]).all(axis=2).mean()
    assert 0.05 < green < 0.95
    under = P.paste_under(IMG, _rng(), ctx)
    assert under.size == IMG.size
    covered = (_px(under) == [0, 255, 0]).all(axis=2).mean()
    assert 0 < covered < 0.2  # 10-40 % of each side is green at most
    # without a pool of other images, a random colour field stands in
    assert P.paste_onto(IMG, _rng(), CTX).size == IMG.size


def test_photometric_steps():
    jittered = P.color_jitter(IMG, _rng(), CTX)
    assert jittered.size == IMG.size and not np.array_equal(_px(jittered), _px(IMG))
    grey = _px(P.greyscale(IMG, _rng(), CTX))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    blurred = _px(P.blur(IMG, _rng(), P.Context(224)))
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(_px(IMG), axis=1)).mean()
    compressed = P.jpeg(IMG, _rng(), CTX)
    assert compressed.size == IMG.size and not np.array_equal(_px(compressed), _px(IMG))


def test_policy_is_deterministic_under_a_seed_and_returns_tensors():
    policy = P.make_policy(32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    a, b, c = (policy.augment(IMG, s) for s in (7, 7, 8))
    assert a.size == (32, 32) and np.array_equal(_px(a), _px(b)) and not np.array_equal(_px(a), _px(c))
    torch.manual_seed(0)
    t1 = policy(IMG)
    torch.manual_seed(0)
    assert t1.shape == (3, 32, 32) and torch.equal(t1, policy(IMG)) and t1.min() < 0  # normalised
    views = P.TwoCopies(policy)(IMG)
    assert len(views) == 2 and not torch.equal(*views)


def test_policy_list_probabilities_and_families():
    names = [s.name for s in P.sscd_steps()]
    assert names[0] == "hflip" and "paste_onto" in names and "perspective" in names and names[-1] == "jpeg"
    only_crop = P.make_policy(32, probabilities={n: 0.0 for n in names if n != "random_resized_crop"})
    out = only_crop.augment(IMG, 0)
    assert out.size == (32, 32)
    policy = P.make_policy(32)
    assert "gaussian_filter" in policy.covers() and "median_filter" not in policy.covers()
    dropped = P.make_policy(32, probabilities={"blur": 0.0})
    assert "gaussian_filter" not in dropped.covers()
    with_attacks = P.make_policy(32, train_attacks=["median_filter_3x3"])
    assert "median_filter" in with_attacks.covers()
    with pytest.raises(ValueError, match="unknown augmentation"):
        P.make_policy(32, probabilities={"sepia": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        P.make_policy(32, probabilities={"blur": 2.0})
    bound = P.make_policy(32).bind(lambda i: synthetic_image(50 + i), 3)
    assert bound.augment(IMG, 1).size == (32, 32)
