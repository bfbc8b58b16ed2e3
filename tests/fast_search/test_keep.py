"""Keep policies on generated groups where the original is known: each edit loses to its original."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from fast_search.keep import KEEP_POLICIES, choose, effective_pixels, file_facts, jpeg_quality

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A photograph (JPEG 92) and 8 edited copies; the original's name sorts last, so path order cannot find it."""
    folder = tmp_path_factory.mktemp("keep")
    photo = Image.fromarray(skimage_data.astronaut()).resize((384, 384), Image.Resampling.LANCZOS)
    original = folder / "z_original.jpg"
    photo.save(original, quality=92)
    rng = np.random.default_rng(0)
    noisy = np.clip(np.asarray(photo, np.float32) + rng.normal(0, 10, (384, 384, 3)), 0, 255).astype(np.uint8)
    copies = {
        "a_upscaled.jpg": (photo.resize((576, 576), Image.Resampling.BICUBIC), 92),
        "b_small.jpg": (photo.resize((192, 192), Image.Resampling.LANCZOS), 95),
        "c_q60.jpg": (photo, 60),
        "d_noise.jpg": (Image.fromarray(noisy), 92),
        "e_border.jpg": (ImageOps.expand(photo.resize((320, 320)), 32, fill=(255, 255, 255)), 92),
        "f_grey.jpg": (ImageOps.grayscale(photo).convert("RGB"), 92),
        "g_blur.jpg": (photo.filter(ImageFilter.GaussianBlur(2)), 92),
        "h_dark.jpg": (ImageEnhance.Brightness(photo).enhance(0.7), 90),
    }
    for name, (image, quality) in copies.items():
        image.save(folder / name, quality=quality)
    paths = sorted(str(p) for p in folder.iterdir())
    for k, p in enumerate(paths):  # the original is the oldest file
        os.utime(p, (1_000_000 + k, 1_000_000 + (0 if p == str(original) else 1000 + k)))
    return [file_facts(p) for p in paths], str(original)


def test_default_policy_keeps_the_original(group):
    facts, original = group
    assert facts[choose(facts)].path == original  # resolution (default)
    same_size = [f for f in facts if f.pixels == 384 * 384]  # "quality" ranks a reduction saved at 95 first
    assert same_size[choose(same_size, "quality")].path == original


def test_each_edit_alone_loses_to_the_original(group):
    facts, original = group
    orig = next(f for f in facts if f.path == original)
    for f in facts:
        if f is not orig:
            for policy in ("resolution", "quality") if f.pixels == orig.pixels else ("resolution",):
                assert choose([f, orig], policy) == 1, (f.path, policy)


def test_an_enlargement_counts_the_pixels_of_its_source(group):
    facts, original = group
    pair = [f for f in facts if "upscaled" in f.path] + [f for f in facts if f.path == original]
    up, orig = effective_pixels(pair)
    assert pair[0].pixels > 2 * pair[1].pixels and up == orig


def test_other_policies(group):
    facts, original = group
    largest = max(facts, key=lambda f: f.bytes)
    assert facts[choose(facts, "size")].path == largest.path
    assert facts[choose(facts, "oldest")].path == original
    assert facts[choose(facts, "first")].path == min(f.path for f in facts)
    with pytest.raises(ValueError, match="keep policy"):
        choose(facts, "newest")
    assert set(KEEP_POLICIES) == {"resolution", "quality", "size", "oldest", "first"}


def test_choice_does_not_depend_on_input_order(group):
    facts, _ = group
    for policy in KEEP_POLICIES:
        picks = {facts[choose(facts, policy)].path, list(reversed(facts))[choose(list(reversed(facts)), policy)].path}
        assert len(picks) == 1


def test_jpeg_quality_estimate(tmp_path):
    img = Image.fromarray(skimage_data.coffee())
    for q in (50, 75, 92):
        img.save(tmp_path / f"{q}.jpg", quality=q)
        with Image.open(tmp_path / f"{q}.jpg") as f:
            assert abs(jpeg_quality(f) - q) <= 1
    img.save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as f:
        assert jpeg_quality(f) == 100


def test_unreadable_file_is_never_kept(tmp_path, group):
    facts, original = group
    bad = tmp_path / "0_bad.jpg"
    bad.write_bytes(b"not an image" * 1000)
    both = [file_facts(bad), next(f for f in facts if f.path == original)]
    for policy in ("resolution", "quality"):
        assert choose(both, policy) == 1
