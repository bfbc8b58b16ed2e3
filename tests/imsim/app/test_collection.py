# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The app's collection: queries embedded exactly as the store's extractor did, the index built once,
saved next to the features and rebuilt when a store changes, thresholds from results.json."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from extractor import extract_dataset, load_features, register_extractor, store_info, unregister_extractor
from extractor.store import write_features
from helpers.jsonio import save_json
from imsim.app import Collection, threshold_from_results
from imsim.app.batcher import EmbeddingBatcher
from imsim.app.collection import MAX_QUERY_PIXELS
from imsim.app.embed import ExtractorMismatch, embed_file, extractor_for_store, prepare_file
from tests.imsim.app.conftest import attack_file


def test_query_features_equal_the_store_for_hashes(tiny_demo):
    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"])
    stored = load_features("demo_attacks", tiny_demo["method"], tiny_demo["features"])
    for image_id, row in zip(stored.ids, stored.features, strict=True):
        path = attack_file(tiny_demo, image_id.split("/", 1)[1])
        np.testing.assert_array_equal(collection.embed(path)[0], row)


def test_query_features_equal_the_store_for_a_neural_extractor(tiny_demo, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    register_extractor("tiny_cnn_app", model)
    try:
        folder = tiny_demo["datasets"] / "demo" / "Attacks"
        path = extract_dataset("tiny_cnn_app", folder, tmp_path, name="q", workers=0, batch_size=3, progress=False)
        stored = load_features(path)
        ext = extractor_for_store(store_info(path))
        assert ext.name == "tiny_cnn_app"
        for image_id, row in zip(stored.ids, stored.features, strict=True):
            query = next(folder.glob(image_id.split("/", 1)[1] + ".*"))
            np.testing.assert_allclose(embed_file(ext, query, MAX_QUERY_PIXELS)[0], row, rtol=1e-5, atol=1e-6)
    finally:
        unregister_extractor("tiny_cnn_app")


def test_store_of_an_unknown_extractor_is_refused(tmp_path):
    path = write_features(tmp_path / "x" / "mystery.h5", ["x/a"], np.zeros((1, 4), np.float32), method="mystery")
    with pytest.raises(ExtractorMismatch, match="mystery"):
        extractor_for_store(store_info(path))


def test_index_saved_next_to_the_features_loaded_then_rebuilt_when_a_store_changes(tiny_demo, tmp_path):
    features = tmp_path / "Features"
    shutil.copytree(tiny_demo["features"], features)
    kw = dict(features_root=features, datasets_root=tiny_demo["datasets"])
    first = Collection(tiny_demo["method"], tiny_demo["database"], index="BFlat", **kw)
    assert first.rebuilt and first.index_path.is_file() and first.index_path.parent == features / "demo_original"
    again = Collection(tiny_demo["method"], tiny_demo["database"], index="BFlat", **kw)
    assert not again.rebuilt
    query = attack_file(tiny_demo, "chelsea_text_length_20")
    assert [h.id for h in again.search(query, 3)] == [h.id for h in first.search(query, 3)]
    other = Collection(tiny_demo["method"], tiny_demo["database"], index="BIVF2", **kw)  # another index: its own file
    assert other.rebuilt and other.index_path != first.index_path
    # the store changes (re-extracted: new file): the index is rebuilt
    store = features / "demo_distractors" / f"{tiny_demo['method']}.h5"
    data = load_features(store)
    store.unlink()
    write_features(store, list(data.ids[:-1]), data.features[:-1], method=data.method, binary=True, dim=data.dim,
                   params=data.attrs["params"])
    changed = Collection(tiny_demo["method"], tiny_demo["database"], index="BFlat", **kw)
    assert changed.rebuilt and changed.index.ntotal == first.index.ntotal - 1


def test_search_hits_and_copy_marks(tiny_demo):
    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"])
    hits = collection.search(attack_file(tiny_demo, "coffee_jpg_compression_50"), k=50, threshold=8)
    assert len(hits) == min(50, len(collection.ids)) and [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0].id == "demo_original/coffee" and hits[0].is_copy and hits[0].path.is_file()
    assert all(a.distance <= b.distance for a, b in zip(hits, hits[1:], strict=False))
    assert [h.is_copy for h in hits] == [h.distance <= 8 for h in hits]


def test_verified_search_finds_a_pasted_copy_and_draws_its_region(tiny_demo, tmp_path):
    from data_retrieval.attacks import apply_partial_attack
    from data_retrieval.partial_attacks import box_iou
    from helpers.images import load_image
    from imsim.app.ui import gallery_items, hits_table

    collection = Collection(tiny_demo["method"], tiny_demo["database"], features_root=tiny_demo["features"],
                            datasets_root=tiny_demo["datasets"], verify=True)
    original = load_image(collection.path_of("demo_original/chelsea"))
    copy = apply_partial_attack(original, "paste_photo_35", seed=3)  # pHash alone does not find it
    hits = collection.search(copy.image, k=len(collection.ids))
    assert hits[0].id == "demo_original/chelsea" and hits[0].inliers >= collection.verifier.min_inliers
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert box_iou(hits[0].query_box, copy.query_box) > 0.5 and box_iou(hits[0].match_box, copy.source_box) > 0.5
    assert all(h.match_box is None for h in hits[1:])
    items = gallery_items(hits[:2], binary=True, temp_dir=tmp_path)
    assert items[0][0].startswith(str(tmp_path)) and "inliers" in items[0][1]
    assert items[1][0] == str(hits[1].path)
    assert "inliers" in hits_table(hits[:2], binary=True)


def test_threshold_from_results(tmp_path):
    runs = [
        {"index": "BFlat", "metric": "hamming", "exact": True, "value": None, "threshold_at_fpr_1pct": 6.0},
        {"index": "BIVF8", "metric": "hamming", "exact": False, "value": 4, "threshold_at_fpr_1pct": 5.0},
        {"index": "Flat", "metric": "cosine", "exact": True, "value": None, "threshold_at_fpr_1pct": None},
    ]
    save_json({"runs": runs}, tmp_path / "exp" / "results.json")
    assert threshold_from_results("exp", "hamming", "BIVF8", tmp_path) == 5.0
    assert threshold_from_results("exp", "hamming", "BHNSW32", tmp_path) == 6.0  # else the exact run
    assert threshold_from_results("exp", "cosine", None, tmp_path) is None
    with pytest.raises(ValueError, match="no run with metric 'L2'"):
        threshold_from_results("exp", "L2", None, tmp_path)
    with pytest.raises(FileNotFoundError, match="search_experiment.py nope"):
        threshold_from_results("nope", "L2", None, tmp_path)


def test_app_binds_to_loopback_unless_asked():
    import search_app

    assert search_app.parse_args([]).host == "127.0.0.1"
    assert search_app.parse_args(["--host", "0.0.0.0", "--port", "8000"]).port == 8000
    assert os.path.basename(search_app.__file__) == "search_app.py"


@pytest.mark.slow
def test_query_features_equal_the_store_for_efficientnet_lite0(tiny_demo, tmp_path):
    """The demo collection's pretrained features: the app's query embedding is the store's, bit for bit."""
    from extractor import list_extractors

    if "efficientnet_lite0" not in list_extractors():
        pytest.skip("efficientnet_lite0 is not registered")
    folder = tiny_demo["datasets"] / "demo" / "Original"
    # one image a batch, as a query is embedded: fp32 kernels may round differently at other batch sizes
    path = extract_dataset("efficientnet_lite0", folder, tmp_path, name="o", workers=0, batch_size=1, progress=False)
    stored = load_features(path)
    ext = extractor_for_store(store_info(path))
    collection_like = EmbeddingBatcher(ext)
    for image_id, row in zip(stored.ids, stored.features, strict=True):
        query = next(folder.glob(image_id.split("/", 1)[1] + ".*"))
        np.testing.assert_array_equal(embed_file(ext, query, MAX_QUERY_PIXELS)[0], row)
        np.testing.assert_array_equal(collection_like.embed(prepare_file(ext, query, MAX_QUERY_PIXELS))[0], row)
    collection_like.close()
