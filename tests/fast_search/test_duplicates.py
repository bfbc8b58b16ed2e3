"""find_duplicates on a folder with known groups: exact copies, re-encodings, near-duplicates, distinct images."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from fast_search.duplicates import (
    connected_groups,
    default_max_distance,
    find_duplicates,
    folder_key,
    plot_duplicates,
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
    assert dups.max_distance == default_max_distance(method, True, 64)
    copy = str(folder / "img0_copy.jpg")
    assert dups.matches[str(folder / "img0.jpg")] == [(copy, 0.0)]  # identical bytes: distance 0
    assert dups.matches[str(folder / "img5.jpg")] == []  # distinct images match nothing
    removed = dups.remove_list()
    assert len(removed) == sum(len(g) - 1 for g in expected)
    assert str(folder / "img1_reencoded.png") not in removed  # lossless, full size: the least processed is kept
    assert [Path(p).name for p in dups.group_paths[-1]] == ["img0.jpg", "img0_copy.jpg"]  # identical: path order
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
    assert (out / "remove_list.txt").read_text().split() == sorted(r["path"] for r in groups if r["action"] == "remove")
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
    assert default_max_distance("phash", True, 64) >= 1
    assert default_max_distance("phash_16", True, 256) == 4 * default_max_distance("phash", True, 64)
    assert default_max_distance("dhash_exact", True, 64) == default_max_distance("dhash", True, 64)
    assert default_max_distance("phash", True, 64, precision=0.999) <= default_max_distance("phash", True, 64)
    assert 0 <= default_max_distance("efficientnet_lite0", False) < 1
    assert 0 < default_max_distance("resnet50", False) < 1  # uncalibrated: a documented fallback


def test_two_folders_of_one_name_never_share_a_store_or_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for parent, seed in (("photos", 1), ("other", 2)):
        (tmp_path / parent / "mixed").mkdir(parents=True)
        for k in range(3):
            synthetic_image(seed * 10 + k, (96, 96)).save(tmp_path / parent / "mixed" / f"{k}.jpg")
        shutil.copy(tmp_path / parent / "mixed" / "0.jpg", tmp_path / parent / "mixed" / "0_copy.jpg")
    assert folder_key("photos/mixed") != folder_key("other/mixed")
    assert folder_key("photos/mixed") == folder_key(str(tmp_path / "photos" / "mixed"))
    args = ["--features-root", str(tmp_path / "F"), "--workers", "0"]
    assert main(["photos/mixed", *args]) == 0
    assert main(["other/mixed", *args]) == 0  # not refused, not mixed up with photos/mixed
    outs = sorted((tmp_path / "duplicates").iterdir())  # under the working directory
    assert len(outs) == 2
    lists = sorted((out / "remove_list.txt").read_text().split() for out in outs)
    assert len(lists[0]) == len(lists[1]) == 1 and lists[0] != lists[1]
    assert {Path(lst[0]).parts[-3] for lst in lists} == {"photos", "other"}


def test_precision_flag_and_exclusive_threshold(dup_folder, tmp_path, capsys):
    folder, _ = dup_folder
    strict = find_duplicates(folder, "phash", precision=0.999, features_root=tmp_path / "F", workers=0, progress=False)
    assert strict.max_distance == default_max_distance("phash", True, 64, precision=0.999)
    with pytest.raises(ValueError, match="not both"):
        find_duplicates(folder, "phash", 4, precision=0.9, features_root=tmp_path / "F", workers=0, progress=False)
    with pytest.raises(SystemExit) as e:
        main([str(folder), "--precision", "1.5"])
    assert e.value.code == 2


def test_quarantine_moves_and_undo_puts_back(dup_folder, tmp_path):
    src = tmp_path / "photos"
    shutil.copytree(dup_folder[0], src)
    q = tmp_path / "quarantine"
    args = [str(src), "--features-root", str(tmp_path / "F"), "--workers", "0", "--output", str(tmp_path / "o")]
    before = sorted(p.name for p in src.iterdir())
    assert main([*args, "--quarantine", str(q)]) == 0
    removed = (tmp_path / "o" / "remove_list.txt").read_text().split()
    assert removed and all(not Path(p).exists() for p in removed)
    assert sorted(p.name for p in q.iterdir() if p.suffix != ".json") == sorted(Path(p).name for p in removed)
    assert main([*args, "--quarantine", str(q)]) == 2  # the undo file is there: refused, nothing moved
    assert main(["--undo", str(q / "undo.json")]) == 0
    assert sorted(p.name for p in src.iterdir()) == before


def test_invariant_matches_flips_and_rotations(tmp_path):
    pytest.importorskip("skimage")
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.fromarray(data.astronaut()).resize((256, 256))
    photo.save(folder / "a.jpg", quality=92)
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "a_flip.jpg", quality=90)
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "a_rot.jpg", quality=90)
    Image.fromarray(data.coffee()).resize((256, 200)).save(folder / "b.jpg", quality=92)
    plain = find_duplicates(folder, "phash", features_root=tmp_path / "F", workers=0, progress=False)
    assert plain.groups == []
    inv = find_duplicates(folder, "phash", invariant=True, features_root=tmp_path / "F", workers=0, progress=False)
    assert [sorted(Path(p).name for p in g) for g in inv.group_paths] == [["a.jpg", "a_flip.jpg", "a_rot.jpg"]]
    assert inv.index == "dihedral"


def test_plot_duplicates_draws_a_group(dup_folder, tmp_path):
    pytest.importorskip("matplotlib")
    folder, _ = dup_folder
    dups = find_duplicates(folder, "phash", features_root=tmp_path / "F", workers=0, progress=False)
    fig = plot_duplicates(dups, str(folder / "img1.jpg"))
    assert "kept" in " ".join(ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError):
        plot_duplicates(dups, 99)


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
