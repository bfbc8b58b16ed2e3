# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Region search aggregates per image independently of order; verification finds the pasted region."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from data_retrieval.attacks import apply_partial_attack
from data_retrieval.partial_attacks import PARTIAL_ATTACK_IDS, box_iou
from fast_search import metrics as M
from fast_search.regions import RegionIndex, aggregate_max, whole_rows
from fast_search.verify import KeypointVerifier, chamfer, rerank, squash, verified_distance


def _regions(rng, n_images: int, per_image: int, dim: int = 8):
    feats = rng.standard_normal((n_images * per_image, dim)).astype(np.float32)
    return feats, np.repeat(np.arange(n_images), per_image)


def test_aggregate_keeps_each_images_best_region_pair():
    D = np.array([[0.1, 0.2, 0.5], [0.05, 0.3, 0.4]])
    I = np.array([[0, 1, 2], [3, 0, -1]])
    db_owner = np.array([0, 0, 1, 1])  # regions 0, 1 -> image 0; 2, 3 -> image 1
    out_D, out_I = aggregate_max(D, I, np.array([0, 0]), db_owner, 1, 3)
    assert out_I.tolist() == [[1, 0, -1]] and np.allclose(out_D[0, :2], [0.05, 0.1])
    assert np.isinf(out_D[0, 2])


def test_region_search_is_exact_and_order_independent():
    rng = np.random.default_rng(0)
    xb, ob = _regions(rng, 30, 5)
    xq, oq = _regions(rng, 12, 5)
    D, I = RegionIndex("Flat", "cosine", pairs="all").fit(xb, ob).search(xq, oq, 12, 6)
    # brute force: smallest cosine distance over every pair of regions
    sims = (xq / np.linalg.norm(xq, axis=1, keepdims=True)) @ (xb / np.linalg.norm(xb, axis=1, keepdims=True)).T
    best = np.full((12, 30), -np.inf)
    np.maximum.at(best, (oq[:, None], ob[None, :]), sims)
    expected = np.argsort(-best, axis=1, kind="stable")[:, :6]
    assert np.array_equal(I, expected)
    # shuffle database regions, query regions and database images: the same results per image
    perm_b, perm_q = rng.permutation(len(xb)), rng.permutation(len(xq))
    relabel = rng.permutation(30)
    D2, I2 = RegionIndex("Flat", "cosine", pairs="all").fit(xb[perm_b], relabel[ob[perm_b]]).search(
        xq[perm_q], oq[perm_q], 12, 6)
    assert np.allclose(D2, D, atol=1e-6)
    assert np.array_equal(np.argsort(relabel)[I2], I)
    targets = rng.integers(-1, 30, 12)
    for k in (1, 5):
        assert M.recall_at_k(D, I, targets, k) == M.recall_at_k(D2, np.argsort(relabel)[I2], targets, k)


def test_whole_pairs_compare_a_whole_image_with_every_region_only():
    rng = np.random.default_rng(3)
    xb, ob = _regions(rng, 25, 4)
    xq, oq = _regions(rng, 10, 4)
    wb, wq = np.arange(len(xb)) % 4 == 0, np.arange(len(xq)) % 4 == 0  # the first row of each image is whole
    D, I = RegionIndex("Flat", "cosine").fit(xb, ob, wb).search(xq, oq, 10, 5, wq)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    sims = unit(xq) @ unit(xb).T
    sims[~wq[:, None] & ~wb[None, :]] = -np.inf  # region-region pairs are not compared
    best = np.full((10, 25), -np.inf)
    np.maximum.at(best, (oq[:, None], ob[None, :]), sims)
    assert np.array_equal(I, np.argsort(-best, axis=1, kind="stable")[:, :5])
    perm = rng.permutation(len(xq))
    D2, I2 = RegionIndex("Flat", "cosine").fit(xb, ob, wb).search(xq[perm], oq[perm], 10, 5, wq[perm])
    assert np.array_equal(I2, I) and np.allclose(D2, D)
    with pytest.raises(ValueError, match="whole"):
        RegionIndex("Flat", "cosine").fit(xb, ob)


def test_region_search_with_an_ivf_index_and_binary_codes():
    rng = np.random.default_rng(1)
    xb, ob = _regions(rng, 200, 4, 16)
    D, I = RegionIndex("IVF8,Flat", "cosine", pairs="all").fit(xb, ob).search(xb[:8], ob[:8], 2, 3)
    assert I[:, 0].tolist() == [0, 1]
    codes = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    D, I = RegionIndex("BFlat", "hamming", binary=True, pairs="all").fit(codes, np.repeat(np.arange(10), 4)).search(
        codes[4:8], np.zeros(4, np.int64), 1, 2)
    assert I[0, 0] == 1 and D[0, 0] == 0


def test_whole_rows():
    assert whole_rows(np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], np.float32)).tolist() == [True, False]


def test_verified_distance_orders_inliers_then_first_stage():
    d = verified_distance(np.array([0, 5, 30, 40, 40]), np.array([0.1, 0.0, 0.9, 0.5, 0.2]), 12)
    assert list(np.argsort(d)) == [4, 3, 2, 1, 0]
    assert (squash(np.array([-5.0, 0.0, 3.0, np.inf])) < 1).all()


def test_rerank_sorts_by_the_new_distance_and_keeps_missing_last():
    D = np.array([[0.1, 0.2, 0.3]])
    I = np.array([[4, 7, -1]])
    D2, I2 = rerank(D, I, lambda q, r, d: -r)
    assert I2.tolist() == [[7, 4, -1]] and D2[0, 2] == np.inf


def test_chamfer_is_high_for_a_subset():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 16))
    assert chamfer(a[:5], a) == pytest.approx(1.0)
    assert chamfer(a, rng.standard_normal((20, 16))) < 0.8


def _photo(seed: int = 5) -> Image.Image:
    """A textured 300 x 240 picture (blurred colour blocks) with plenty of ORB keypoints."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8), "RGB").resize((300, 240), Image.NEAREST)
    return img.filter(ImageFilter.GaussianBlur(1))


@pytest.mark.slow
@pytest.mark.parametrize("attack_id", PARTIAL_ATTACK_IDS)
def test_verified_box_overlaps_the_true_paste(attack_id):
    original = _photo()
    verifier = KeypointVerifier(min_inliers=8)
    db = verifier.describe(original)
    hits = 0
    for seed in range(3):
        copy = apply_partial_attack(original, attack_id, seed)
        result = verifier.verify(verifier.describe_query(copy.image), db)
        if result.query_box is not None and box_iou(result.query_box, copy.query_box) > 0.5 \
                and box_iou(result.db_box, copy.source_box) > 0.5:
            hits += 1
    assert hits == 3, f"{attack_id}: the verified region matched the true one in {hits} of 3 cases"


def test_unrelated_pictures_do_not_verify():
    verifier = KeypointVerifier()
    a, b = _photo(1), _photo(2)
    result = verifier.verify(verifier.describe_query(a), verifier.describe(b))
    assert result.inliers < verifier.min_inliers and result.query_box is None
