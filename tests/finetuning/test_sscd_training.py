"""The SSCD recipe end to end: the loss falls, a resumed run is bitwise the same, the split is honest, epochs are scored."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from data_retrieval.attacks import apply_attack
from fast_search.improve import score_normalise as score_normalize
from finetuning.checkpoint import list_checkpoints, load_checkpoint
from finetuning.copy_eval import check_disjoint, heldout_attack_ids
from finetuning.training import TrainConfig, train
from helpers.synthetic import synthetic_image


def tiny_trunk(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU())


def sscd_config(tmp_path, folder, **kw) -> TrainConfig:
    base = dict(
        name="run", recipe="sscd", dataset=str(folder), encoder="tiny", size=32, batch_size=4, epochs=3,
        optimizer="adamw", lr=3e-3, dim=8, temperature=0.1, entropy_weight=1.0, mixup=0.2, warmup_epochs=0.5,
        checkpoints_root=str(tmp_path / "ckpt"), results_root=str(tmp_path / "results"),
        features_root=str(tmp_path / "features"), datasets_root=str(tmp_path / "datasets"),
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_tiny_sscd_run_lowers_the_loss_and_resumes_bitwise(tmp_path, image_folder):
    full = sscd_config(tmp_path / "a", image_folder, epochs=4)
    history = train(full, encoder=tiny_trunk(), dim=None)
    losses = [e["loss"] for e in history["epochs"]]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    interrupted = sscd_config(tmp_path / "b", image_folder, epochs=4)
    train(interrupted, encoder=tiny_trunk(), stop_after=2)
    assert sorted(list_checkpoints(tmp_path / "b" / "ckpt" / "run")) == [0, 1, 2]
    resumed = train(interrupted, resume="latest", encoder=tiny_trunk(seed=9))
    a = load_checkpoint(tmp_path / "a" / "ckpt" / "run" / "epoch_004.pth")
    b = load_checkpoint(tmp_path / "b" / "ckpt" / "run" / "epoch_004.pth")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert resumed["loss"] == history["loss"]
    assert a["architecture"]["kind"] == "sscd" and a["eval_preprocess"]["resize_mode"] == "square"
    split = json.loads((tmp_path / "a" / "results" / "run" / "split.json").read_text())
    assert split["train"]["n_images"] == 12 and "median_filter" in split["eval"]["heldout_families"]
    with pytest.raises(ValueError, match="recipe"):
        train(sscd_config(tmp_path / "c", image_folder, recipe="byol"), encoder=tiny_trunk())


def test_split_refuses_shared_images_and_holds_out_unseen_families(tmp_path, image_folder):
    train_paths = sorted(image_folder.glob("*.jpg"))
    check_disjoint(train_paths[:6], train_paths[6:])
    with pytest.raises(ValueError, match="also evaluation"):
        check_disjoint(train_paths[:6], train_paths[5:])
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(train_paths[0].read_bytes())
    with pytest.raises(ValueError, match="same bytes"):
        check_disjoint(train_paths[:6], [copy])
    held = heldout_attack_ids(["gaussian_filter", "jpg_compression"])
    assert "median_filter_3x3" in held and not any(a.startswith(("gaussian_filter", "jpg_")) for a in held)


def test_score_normalisation_shifts_each_query_by_its_background_mean():
    D = np.array([[0.1, 0.5], [0.2, 0.3]])
    bg = np.array([[0.4, 0.6, 0.8, 9.0], [0.1, 0.1, 0.1, 9.0]])
    hamming = score_normalize(D, bg, "hamming", beta=1.0, n=3)
    np.testing.assert_allclose(hamming, [[0.1 - 0.6, 0.5 - 0.6], [0.1, 0.2]], atol=1e-6)
    cosine = score_normalize(D, bg, "cosine", beta=1.0, n=3)  # similarities: the same up to a constant
    np.testing.assert_allclose(cosine - hamming, np.ones_like(D), rtol=1e-6)
    with pytest.raises(ValueError, match="background"):
        score_normalize(D, bg[:, :2], "cosine", n=3)
    with pytest.raises(ValueError, match="defined for the metrics"):  # refused, never silently ignored
        score_normalize(D, bg, "L2", n=3)


def test_copy_eval_has_no_score_normalisation_of_its_own():
    import finetuning.copy_eval as ce

    assert not hasattr(ce, "score_normalize")  # one implementation: fast_search.improve.score_normalise


def _mini_demo(root):
    """A tiny demo set under `root` with the registered names: 3 originals, 4 distractors, attacked queries."""
    folders = {k: root / "demo" / k for k in ("Original", "Attacks", "Negatives", "Distractors")}
    for f in folders.values():
        f.mkdir(parents=True)
    attacks = ["gaussian_noise_0.05", "median_filter_7x7", "jpg_compression_50"]
    for i, stem in enumerate(("apple", "pear", "plum")):
        img = synthetic_image(100 + i, (64, 48))
        img.save(folders["Original"] / f"{stem}.png")
        for a in attacks:
            apply_attack(img, a, 0).save(folders["Attacks"] / f"{stem}_{a}.png")
    for i, stem in enumerate(("fig", "kiwi")):
        for a in attacks:
            apply_attack(synthetic_image(200 + i, (64, 48)), a, 0).save(folders["Negatives"] / f"{stem}_{a}.png")
    for i in range(4):
        synthetic_image(300 + i, (64, 48)).save(folders["Distractors"] / f"{i}.jpg")


@pytest.mark.slow
def test_finetune_script_sscd_recipe_evaluates_each_epoch(tmp_path, image_folder):
    import finetune

    _mini_demo(tmp_path / "datasets")
    argv = [
        "--recipe", "sscd", "--name", "cli", "--encoder", "resnet18", "--dataset", str(image_folder), "--size", "32",
        "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "2", "--optimizer", "adamw", "--lr", "1e-3",
        "--dim", "16", "--eval-every", "1", "--eval-background", "5", "--aug-p", "paste_onto=0.5", "blur=0",
        "--checkpoints-root", str(tmp_path / "ckpt"), "--results-root", str(tmp_path / "results"),
        "--features-root", str(tmp_path / "features"), "--datasets-root", str(tmp_path / "datasets"),
    ]  # fmt: skip
    assert finetune.main(argv) == 0
    out = tmp_path / "results" / "cli"
    rows = json.loads((out / "copy_eval.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    # held-out families only: the JPEG queries are left out (blur=0 puts gaussian_filter back in, not noise)
    assert rows[0]["n_positive"] == 6 and rows[0]["n_negative"] == 4 and rows[0]["n_database"] == 7
    for key in ("recall@1", "recall@1%FPR", "micro-AP", "recall@1 (norm)", "recall@1%FPR (norm)", "micro-AP (norm)"):
        assert 0 <= rows[-1][key] <= 1, key
    assert rows[-1]["recall@1"] == rows[-1]["recall@1 (norm)"]  # a per-query shift never reorders a query's list
    assert (out / "copy_eval.png").is_file() and (out / "copy_eval.csv").is_file()
    split = json.loads((out / "split.json").read_text())
    assert split["disjoint_images_checked"] and "gaussian_filter" in split["eval"]["heldout_families"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["temperature"] == 0.05 and cfg["aug_p"] == {"paste_onto": 0.5, "blur": 0.0}
