"""datasets: ids, natural order, skips, errors, ground truth (find_originals) and id -> path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from data_retrieval import datasets as ds
from tests.conftest import synthetic_image


def touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic_image(i, (16, 12)).save(folder / name)


def test_ids_are_dataset_qualified_and_never_collide(tmp_path):
    touch_images(tmp_path / "BSDS500" / "Original", ["100007.jpg"])
    touch_images(tmp_path / "Flickr500K", ["3/100007.jpg"])
    bsds = ds.load_dataset("BSDS500_original", root=tmp_path)
    flickr = ds.load_dataset("Flickr500K", root=tmp_path)
    assert bsds.ids == ["BSDS500_original/100007"]
    assert flickr.ids == ["Flickr500K/3/100007"]
    assert bsds.name == "BSDS500_original" and bsds.targets is None
    assert ds.split_id("Flickr500K/3/100007") == ("Flickr500K", "3/100007")


def test_natural_order_and_recursion(tmp_path):
    names = ["10.jpg", "2.jpg", "1.jpg", "a10.png", "a9.png", "sub/1.jpg", "9/5.jpg", "10/1.jpg"]
    touch_images(tmp_path / "f", names)
    flat = ds.load_dataset(tmp_path / "f", name="f")
    assert [p.name for p in flat.paths] == ["1.jpg", "2.jpg", "10.jpg", "a9.png", "a10.png"]
    deep = ds.load_dataset(tmp_path / "f", name="f", recursive=True)
    assert deep.ids == ["f/1", "f/2", "f/9/5", "f/10", "f/10/1", "f/a9", "f/a10", "f/sub/1"]


def test_natural_key_is_total_and_deterministic():
    names = [
        "01.jpg",
        "1.jpg",
        "1\u00b22.jpg",
        "a\u00b21.jpg",
        "b.jpg",
        "10.jpg",
    ]  # "\u00b2" is a digit to isdigit() but not to int()
    ordered = sorted(names, key=ds.natural_key)
    assert ordered == sorted(
        reversed(names), key=ds.natural_key
    )  # ties broken by the name, not listing order
    assert ordered.index("01.jpg") < ordered.index("1.jpg") < ordered.index("10.jpg")


def test_hidden_non_image_and_duplicate_files_are_skipped_with_reasons(tmp_path):
    folder = tmp_path / "f"
    touch_images(folder, ["a.jpg", "a.png", "b.png", ".hidden.jpg", ".git/x.jpg"])
    (folder / "notes.txt").write_text("x")
    (folder / "subdir").mkdir()
    listing = ds.load_dataset(folder, name="f", recursive=True)
    assert listing.ids == ["f/a.jpg", "f/a.png", "f/b"]  # a shared stem keeps the extensions: both are searched
    reasons = {Path(p).name: r for p, r in listing.skipped}
    assert reasons["notes.txt"] == "not an image extension"
    assert reasons[".hidden.jpg"] == "hidden file"
    assert "a.png" not in reasons
    assert "x.jpg" not in reasons  # hidden folders are not walked


def test_folder_name_is_the_default_name(tmp_path):
    touch_images(tmp_path / "MyPhotos", ["x.jpg"])
    assert ds.load_dataset(tmp_path / "MyPhotos").ids == ["MyPhotos/x"]
    assert ds.load_dataset(str(tmp_path / "MyPhotos"), name="other").ids == ["other/x"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ds.DatasetError, match="BSDS500/Original"):
        ds.load_dataset("BSDS500_original", root=tmp_path)
    with pytest.raises(ds.DatasetError, match="neither a registered dataset"):
        ds.load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ds.DatasetError, match="no image files.*1 other files"):
        ds.load_dataset(tmp_path / "empty")
    (tmp_path / "file.jpg").write_text("x")
    with pytest.raises(ds.DatasetError, match="is a file"):
        ds.list_images(tmp_path / "file.jpg")
    with pytest.raises(ds.DatasetError, match="known: BSDS500_original"):
        ds.get_spec("nope")
    touch_images(tmp_path / "ok", ["a.jpg"])
    with pytest.raises(ValueError, match="must not contain"):
        ds.load_dataset(tmp_path / "ok", name="a/b")
    with pytest.raises(ValueError, match="dataset-qualified"):
        ds.split_id("no-slash")
    assert issubclass(ds.DatasetError, FileNotFoundError)


def test_registry():
    names = ds.list_datasets()
    for name in [
        "BSDS500_original",
        "BSDS500_attacks",
        "Kaggle_memes",
        "Kaggle_templates",
        "Flickr500K",
        "Cartoons",
    ]:
        assert name in names
    for name in ["demo_original", "demo_attacks", "demo_negatives", "demo_distractors"]:
        assert ds.SPECS[name].folder.startswith("demo/")
    assert ds.SPECS["BSDS500_attacks"].targets == "BSDS500_original"
    assert ds.SPECS["Kaggle_memes"].targets == "Kaggle_templates"
    assert ds.SPECS["demo_negatives"].targets == "demo_original"
    assert ds.dataset_folder("Flickr500K", "/x") == Path("/x/Flickr500K")


def test_find_originals_attacks_memes_and_negatives():
    database = [
        "BSDS500_original/100007",
        "BSDS500_original/2",
        "Flickr500K/3/100007",
        "Kaggle_templates/harold",
    ]
    queries = [
        "BSDS500_attacks/100007_jpg_compression_10",
        "BSDS500_attacks/2_s&p_noise_0.1",
        "BSDS500_attacks/2_rotation_5_and_rescaling",
        "BSDS500_attacks/99_scaling_0.4",  # original not in the database: negative
        "Kaggle_memes/harold_abc12",
        "Kaggle_memes/shrek_xyz",
        "Flickr500K/3/100007",  # a dataset with no target: negative
    ]
    assert find(queries, database) == [0, 1, 1, -1, 3, -1, -1]


def find(queries, database, targets=None) -> list[int]:
    out = ds.find_originals(queries, database, targets)
    assert out.dtype == np.int64 and out.shape == (len(queries),)
    return out.tolist()


def test_find_originals_prefers_the_longest_matching_prefix():
    database = ["o/a", "o/a_b"]
    queries = [
        "q/a_b_gaussian_noise_0.01",
        "q/a_gaussian_noise_0.01",
        "q/a_bc_scaling_0.4",
        "q/ab_scaling_0.4",
    ]
    assert find(queries, database, {"q": "o"}) == [1, 0, 0, -1]


def test_find_originals_needs_a_suffix_separator_and_exact_dataset():
    database = ["o/a", "other/a_x"]
    # 'a' alone is not a copy of 'a'; 'ab_x' does not start with 'a_'; the target dataset must match
    assert find(["q/a", "q/ab_x", "z/a_x"], database, {"q": "o", "z": "o"}) == [-1, -1, 0]
    assert find(["q/a_x"], database) == [-1]  # no mapping for 'q': negative
    assert find([], database) == []


def test_original_candidates_longest_first():
    assert ds.original_candidates("q/a_b_c", "o") == ["o/a_b", "o/a"]
    assert ds.original_candidates("q/sub/a_b", "o") == ["o/a"]
    assert ds.original_candidates("q/abc", "o") == []


def test_image_paths_registered_and_plain_folders(tmp_path):
    touch_images(tmp_path / "demo" / "Original", ["astronaut.png", "camera.png"])
    touch_images(tmp_path / "plain", ["x.jpg", "deep/y.jpg"])
    ids = ["demo_original/camera", "plain/deep/y", "demo_original/missing", "unknown/z", "plain/x"]
    paths = ds.image_paths(ids, root=tmp_path, folders={"plain": tmp_path / "plain"})
    assert paths == [
        tmp_path / "demo" / "Original" / "camera.png",
        tmp_path / "plain" / "deep" / "y.jpg",
        None,
        None,
        tmp_path / "plain" / "x.jpg",
    ]


# ---- issue 12: unique ids, non-UTF-8 names -----------------------------------------------


def test_files_sharing_a_stem_get_distinct_ids_and_ground_truth_still_works(tmp_path):
    touch_images(tmp_path / "orig", ["photo.bmp", "photo.webp", "cat.jpg"])
    touch_images(tmp_path / "copies", ["photo_blur.png", "cat_crop.jpg", "dog_x.jpg"])
    orig = ds.load_dataset(tmp_path / "orig", name="orig")
    assert orig.ids == ["orig/cat", "orig/photo.bmp", "orig/photo.webp"] and len(set(orig.ids)) == 3
    queries = ds.load_dataset(tmp_path / "copies", name="copies")
    found = ds.find_originals(queries.ids, orig.ids, {"copies": "orig"})
    assert found.tolist() == [0, -1, 1]  # cat_crop -> cat, dog_x: negative, photo_blur -> the first 'photo'
    assert ds.id_stem("orig/photo.bmp") == "orig/photo" and ds.id_stem("orig/v1.2") == "orig/v1.2"


def test_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path):
    folder = tmp_path / "f"
    touch_images(folder, ["good.jpg"])
    with open(bytes(folder) + b"/caf\xe9.jpg", "wb") as f:
        f.write((folder / "good.jpg").read_bytes())
    listing = ds.load_dataset(folder, name="f")
    assert listing.ids == ["f/good"]
    assert listing.skipped == [(f"{folder}/caf\\xe9.jpg", "file name is not valid UTF-8 (rename the file)")]


@pytest.mark.parametrize("rel", ["a.jpg", "a.tar.gz", ".bashrc", "a.", "a", "d.x/b", "d.x/.b", "d/e/f.png", "a..b"])
def test_ids_strip_the_extension_as_pathlib_does(rel):
    from pathlib import PurePosixPath

    assert ds.strip_suffix(rel) == PurePosixPath(rel).with_suffix("").as_posix()
    assert ds.relative_posix(Path("/x/y"), Path("/x/y") / rel) == rel
    assert ds.relative_posix(Path("."), Path(".") / rel) == rel


def test_listing_order_and_skips_do_not_depend_on_the_directory_order(tmp_path, monkeypatch):
    folder = tmp_path / "f"
    touch_images(folder, ["10.jpg", "2.jpg", "sub/1.jpg", ".h.jpg"])
    for name in ("z.txt", "a.txt"):
        (folder / name).write_text("x")
    want = ds.list_images(folder, recursive=True)
    scandir = os.scandir

    class Reversed:
        def __init__(self, path):
            self.it = scandir(path)

        def __enter__(self):
            return reversed(list(self.it))

        def __exit__(self, *exc):
            self.it.close()

    monkeypatch.setattr(ds.os, "scandir", Reversed)
    assert ds.list_images(folder, recursive=True) == want
    assert [p.name for p in want[0]] == ["2.jpg", "10.jpg", "1.jpg"]  # "sub/1" sorts after "10"
