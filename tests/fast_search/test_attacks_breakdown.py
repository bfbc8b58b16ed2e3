"""Per-attack breakdown: results.json, summary tables, the per-experiment figure and the cross-experiment heat map."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from extractor.store import store_path, write_features
from fast_search import process_experiment, run_experiment
from fast_search.report import plot_attack_heatmap

ATTACKS = ["jpg_compression_10", "gaussian_noise_0.01", "gaussian_noise_0.05"]
NOISE = {"jpg_compression_10": 0.05, "gaussian_noise_0.01": 0.3, "gaussian_noise_0.05": 3.0}


def _stores(root: Path, method: str = "feat") -> Path:
    """20 originals, 100 distractors, one copy per (original, attack) at that attack's noise, 10 negatives."""
    rng = np.random.default_rng(0)
    orig = rng.normal(size=(20, 16)).astype("f4")
    write_features(store_path("demo_original", method, root), [f"demo_original/{i}" for i in range(20)], orig,
                   method=method)  # fmt: skip
    write_features(store_path("demo_distractors", method, root), [f"demo_distractors/{i}" for i in range(100)],
                   rng.normal(size=(100, 16)).astype("f4"), method=method)  # fmt: skip
    ids, rows = [], []
    for a in ATTACKS:
        for i in range(20):
            ids.append(f"demo_attacks/{i}_{a}")
            rows.append(orig[i] + NOISE[a] * rng.normal(size=16))
    write_features(store_path("demo_attacks", method, root), ids, np.array(rows, "f4"), method=method)
    write_features(store_path("demo_negatives", method, root), [f"demo_negatives/{1000 + i}_{ATTACKS[i % 3]}"
                   for i in range(10)], rng.normal(size=(10, 16)).astype("f4"), method=method)  # fmt: skip
    return root


@pytest.fixture
def experiment(tmp_path):
    features = _stores(tmp_path / "F")
    for name in ("a", "b"):
        run_experiment(name, "feat", ["demo_original", "demo_distractors"], ["demo_attacks", "demo_negatives"],
                       indexes=["Flat"], metrics=["cosine"], ks=[1, 10], threads=1, features_root=features,
                       results_root=tmp_path / "R")  # fmt: skip
    return tmp_path / "R"


def test_results_json_breaks_recall_down_per_attack_family_and_id(experiment):
    import json

    run = json.loads((experiment / "a" / "results.json").read_text())["runs"][0]
    fams, ids = run["attacks"]["families"], run["attacks"]["ids"]
    assert set(fams) == {"jpg_compression", "gaussian_noise"} and set(ids) == set(ATTACKS)
    assert ids["jpg_compression_10"]["n_positive"] == 20 and fams["gaussian_noise"]["n_positive"] == 40
    assert fams["jpg_compression"]["n_negative"] == 4  # negatives 0, 3, 6, 9 carry jpg_compression_10
    # the easy attack is found, the heavy noise is not: the breakdown shows what the mean hides
    assert ids["jpg_compression_10"]["recall_at_k"]["1"] == 1.0
    assert ids["gaussian_noise_0.05"]["recall_at_k"]["1"] < 0.5
    # recall at the one global 1 % FPR threshold: at most recall@1, and the family numbers add up
    for scores in ids.values():
        assert scores["recall_at_fpr_1pct"] <= scores["recall_at_k"]["1"]
    overall = sum(ids[a]["recall_at_fpr_1pct"] * 20 for a in ATTACKS) / 60
    assert overall == pytest.approx(run["recall_at_fpr_1pct"])
    assert run["attacks"]["threshold_at_fpr_1pct"] == run["threshold_at_fpr_1pct"]


def test_summary_tables_and_figures_per_attack(experiment, tmp_path):
    paths = {p.name for p in process_experiment("a", experiment)}
    assert {"summary_attacks.csv", "summary_attack_ids.csv", "attacks.png", "attacks.pdf"} <= paths
    assert "## Per attack family" in (experiment / "a" / "summary.md").read_text()
    with open(experiment / "a" / "summary_attacks.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["family"] for r in rows} == {"jpg_compression", "gaussian_noise"}
    assert {"recall@1", "recall@10", "recall@1%FPR"} <= set(rows[0])
    out = plot_attack_heatmap(["a", "b"], tmp_path / "heat.png", experiment)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="measure must be"):
        plot_attack_heatmap(["a"], tmp_path / "x.png", experiment, measure="nope")


def test_process_script_draws_the_heat_map_across_experiments(experiment, tmp_path):
    from imsim.commands import process as module  # what `python process.py` runs

    out = tmp_path / "h.png"
    assert module.main(["--heatmap", "a", "b", "--results-root", str(experiment), "--out", str(out)]) == 0
    assert out.is_file()
    assert module.main(["--heatmap", "nope", "--results-root", str(experiment)]) == 2
