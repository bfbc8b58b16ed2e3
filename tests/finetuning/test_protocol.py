"""The leak-free training protocol (issue 21, item 9): disjointness, validation split, intervals, negatives."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from finetuning import protocol as P
from finetuning.training import train

from ._tiny import config, tiny_encoder


def test_every_recipe_refuses_to_train_on_evaluation_images(tmp_path, image_folder):
    """SimCLR's README run trained on the evaluation database: the check now stops it before training."""
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(image_folder / "3.jpg", copy / "renamed.jpg")  # same bytes, another name
    for policy in ("simclr", "copy"):  # SSCD's check: tests/finetuning/test_sscd_training.py
        cfg = config(tmp_path, image_folder, name=f"leak_{policy}", policy=policy, eval_database=[str(copy)],
                     eval_queries=[str(copy)], epochs=1)  # fmt: skip
        with pytest.raises(ValueError, match="same bytes as evaluation images"):
            train(cfg, encoder=tiny_encoder(), dim=8)


def test_simclr_run_records_its_families_and_the_checked_disjointness(tmp_path, image_folder):
    other = tmp_path / "eval"
    other.mkdir()
    from tests.conftest import synthetic_image

    synthetic_image(500).save(other / "x.jpg")
    cfg = config(tmp_path, image_folder, name="fam", policy="copy", attacks=["jpg_compression_50", "scaling_0.4"],
                 eval_database=[str(other)], eval_queries=[str(other)], epochs=1, steps_per_epoch=1)  # fmt: skip
    train(cfg, encoder=tiny_encoder(), dim=8)
    from helpers.jsonio import load_json

    split = load_json(tmp_path / "results" / "fam" / "split.json")
    assert split["train"]["families"] == ["jpg_compression", "scaling"]
    assert split["disjointness"]["n_train_images"] == 12 and split["disjoint_images_checked"]
    assert "jpg_compression" not in split["eval"]["heldout_families"] and "gaussian_noise" in split["eval"]["heldout_families"]


def test_scored_queries_of_a_trained_family_are_refused():
    queries = ["demo_attacks/astronaut_gaussian_noise_0.01", "demo_negatives/flower-crop3"]
    record = P.check_attacks(queries, ["scaling"])
    assert record["scored_families"] == ["gaussian_noise"] and record["shared_families"] == []
    with pytest.raises(ValueError, match="families that training applies"):
        P.check_attacks([*queries, "demo_attacks/camera_scaling_0.4"], ["scaling"])


def test_validation_split_is_by_source_and_independent_of_order():
    groups = [f"photo:{p}" for p in ("coins", "flower", "gravel", "moon", "rocket")]
    groups += [f"original:demo_original/o{i}" for i in range(23)] + [f"picture:procedural{i}" for i in range(300)]
    val = P.split_groups(groups)
    assert val[:5].sum() == 2 and val[5:28].sum() == 8 and val[28:].sum() == 100
    order = np.random.default_rng(0).permutation(len(groups))
    assert (P.split_groups([groups[i] for i in order]) == val[order]).all()
    # every copy of one original lands on one side
    rows = ["original:demo_original/o1"] * 5 + ["original:demo_original/o2"] * 5
    assert len(set(P.split_groups(rows)[:5])) == 1
    assert P.source_group("demo_negatives/synthetic3_jpg_compression_10", False) == "picture:synthetic3"
    assert P.source_group("demo_negatives/flower_scaling_0.4", False) == "photo:flower"
    assert P.source_group("demo_attacks/camera_scaling_0.4", True, "demo_original/camera") == "original:demo_original/camera"


def _results(n_pos: int, n_neg: int, seed: int = 0):
    """Top-2 results: positives find their target at rank 1 with prob 0.8; negatives at random distances."""
    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    D = np.sort(rng.random((n, 2)), axis=1).astype("f4")
    I = rng.integers(1, 50, (n, 2))  # noqa: E741
    targets = np.full(n, -1)
    targets[:n_pos] = 0
    hit = rng.random(n_pos) < 0.8
    I[:n_pos][hit, 0] = 0
    D[:n_pos][hit, 0] *= 0.2
    return D, I, targets


def test_one_pct_fpr_needs_1000_negatives_and_intervals_cover_the_estimate():
    D, I, t = _results(300, 999)  # noqa: E741
    assert P.copy_measures(D, I, t)["recall@1%fpr"] is None
    D, I, t = _results(300, 1000)  # noqa: E741
    out = P.measures_with_ci(D, I, t, n=200)
    assert out["recall@1%fpr"] is not None
    for key in ("recall@1", "recall@1%fpr", "micro_ap"):
        lo, hi = out[f"{key} ci"]
        assert lo <= out[key] <= hi and hi - lo < 0.2
    assert P.bootstrap_ci(lambda rows: 0.5, np.array([True, False]), n=20) == (0.5, 0.5)


def test_adaptation_holds_out_families_and_refuses_shared_images():
    from finetuning.adaptation import cross_validate

    rng = np.random.default_rng(0)
    n_orig, fams = 8, ["scaling", "cropping", "rotation", "jpg_compression"]
    groups = np.repeat(np.arange(n_orig), len(fams))
    families = fams * n_orig
    originals = rng.normal(size=(n_orig, 6)).astype("f4")[groups]
    queries = originals + 0.1 * rng.normal(size=originals.shape).astype("f4")
    runs = cross_validate(queries, originals, groups, runs=2, test_split=0.25, ks=(1,), families=families,
                          model="linear", epochs=5)  # fmt: skip
    for r in runs:
        assert not set(r.checks["families"]["train"]) & set(r.checks["families"]["test"])
        lo, hi = r.adapted_top1_ci
        assert lo <= r.adapted["top1"] <= hi
    tr, te = np.arange(0, 4), np.arange(4, 8)
    dup = queries.copy()
    dup[5] = queries[1]  # the same image on both sides
    with pytest.raises(ValueError, match="features of a training image"):
        P.check_pairs_disjoint(dup, originals, np.arange(8), tr, te)
    with pytest.raises(ValueError, match="both trained on and scored"):
        P.check_pairs_disjoint(queries, originals, np.arange(8), tr, te, np.array(["a"] * 8, dtype=object))
