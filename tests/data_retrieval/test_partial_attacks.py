"""Partial-copy attacks: each does what its name says, records where the original lies, and is seeded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_retrieval import partial_attacks as P
from data_retrieval.attacks import (
    apply_attack,
    apply_partial_attack,
    attack_family,
    check_attack_ids,
    split_attack_stem,
)
from data_retrieval.generate_attacks import generate_attacks


@pytest.fixture(scope="module")
def original() -> Image.Image:
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(coarse, "RGB").resize((320, 240), Image.Resampling.BICUBIC)


def _as_original(copy: P.PartialCopy, original: Image.Image) -> np.ndarray:
    """The query box of `copy`, resized back to the shown part of the original."""
    left, top, right, bottom = copy.source_box
    crop = copy.image.crop(copy.query_box).resize((right - left, bottom - top), Image.Resampling.BICUBIC)
    return np.asarray(crop, np.float32)


@pytest.mark.parametrize("attack_id", P.PARTIAL_ATTACK_IDS)
def test_every_attack_records_where_the_original_lies(original, attack_id):
    copy = apply_partial_attack(original, attack_id, seed=5)
    w, h = copy.image.size
    left, top, right, bottom = copy.query_box
    assert 0 <= left < right <= w and 0 <= top < bottom <= h
    sl, st, sr, sb = copy.source_box
    assert 0 <= sl < sr <= original.width and 0 <= st < sb <= original.height
    if attack_id.startswith("turned_"):
        return  # the content is turned: compared in test_turned_is_turned
    shown = np.asarray(original.crop(copy.source_box), np.float32)
    assert np.abs(_as_original(copy, original) - shown).mean() < 12  # the box holds the original's pixels


@pytest.mark.parametrize(("attack_id", "low", "high"), [
    ("paste_photo_15", 0.13, 0.17), ("paste_photo_35", 0.32, 0.38), ("meme_caption_25", 0.22, 0.28),
    ("meme_caption_45", 0.3, 0.5), ("collage_2x2", 0.2, 0.27), ("screenshot_frame_30", 0.15, 0.33),
    ("screenshot_frame_50", 0.3, 0.53),
])
def test_pastes_cover_their_share_of_the_canvas(original, attack_id, low, high):
    for seed in range(4):
        assert low <= apply_partial_attack(original, attack_id, seed).query_area_fraction() <= high


@pytest.mark.parametrize(("attack_id", "percent"), [("partial_crop_20", 20), ("partial_crop_45", 45)])
def test_crops_keep_their_share_of_the_original(original, attack_id, percent):
    for seed in range(4):
        copy = apply_partial_attack(original, attack_id, seed)
        left, top, right, bottom = copy.source_box
        kept = (right - left) * (bottom - top) / (original.width * original.height)
        assert abs(kept - percent / 100) < 0.03
        assert copy.image.size == (right - left, bottom - top)
        assert np.array_equal(np.asarray(copy.image), np.asarray(original.crop(copy.source_box)))


def test_turned_is_turned(original):
    crop = apply_partial_attack(original, "turned_crop_rot270", seed=1)
    shown = original.crop(crop.source_box).transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(crop.image), np.asarray(shown))
    meme = apply_partial_attack(original, "turned_meme_flip", seed=1)
    left, top, right, bottom = meme.query_box
    pasted = np.asarray(meme.image.crop(meme.query_box).resize(original.size), np.float32)
    flipped = np.asarray(original.transpose(Image.Transpose.FLIP_LEFT_RIGHT), np.float32)
    assert np.abs(pasted - flipped).mean() < np.abs(pasted - np.asarray(original, np.float32)).mean()


@pytest.mark.parametrize("attack_id", P.PARTIAL_ATTACK_IDS)
def test_deterministic_under_a_seed_and_equal_to_the_catalogue(original, attack_id):
    a, b = apply_partial_attack(original, attack_id, 11), apply_partial_attack(original, attack_id, 11)
    assert a.image.tobytes() == b.image.tobytes() and a.query_box == b.query_box
    assert apply_attack(original, attack_id, 11).tobytes() == a.image.tobytes()
    other = apply_partial_attack(original, attack_id, 12)
    assert (other.image.tobytes(), other.query_box, other.source_box) != (a.image.tobytes(), a.query_box,
                                                                           a.source_box)


def test_families_are_their_own():
    assert check_attack_ids(P.PARTIAL_ATTACK_IDS) == P.PARTIAL_ATTACK_IDS
    families = {attack_family(a) for a in P.PARTIAL_ATTACK_IDS}
    assert families == set(P.PARTIAL_FAMILIES) == {"paste_photo", "meme_caption", "collage", "screenshot_frame",
                                                    "partial_crop", "turned"}
    for a in P.PARTIAL_ATTACK_IDS:
        assert split_attack_stem(f"100007_{a}") == ("100007", a)


def test_generator_records_boxes(tmp_path, original):
    src = tmp_path / "in"
    src.mkdir()
    original.save(src / "pic.png")
    generate_attacks(src, tmp_path / "out", ["paste_photo_15", "jpg_compression_50"], seed=2, workers=1)
    boxes = P.read_boxes(tmp_path / "out" / "pic_paste_photo_15.png")
    assert boxes is not None
    from data_retrieval.attacks import derive_seed
    from helpers.images import load_image

    expected = apply_partial_attack(load_image(src / "pic.png"), "paste_photo_15", derive_seed(2, "pic"))
    assert boxes == (expected.query_box, expected.source_box)
    assert P.read_boxes(tmp_path / "out" / "pic_jpg_compression_50.png") is None


def test_box_iou():
    assert P.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert P.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert P.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_the_demo_queries_hold_every_partial_family():
    from data_retrieval.demo import DEMO_ATTACK_IDS, DEMO_PARTIAL_IDS

    assert {attack_family(a) for a in DEMO_PARTIAL_IDS} == set(P.PARTIAL_FAMILIES)
    assert set(DEMO_PARTIAL_IDS) <= set(DEMO_ATTACK_IDS)
