"""hierarchical.py and dbscan.py write their outputs on small generated features; bad input fails early."""

import json

import numpy as np
import pytest

import dbscan
import hierarchical
from clustering import AgglomerativeConfig, ClusteringSource, RunOutput, cluster_experiment


def roots(feature_store, tmp_path):
    return ["--features-root", str(feature_store), "--datasets-root", str(tmp_path / "Datasets"),
            "--results-root", str(tmp_path / "Results")]  # fmt: skip


@pytest.mark.slow
def test_hierarchical_writes_outputs(feature_store, tmp_path, capsys):
    argv = ["--method", "m", "--datasets", "demo_original", "demo_attacks", "--linkage", "average", "--metric",
            "cosine", "--clusters", "16", "12", "--max-grids", "2"] + roots(feature_store, tmp_path)  # fmt: skip
    assert hierarchical.main(argv) == 0
    run = tmp_path / "Results" / "clustering" / "demo_original+demo_attacks" / "full_cosine_average_m"
    for name in ["run.json", "scores.csv", "scores.json", "ids.txt", "groups.txt", "ground_truth.npy", "linkage.npy",
                 "dendrogram.png", "scores.png"]:  # fmt: skip
        assert (run / name).is_file(), name
    config = json.loads((run / "run.json").read_text())
    assert config["path"] == "dense" and config["n_images"] == 120 and config["cuts"] == ["16-clusters", "12-clusters"]
    cut = run / "12-clusters"
    for name in ["assignment.npy", "metrics.json", "clusters.csv", "centroids.npy", "iou.npy", "sizes.png",
                 "size_diameter.png", "iou.png", "representatives/0.png", "extremes/1.png"]:  # fmt: skip
        assert (cut / name).is_file(), name
    labels = np.load(cut / "assignment.npy")
    assert labels.shape == (120,) and labels.max() == 11
    assert len((run / "ids.txt").read_text().split()) == 120
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["v_measure"] == pytest.approx(1.0) and metrics["bcubed_f"] == pytest.approx(1.0)
    assert "v_measure" in capsys.readouterr().out


def test_hierarchical_threshold_sparse_path_without_saving(feature_store, tmp_path):
    argv = ["--method", "m", "--metric", "euclidean", "--linkage", "ward", "--datasets", "demo_original",
            "demo_attacks", "--threshold", "0.5", "1.0", "--memory-budget-gb", "1e-6", "--no-save",
            ] + roots(feature_store, tmp_path)  # fmt: skip
    assert hierarchical.main(argv) == 0
    assert not (tmp_path / "Results").exists()


def test_cluster_experiment_rows(feature_store, tmp_path):
    source = ClusteringSource("m", ["demo_original", "demo_attacks", "demo_distractors"], features_root=feature_store,
                              datasets_root=tmp_path)  # fmt: skip
    quiet = RunOutput(save=False, verbose=False, results_root=tmp_path / "R")
    rows = cluster_experiment(source, AgglomerativeConfig(linkage="ward", n_clusters=[18, 12]), quiet)
    assert [r["n_clusters"] for r in rows] == [18, 12]
    assert {"homogeneity", "completeness", "v_measure", "ari", "ami", "bcubed_precision", "bcubed_recall", "bcubed_f",
            "purity", "median_diameter", "median_snr_diameter_separation", "path"} <= set(rows[0])  # fmt: skip
    assert rows[0]["homogeneity"] == pytest.approx(1.0)  # 12 groups + 6 distractors alone = 18
    two = ClusteringSource("m", ["demo_original", "demo_attacks"], features_root=feature_store, datasets_root=tmp_path)
    default = cluster_experiment(two, AgglomerativeConfig(linkage="average"), RunOutput(save=False, verbose=False,
                                                                                        geometry=False))  # fmt: skip
    assert default[0]["n_clusters"] == 12 and "median_diameter" not in default[0]


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--linkage", "ward", "--metric", "cosine"], "ward linkage is only defined for metric='euclidean'"),
        (["--clusters", "500"], "asked for 500 clusters but there are only 120 points"),
        (["--datasets", "demo_distractors"], "no ground truth in"),
        (["--method", "nope"], "no features for dataset"),
    ],
)
def test_hierarchical_bad_input(feature_store, tmp_path, capsys, extra, match):
    argv = ["--method", "m", "--datasets", "demo_original", "demo_attacks"] + roots(feature_store, tmp_path) + extra
    assert hierarchical.main(argv) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "Results").exists()


@pytest.mark.slow
def test_dbscan_and_hdbscan_write_outputs(feature_store, tmp_path):
    base = ["--method", "m", "--metric", "euclidean", "--datasets", "demo_original", "demo_attacks", "demo_negatives", "--max-grids", "1"]
    assert dbscan.main(base + ["--eps", "0.3", "0.5", "--min-samples", "3"] + roots(feature_store, tmp_path)) == 0
    run = tmp_path / "Results" / "clustering" / "demo_original+demo_attacks+demo_negatives" / "full_euclidean_DBSCAN_3-samples_m"
    assert (run / "scores.csv").is_file() and (run / "eps-0.5" / "assignment.npy").is_file()
    labels = np.load(run / "eps-0.5" / "assignment.npy")
    assert labels.shape == (126,) and (labels == -1).sum() >= 6  # the random negatives are noise
    scores = json.loads((run / "scores.json").read_text())
    assert [r["eps"] for r in scores] == [0.5, 0.3] and scores[0]["path"] == "range-graph"
    assert dbscan.main(base + ["--hdbscan", "--min-cluster-size", "4"] + roots(feature_store, tmp_path)) == 0
    hdb = run.parent / "full_euclidean_HDBSCAN_4-size_m"
    assert (hdb / "hdbscan" / "metrics.json").is_file()
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing: exit 2, one line naming --eps
        dbscan.main(base + ["--eps", "-1"] + roots(feature_store, tmp_path))
    assert exit_info.value.code == 2
