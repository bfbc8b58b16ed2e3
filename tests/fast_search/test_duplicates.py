"""find_duplicates on a folder with known groups: exact copies, re-encodings, near-duplicates, distinct images."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from fast_search.duplicates import (
    DEFAULT_MAX_DISTANCE,
    connected_groups,
    default_max_distance,
    find_duplicates,
    search_pairs,
)
from fast_search.duplicates_cli import main
from helpers.synthetic import synthetic_image


@pytest.fixture(scope="module")
def dup_folder(tmp_path_factory) -> tuple[Path, list[set[str]]]:
    """8 distinct pictures plus copies: 3 known groups; returns (folder, groups of file names)."""
    folder = tmp_path_factory.mktemp("dups") / "photos"
    folder.mkdir()
    for i in range(8):
        synthetic_image(100 + i, (320, 240)).save(folder / f"img{i}.jpg", quality=92)
    shutil.copy(folder / "img0.jpg", folder / "img0_copy.jpg")  # exact copy
    one = Image.open(folder / "img1.jpg")
    one.save(folder / "img1_reencoded.png")  # re-encodings
    one.save(folder / "img1_q60.jpg", quality=60)
    two = Image.open(folder / "img2.jpg")
    two.resize((224, 168), Image.Resampling.BICUBIC).save(folder / "img2_small.jpg", quality=85)  # near-duplicates
    ImageEnhance.Brightness(two).enhance(1.1).save(folder / "img2_bright.jpg", quality=90)
    groups = [{"img1.jpg", "img1_q60.jpg", "img1_reencoded.png"}, {"img2.jpg", "img2_bright.jpg", "img2_small.jpg"},
              {"img0.jpg", "img0_copy.jpg"}]
    return folder, groups


@pytest.mark.parametrize("method", ["phash", "dhash"])
def test_known_groups_found(dup_folder, tmp_path, method):
    folder, expected = dup_folder
    dups = find_duplicates(folder, method, features_root=tmp_path / "F", workers=0, progress=False)
    found = [{Path(dups.paths[i]).name for i in g} for g in dups.groups]
    assert sorted(map(sorted, found)) == sorted(map(sorted, expected))
    assert dups.max_distance == DEFAULT_MAX_DISTANCE[method]
    copy = str(folder / "img0_copy.jpg")
    assert dups.matches[str(folder / "img0.jpg")] == [(copy, 0.0)]  # identical bytes: distance 0
    assert dups.matches[str(folder / "img5.jpg")] == []  # distinct images match nothing
    removed = dups.remove_list()
    assert len(removed) == sum(len(g) - 1 for g in expected)
    assert str(folder / "img1_reencoded.png") not in removed  # the largest file of its group is kept
    again = find_duplicates(folder, method, features_root=tmp_path / "F", workers=0, progress=False)
    assert again.pairs == dups.pairs  # the store is reused, same answer


def test_threshold_zero_keeps_only_identical_hashes(dup_folder, tmp_path):
    folder, _ = dup_folder
    dups = find_duplicates(folder, "dhash", max_distance=0, features_root=tmp_path / "F", workers=0, progress=False)
    assert {"img0.jpg", "img0_copy.jpg"} in [{Path(dups.paths[i]).name for i in g} for g in dups.groups]
    assert all(d == 0 for _, _, d in dups.pairs)


def test_command_writes_csv_gallery_and_remove_list(dup_folder, tmp_path, capsys):
    folder, expected = dup_folder
    out = tmp_path / "out"
    assert main([str(folder), "--out", str(out), "--features-root", str(tmp_path / "F"), "--workers", "0"]) == 0
    with open(out / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"path_a", "path_b", "distance", "group"} <= set(rows[0])
    assert len({r["group"] for r in rows}) == len(expected)
    with open(out / "groups.csv", newline="") as f:
        groups = list(csv.DictReader(f))
    assert sum(r["action"] == "keep" for r in groups) == len(expected)
    page = (out / "index.html").read_text()
    assert "3 groups of duplicates" in page and "img2_small.jpg" in page and "pairs.csv" in page
    assert len(list((out / "thumbs").glob("*.jpg"))) == sum(len(g) for g in expected)
    capsys.readouterr()
    assert main([str(folder), "--remove-list", "--features-root", str(tmp_path / "F"), "--workers", "0"]) == 0
    listed = capsys.readouterr().out.split()
    assert len(listed) == sum(len(g) - 1 for g in expected) and all(Path(p).exists() for p in listed)


def test_bad_input_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), "--max-distance", "-1"])
    assert e.value.code == 2


def test_search_pairs_and_groups_on_arrays():
    x = np.array([[0], [0], [1], [255], [254]], np.uint8)  # 8-bit hashes
    pairs, index = search_pairs(x, True, max_distance=1)
    assert index == "BFlat"
    assert pairs == [(0, 1, 0.0), (0, 2, 1.0), (1, 2, 1.0), (3, 4, 1.0)]
    assert connected_groups(5, pairs) == [[0, 1, 2], [3, 4]]
    floats = np.array([[1, 0], [0.99, 0.05], [0, 1]], np.float32)
    pairs, _ = search_pairs(floats, False, max_distance=0.01)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]


def test_default_thresholds():
    assert default_max_distance("phash", True, 64) == DEFAULT_MAX_DISTANCE["phash"]
    assert default_max_distance("phash_16", True, 256) == 4 * DEFAULT_MAX_DISTANCE["phash"]
    assert default_max_distance("dhash_exact", True, 64) == DEFAULT_MAX_DISTANCE["dhash"]
    assert 0 < default_max_distance("resnet50", False) < 1


def test_folder_evaluation_against_true_pairs(dup_folder, tmp_path):
    """Issue 21: one folder against itself, imagededup-style: pair precision/recall/F1 plus per-image retrieval."""
    from fast_search.folder_eval import evaluate_folder, pair_scores

    folder, groups = dup_folder
    gt = tmp_path / "pairs.csv"
    rows = [f"{a},{b}" for g in groups for a in sorted(g) for b in sorted(g) if a < b]
    gt.write_text("query,duplicate\n" + "\n".join(rows[:-1]) + "\nimg2_bright.jpg,nope.jpg\n")  # one pair left out
    rep = evaluate_folder(folder, "phash", gt, features_root=tmp_path / "F", results_root=tmp_path / "R",
                          workers=0, progress=False)  # fmt: skip
    pairs = rep["pairs"]
    assert pairs["n_true"] == len(rows) - 1 and rep["unknown_names"] == 1
    assert pairs["recall"] == 1.0 and pairs["precision"] == pytest.approx((len(rows) - 1) / pairs["n_predicted"])
    assert rep["self_matches_excluded"]["n_queries"] == rep["n_images"] >= 13
    assert rep["retrieval"]["recall@1"] > 0.8  # each duplicate finds another of its group, never itself
    assert (tmp_path / "R" / "folder-eval-photos-phash" / "folder_eval.json").is_file()
    assert pair_scores(set(), set())["f1"] != pair_scores(set(), set())["f1"]  # nan when undefined
    out = main([str(folder), "--ground-truth", str(gt), "--features-root", str(tmp_path / "F"),
                "--results-root", str(tmp_path / "R2"), "--workers", "0"])  # fmt: skip
    assert out == 0
