"""kaggle_splitter on a tiny generated archive: names, templates, the seed's fix, idempotence, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from data_retrieval import kaggle_splitter as ks
from data_retrieval.datasets import find_originals, load_dataset
from tests.conftest import synthetic_image

ROWS = [
    ("abc", "harold"),
    ("x_y", "bad_luck_brian"),
    ("q?z", "harold"),
    ("b10", "success_kid"),
    ("b2", "success_kid"),
    ("gone", "harold"),  # no file: skipped
]


def make_archive(tmp_path: Path) -> tuple[Path, Path, Path]:
    images = tmp_path / "kaggle_images"
    images.mkdir()
    for i, stem in enumerate(["abc", "x_y", "qz", "b10", "b2", "extra", "EQKrGAq_imgr"]):
        ext = ".png" if stem.startswith("EQ") else ".jpg"
        synthetic_image(i, (32, 24)).save(images / f"{stem}{ext}")
    csv_path = tmp_path / "reddit_posts.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "meme_template", "title"])
        for stem, template in ROWS:
            writer.writerow([stem, template, "some title"])
    return csv_path, images, tmp_path / "Templates"


def test_split_renames_and_writes_one_template_per_class(tmp_path):
    csv_path, images, templates = make_archive(tmp_path)
    report = ks.split_kaggle(csv_path, images, templates)
    assert sorted(p.name for p in images.iterdir()) == [
        "bad-luck-brian_EQKrGAq-imgr.png",
        "bad-luck-brian_x-y.jpg",
        "extra.jpg",
        "harold_abc.jpg",
        "harold_qz.jpg",
        "success-kid_b10.jpg",
        "success-kid_b2.jpg",
    ]
    assert (report.renamed, report.missing, report.relabelled) == (5, ["gone"], 1)
    assert report.unmatched == ["extra.jpg"]
    # one template per class, the first CSV row with a file (b10 before b2), copied not moved
    assert sorted(p.name for p in templates.iterdir()) == [
        "bad-luck-brian.jpg",
        "harold.jpg",
        "success-kid.jpg",
    ]
    assert (templates / "success-kid.jpg").read_bytes() == (images / "success-kid_b10.jpg").read_bytes()
    assert not (templates / "EQKrGAq.png").exists()


def test_rerun_changes_nothing(tmp_path):
    csv_path, images, templates = make_archive(tmp_path)
    ks.split_kaggle(csv_path, images, templates)
    before = sorted(p.name for p in images.iterdir()), sorted(p.name for p in templates.iterdir())
    again = ks.split_kaggle(csv_path, images, templates)
    assert (again.renamed, again.already_renamed, again.relabelled, again.templates_written) == (0, 5, 0, [])
    assert again.templates_existing == 3
    assert (sorted(p.name for p in images.iterdir()), sorted(p.name for p in templates.iterdir())) == before


def test_ground_truth_of_the_split(tmp_path):
    csv_path, images, templates = make_archive(tmp_path)
    ks.split_kaggle(csv_path, images, templates)
    memes = load_dataset(images, name="memes")
    refs = load_dataset(templates, name="refs")
    found = find_originals(memes.ids, refs.ids, targets={"memes": "refs"})
    by_id = {q: (refs.ids[i] if i >= 0 else None) for q, i in zip(memes.ids, found, strict=True)}
    assert by_id["memes/harold_qz"] == "refs/harold"
    assert by_id["memes/success-kid_b10"] == "refs/success-kid"
    assert by_id["memes/bad-luck-brian_EQKrGAq-imgr"] == "refs/bad-luck-brian"
    assert by_id["memes/extra"] is None


def test_clear_errors(tmp_path):
    csv_path, images, templates = make_archive(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ks.split_kaggle(tmp_path / "nope.csv", images, templates)
    with pytest.raises(FileNotFoundError, match="no_images"):
        ks.split_kaggle(csv_path, tmp_path / "no_images", templates)
    (tmp_path / "empty.csv").write_text("id,template\n")
    with pytest.raises(ValueError, match="no data rows"):
        ks.split_kaggle(tmp_path / "empty.csv", images, templates)


def test_command_line(tmp_path, capsys):
    csv_path, images, templates = make_archive(tmp_path)
    assert ks.main([str(csv_path), str(images), str(templates)]) == 0
    assert "5 images renamed" in capsys.readouterr().out


def test_template_names_that_are_paths_are_refused(tmp_path):
    """Issue 12: '../' and absolute template names in the CSV moved images outside the folder."""
    csv_path, images, templates = make_archive(tmp_path)
    with open(csv_path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["extra", "../../escaped", "t"])
        writer.writerow(["b2", "/abs/olute", "t"])
        writer.writerow(["abc", "a/b", "t"])
    before = set(tmp_path.parent.rglob("*"))
    report = ks.split_kaggle(csv_path, images, templates)
    assert len(report.refused) == 3 and "3 CSV rows refused" in report.summary()
    assert (images / "extra.jpg").is_file()  # not moved anywhere
    outside = [p for p in set(tmp_path.parent.rglob("*")) - before if tmp_path not in p.parents]
    assert not outside
