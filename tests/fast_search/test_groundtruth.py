"""Ground truth for any folder (--targets, CSV with several positives and categories), loud when absent."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from extractor.store import store_path, write_features
from fast_search import run_experiment
from fast_search.groundtruth import build_ground_truth, parse_targets, read_ground_truth


def _plain_stores(root, n=12, dim=8, seed=0):
    """my_originals/<i>, my_copies/<i>_edit (copy of i), other_queries/q<i> (copies named by no rule)."""
    rng = np.random.default_rng(seed)
    orig = rng.normal(size=(n, dim)).astype("f4")
    write_features(
        store_path("my_originals", "m", root), [f"my_originals/{i}" for i in range(n)], orig, method="m"
    )
    copies = orig + 0.05 * rng.normal(size=orig.shape).astype("f4")
    write_features(
        store_path("my_copies", "m", root), [f"my_copies/{i}_edit" for i in range(n)], copies, method="m"
    )
    write_features(
        store_path("other_queries", "m", root),
        [f"other_queries/q{i}" for i in range(n)],
        copies[::-1],
        method="m",
    )
    return root


def test_parse_targets():
    assert parse_targets(["a=b", "c=d"]) == {"a": "b", "c": "d"}
    assert parse_targets({"a": "b"}) == {"a": "b"}
    with pytest.raises(ValueError, match="QUERY_DATASET=DATABASE_DATASET"):
        parse_targets(["a"])


def test_a_plain_folder_of_copies_is_evaluated_with_targets(tmp_path, caplog):
    root = _plain_stores(tmp_path / "F")
    kw = {"indexes": ["Flat"], "metrics": ["cosine"], "ks": [1], "features_root": root, "threads": 1}
    with caplog.at_level(logging.WARNING):
        res = run_experiment("none", "m", ["my_originals"], ["my_copies"], results_root=tmp_path / "R", **kw)
    assert "NO GROUND TRUTH" in caplog.text and "--targets my_copies=" in caplog.text
    assert res["data"]["n_positive"] == 0 and res["runs"][0]["recall_at_k"]["1"] is None
    res = run_experiment(
        "t", "m", ["my_originals"], ["my_copies"], targets=["my_copies=my_originals"],
        results_root=tmp_path / "R", **kw,
    )  # fmt: skip
    assert res["data"]["n_positive"] == 12 and res["runs"][0]["recall_at_k"]["1"] == 1.0
    assert res["params"]["targets"] == {"my_copies": "my_originals"}


def test_csv_ground_truth_with_several_positives_and_categories(tmp_path):
    root = _plain_stores(tmp_path / "F")
    csv = tmp_path / "gt.csv"
    rows = ["query_id,positive_id,category"]
    for i in range(12):  # other_queries/q<i> copies original 11 - i; also lists original (11 - i + 1) % 12
        j = 11 - i
        rows += [f"other_queries/q{i},my_originals/{j},{'even' if i % 2 == 0 else 'odd'}"]
        rows += [f"other_queries/q{i},my_originals/{(j + 1) % 12}"]
    rows += ["other_queries/q0,my_originals/missing"]
    csv.write_text("\n".join(rows) + "\n")
    positives, categories = read_ground_truth(csv)
    assert positives["other_queries/q0"] == ["my_originals/11", "my_originals/0", "my_originals/missing"]
    assert categories["other_queries/q1"] == "odd"
    res = run_experiment(
        "csv", "m", ["my_originals"], ["other_queries"], ground_truth=str(csv), indexes=["Flat"],
        metrics=["cosine"], ks=[1, 2], features_root=root, results_root=tmp_path / "R", threads=1,
    )  # fmt: skip
    run = res["runs"][0]
    assert res["data"]["ground_truth"] == {"other_queries": "csv"}
    assert run["recall_at_k"]["1"] == 1.0
    assert run["oracle_at_k"]["1"] == 0.5  # 1 of 2 positives within k = 1
    assert set(run["categories"]) == {"even", "odd"} and run["categories"]["odd"]["n_queries"] == 6
    with np.load(tmp_path / "R" / "csv" / "ids.npz") as z:
        assert z["positives"].shape == (12, 2) and (z["positives"] >= 0).all()


def test_build_ground_truth_rules_and_csv_mix():
    truth = build_ground_truth(
        ["demo_attacks/3_jpg_compression_10", "x/1_edit"],
        ["demo_original/3", "demo_original/1"],
        {"x": "demo_original"},
    )
    assert truth.positives.tolist() == [[0], [1]] and truth.targets.tolist() == [0, 1]


def test_bad_ground_truth_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_ground_truth(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("only_one_column\n")
    with pytest.raises(ValueError, match="bad.csv:1"):
        read_ground_truth(bad)


def test_search_experiment_script_targets_and_loud_message(tmp_path, capsys):
    from imsim.commands import search_experiment as script  # what search_experiment.py runs
    root = _plain_stores(tmp_path / "F")
    argv = ["x", "--method", "m", "--database", "my_originals", "--queries", "my_copies", "--indexes", "Flat",
            "--metrics", "cosine", "--k", "1", "--features-root", str(root), "--results-root", str(tmp_path / "R")]  # fmt: skip
    assert script.main(argv) == 0
    out = capsys.readouterr()
    assert "NO GROUND TRUTH" in out.err and "| recall@1 |" not in out.out
    assert script.main([*argv, "--overwrite", "--targets", "my_copies=my_originals"]) == 0
    assert "| Flat--cosine | 1.0000 |" in capsys.readouterr().out
    assert script.main([*argv, "--overwrite", "--targets", "my_copies"]) == 2
    assert "QUERY_DATASET=DATABASE_DATASET" in capsys.readouterr().err


def test_text_queries_with_several_positives(tmp_path):
    """Text -> image: a query store of text features (same method and dim) with a CSV ground truth."""
    root = tmp_path / "F"
    rng = np.random.default_rng(3)
    images = rng.normal(size=(20, 64)).astype("f4")
    write_features(store_path("ilias_positives", "clip", root), [f"ilias_positives/i{i}" for i in range(20)],
                   images, method="clip")  # fmt: skip
    # text query t<j> describes images 2j and 2j+1: its feature lies between them
    text = (images[0::2] + images[1::2]) / 2
    write_features(store_path("text_queries", "clip", root), [f"text_queries/t{j}" for j in range(10)], text,
                   method="clip")  # fmt: skip
    csv = tmp_path / "gt.csv"
    csv.write_text(
        "".join(f"text_queries/t{j},ilias_positives/i{2 * j + d}\n" for j in range(10) for d in (0, 1))
    )
    res = run_experiment(
        "text", "clip", ["ilias_positives"], ["text_queries"], ground_truth=str(csv), indexes=["Flat"],
        metrics=["cosine"], ks=[2], features_root=root, results_root=tmp_path / "R", threads=1,
    )  # fmt: skip
    run = res["runs"][0]
    assert res["data"]["n_positive"] == 10
    assert run["map_at_k"]["2"] > 0.9 and run["oracle_at_k"]["2"] > 0.9


def test_ilias_ground_truth_to_csv(tmp_path):
    from fast_search.groundtruth import ilias_ground_truth

    ids = tmp_path / "image_ids"
    ids.mkdir()
    (ids / "image_query_ids.txt").write_text("cat1/query/q.jpg,0\ndog2/query/q.jpg,0\n")
    (ids / "text_query_ids.txt").write_text("cat1/T.txt\n")
    (ids / "positive_ids.txt").write_text(
        "cat1/pos/a.jpg,0.1,3\ncat1/pos/b.jpg,0.2,5\ndog2/pos/c.jpg,0.3,1\n"
    )
    (tmp_path / "taxonomy.json").write_text('{"animals": {"pets": {"x": ["cat1", "dog2"]}}}')
    assert ilias_ground_truth(ids, tmp_path / "gt.csv", tmp_path / "taxonomy.json") == 5
    positives, categories = read_ground_truth(tmp_path / "gt.csv")
    assert positives["cat1/query/q.jpg"] == ["cat1/pos/a.jpg", "cat1/pos/b.jpg"]
    assert positives["cat1/T.txt"] == ["cat1/pos/a.jpg", "cat1/pos/b.jpg"]
    assert positives["dog2/query/q.jpg"] == ["dog2/pos/c.jpg"] and categories["dog2/query/q.jpg"] == "animals"


def test_ilias_ground_truth_names_each_query_instance(tmp_path):
    from fast_search.groundtruth import build_ground_truth, ilias_ground_truth, read_ground_truth_rows

    ids = tmp_path / "image_ids"
    ids.mkdir()
    (ids / "image_query_ids.txt").write_text("cat1/query/q.jpg,0\ndog2/query/q.jpg,0\n")
    (ids / "text_query_ids.txt").write_text("cat1/T.txt\n")
    (ids / "positive_ids.txt").write_text("cat1/pos/a.jpg,0.1,3\ndog2/pos/c.jpg,0.3,1\n")
    (tmp_path / "taxonomy.json").write_text('{"animals": {"pets": {"x": ["cat1", "dog2"]}}}')
    ilias_ground_truth(ids, tmp_path / "gt.csv", tmp_path / "taxonomy.json")
    _, _, instances = read_ground_truth_rows(tmp_path / "gt.csv")
    assert instances == {"cat1/query/q.jpg": "cat1", "cat1/T.txt": "cat1", "dog2/query/q.jpg": "dog2"}
    truth = build_ground_truth(["cat1/T.txt", "dog2/query/q.jpg"], ["cat1/pos/a.jpg", "dog2/pos/c.jpg"],
                               ground_truth=tmp_path / "gt.csv")
    assert truth.instances.tolist() == ["cat1", "dog2"]
