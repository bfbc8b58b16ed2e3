"""Ground-truth groups from dataset ids: originals and copies, negatives, partitions, errors."""

import numpy as np
import pytest

from clustering.groundtruth import group_names, load_clustering_data
from extractor.store import store_path, write_features


def names_of(data):
    return dict(zip(data.ids.tolist(), data.group_names[data.groups].tolist(), strict=True))


def test_originals_and_attacks(feature_store, tmp_path):
    data = load_clustering_data("m", ["demo_original", "demo_attacks"], features_root=feature_store,
                                datasets_root=tmp_path / "none")  # fmt: skip
    assert len(data) == 120 and data.n_groups == 12 and data.has_ground_truth
    g = names_of(data)
    for image_id, group in g.items():
        key = image_id.split("/")[1].split("_")[0]
        assert group == f"demo_original/{key}"
    assert np.bincount(data.groups).tolist() == [10] * 12


def test_negatives_and_distractors(feature_store, tmp_path):
    sets = ["demo_original", "demo_attacks", "demo_negatives", "demo_distractors"]
    single = load_clustering_data("m", sets, features_root=feature_store, datasets_root=tmp_path / "none")
    assert len(single) == 132 and single.n_groups == 12 + 12  # each negative/distractor alone
    g = names_of(single)
    assert g["demo_negatives/x0_blur"] == "demo_negatives/x0_blur" and g["demo_distractors/d1"] == "demo_distractors/d1"
    excluded = load_clustering_data("m", sets, negatives="exclude", features_root=feature_store, datasets_root=tmp_path)
    assert len(excluded) == 120 and excluded.dropped["negatives"] == 12


def test_memes_partitions_and_templates_from_names(feature_store, tmp_path):
    both = load_clustering_data("m", ["Kaggle_memes", "Kaggle_templates"], features_root=feature_store, datasets_root=tmp_path)
    g = names_of(both)
    assert g["Kaggle_memes/harold_a"] == g["Kaggle_templates/harold"] == "Kaggle_templates/harold"
    assert g["Kaggle_memes/shrek_a"] == "Kaggle_memes/shrek_a"  # its template is not loaded: a negative
    clean = load_clustering_data("m", ["Kaggle_memes", "Kaggle_templates"], partition="clean",
                                 features_root=feature_store, datasets_root=tmp_path)  # fmt: skip
    assert sorted(clean.ids.tolist()) == ["Kaggle_memes/doge_a", "Kaggle_memes/doge_b", "Kaggle_memes/doge_c",
                                          "Kaggle_templates/doge"]  # fmt: skip
    assert clean.dropped["noisy_templates"] == 4  # harold x2 + its template, and shrek_a (template absent)
    # memes alone, no Datasets folder: the template is the stem before the first '_'
    alone = load_clustering_data("m", ["Kaggle_memes"], features_root=feature_store, datasets_root=tmp_path / "none")
    assert names_of(alone)["Kaggle_memes/shrek_a"] == "Kaggle_templates/shrek"
    assert alone.n_groups == 3


def test_templates_listed_on_disk(tmp_path):
    folder = tmp_path / "Datasets" / "Kaggle_memes" / "Templates"
    folder.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(folder / "my_cat.png")
    ids = ["Kaggle_memes/my_cat_xyz", "Kaggle_memes/other_1"]
    assert group_names(ids, tmp_path / "Datasets").tolist() == ["Kaggle_templates/my_cat", ""]


def test_errors_before_any_work(feature_store, tmp_path):
    with pytest.raises(ValueError, match="no ground truth in"):
        load_clustering_data("m", ["demo_distractors"], features_root=feature_store, datasets_root=tmp_path)
    assert len(load_clustering_data("m", ["demo_distractors"], features_root=feature_store, require_ground_truth=False)) == 6
    with pytest.raises(ValueError, match="valid partitions: full, clean"):
        load_clustering_data("m", ["demo_original"], partition="noisy", features_root=feature_store)
    with pytest.raises(ValueError, match="valid modes: singleton, exclude"):
        load_clustering_data("m", ["demo_original"], negatives="drop", features_root=feature_store)
    with pytest.raises(ValueError, match="no dataset given"):
        load_clustering_data("m", [], features_root=feature_store)
    write_features(store_path("demo_attacks", "h", feature_store), ["demo_attacks/0_a"], np.zeros((1, 16), np.float32), method="h")
    with pytest.raises(ValueError, match="demo_attacks: h features are binary=False, dim=16 but demo_original has binary=True"):
        load_clustering_data("h", ["demo_original", "demo_attacks"], features_root=feature_store)
