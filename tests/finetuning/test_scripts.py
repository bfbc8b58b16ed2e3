"""Root scripts: flags mean what they say, evaluation writes per-epoch scores, adaptation writes a new method."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import evaluate_finetuning  # noqa: E402
import finetune  # noqa: E402
import train_adaptation  # noqa: E402
from extractor.store import load_features, write_features  # noqa: E402
from finetuning.training import train  # noqa: E402


def test_nesterov_and_boolean_flags_mean_what_they_say():
    assert finetune.parse_args([]).nesterov is False
    assert finetune.parse_args(["--nesterov"]).nesterov is True
    assert finetune.parse_args(["--no-nesterov"]).nesterov is False
    with pytest.raises(SystemExit):  # the seed's "--nesterov False" string is refused, not truthy
        finetune.parse_args(["--nesterov", "False"])
    cfg = finetune.config_from_args(finetune.parse_args(["--dataset", "a", "b", "--lr", "0.1", "--head-sizes", "8", "4"]))
    assert cfg.dataset == ["a", "b"] and cfg.lr == 0.1 and cfg.head_sizes == [8, 4] and cfg.nesterov is False
    assert finetune.parse_args([]).lr is None  # None: the square-root rule


def _demo_like(root: Path) -> None:
    """A tiny demo layout: 6 originals, 2 attacked copies each, 6 distractors."""
    from data_retrieval.attacks import apply_attack
    from tests.conftest import synthetic_image

    for sub in ("Original", "Attacks", "Distractors"):
        (root / "demo" / sub).mkdir(parents=True)
    for i in range(6):
        img = synthetic_image(i, (48, 40))
        img.save(root / "demo" / "Original" / f"img{i}.png")
        for attack in ("jpg_compression_50", "cropping_10_and_rescaling"):
            apply_attack(img, attack, seed=i).save(root / "demo" / "Attacks" / f"img{i}_{attack}.png")
        synthetic_image(100 + i, (48, 40)).save(root / "demo" / "Distractors" / f"d{i}.png")


@pytest.mark.slow
def test_evaluate_finetuning_scores_each_epoch(tmp_path):
    from tests.finetuning._tiny import config, tiny_encoder

    _demo_like(tmp_path / "data")
    cfg = config(tmp_path, tmp_path / "data" / "demo" / "Distractors", epochs=1, batch_size=4)
    train(cfg, encoder=tiny_encoder(), dim=8)
    from finetuning.evaluation import evaluate_run

    rows = evaluate_run(
        "run", ["demo_original", "demo_distractors"], ["demo_attacks"], epochs=[0, 1],
        checkpoints_root=tmp_path / "ckpt", features_root=tmp_path / "features", datasets_root=tmp_path / "data",
        results_root=tmp_path / "results", encoder=tiny_encoder(seed=9), dim=8, ks=(1, 5),
    )  # fmt: skip
    assert [r["epoch"] for r in rows] == [0, 1]
    for r in rows:
        assert 0 <= r["recall@1"] <= r["recall@5"] <= 1 and np.isfinite(r["median_snr_diameter_separation"])
    out = tmp_path / "results" / "run"
    assert json.loads((out / "evaluation.json").read_text())[1]["epoch"] == 1
    assert (out / "evaluation.png").is_file() and (out / "evaluation.csv").is_file()
    assert (tmp_path / "features" / "demo_attacks" / "run-epoch001.h5").is_file()
    with pytest.raises(ValueError, match="no checkpoint for epochs"):
        evaluate_run("run", ["demo_original"], ["demo_attacks"], epochs=[7], checkpoints_root=tmp_path / "ckpt")


def test_scripts_report_bad_input_in_one_line(tmp_path, capsys):
    assert evaluate_finetuning.main(["--name", "nothing", "--checkpoints-root", str(tmp_path)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
    assert finetune.main(["--encoder", "no_such_net", "--checkpoints-root", str(tmp_path)]) == 2
    assert "unknown extractor 'no_such_net'" in capsys.readouterr().err
    code = train_adaptation.main(["-d", "demo_attacks", "--method", "none", "--features-root", str(tmp_path)])
    assert code == 2 and "no features" in capsys.readouterr().err


def test_train_adaptation_script_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(12, 6)).astype(np.float32)
    orig_ids = [f"demo_original/img{i}" for i in range(12)]
    q_ids, q_feats = [], []
    for i in range(12):
        for attack in ("jpg_compression_50", "scaling_0.8"):
            q_ids.append(f"demo_attacks/img{i}_{attack}")
            q_feats.append(originals[i] + 0.3 * rng.normal(size=6))
    root = tmp_path / "features"
    write_features(root / "demo_original" / "m.h5", orig_ids, originals, method="m", dataset="demo_original")
    write_features(root / "demo_attacks" / "m.h5", q_ids, np.array(q_feats, np.float32), method="m", dataset="demo_attacks")
    code = train_adaptation.main(
        ["-d", "demo_attacks", "--method", "m", "-e", "5", "-r", "2", "-t", "0.1", "--test-split", "0.25",
         "-k", "1", "3", "--pca", "4", "--features-root", str(root), "--results-root", str(tmp_path / "results")]
    )  # fmt: skip
    assert code == 0
    adapted = load_features("demo_original", "m+adapt", root=root)
    assert adapted.features.shape == (12, 4) and list(adapted.ids) == orig_ids
    report = json.loads((tmp_path / "results" / "adaptation_m" / "adaptation.json").read_text())
    assert len(report["runs"]) == 2 and set(report["mean"]["adapted"]) == {"top1", "top3"}
    assert report["params"]["database"] == "demo_original"


def test_torch_load_is_weights_only(tmp_path):
    """A checkpoint holding an arbitrary object is refused, not unpickled."""
    from finetuning.checkpoint import load_checkpoint

    path = tmp_path / "evil.pth"
    torch.save({"format": "finetuning.simclr/1", "obj": object()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path)
