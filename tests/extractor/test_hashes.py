"""Perceptual hashes: exact mode == imagehash, fast mode close to it, batching, invariances."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from extractor import create_extractor, crop_resistant_distance
from extractor.hashes import ENTRIES, CropResistantHash
from tests.conftest import synthetic_image

REFERENCE = {
    "ahash": imagehash.average_hash,
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": imagehash.whash,
}
SIZES = [(96, 72), (33, 17), (500, 375), (12, 300), (128, 128), (301, 199), (3, 2)]


def _varied_images() -> list[Image.Image]:
    images = [synthetic_image(i, s) if min(s) >= 12 else synthetic_image(i, (40, 30)).resize(s) for i, s in
              enumerate(SIZES)]
    images.append(synthetic_image(50).convert("L").convert("RGB"))  # grey content
    images.append(Image.new("RGB", (64, 48), (90, 90, 90)))  # flat: every value ties
    return images


def _bits(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(packed, axis=1)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("hash_size", [8, 16, 4])
def test_exact_mode_equals_imagehash(name, hash_size):
    images = _varied_images()
    ext = create_extractor(name, hash_size=hash_size, exact=True)
    got = _bits(ext.features(images))
    want = np.stack([REFERENCE[name](img, hash_size=hash_size).hash.reshape(-1) for img in images])
    assert got.shape == want.shape == (len(images), hash_size * hash_size)
    np.testing.assert_array_equal(got, want)


def test_crop_resistant_exact_equals_imagehash_segments():
    images = [synthetic_image(i, (120, 90)) for i in range(3)]
    ext = CropResistantHash(exact=True, segments=4)
    got = _bits(ext.features(images)).reshape(len(images), 4, 64)
    for img, row in zip(images, got, strict=True):
        segments = imagehash.crop_resistant_hash(img, limit_segments=4).segment_hashes
        for k in range(4):  # fewer segments than slots: repeated cyclically
            np.testing.assert_array_equal(row[k], segments[k % len(segments)].hash.reshape(-1))


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_shapes_dtype_names_and_determinism(name):
    ext = create_extractor(name)
    images = [synthetic_image(i, (80, 60)) for i in range(2 if name == "crop_resistant" else 4)]
    out = ext.features(images)
    assert ext.binary and out.dtype == np.uint8 and out.shape == (len(images), ext.dim // 8)
    assert ext.name == name and ext.dim == (256 if name == "crop_resistant" else 64)
    for i, img in enumerate(images):  # batch == one image at a time (and so deterministic)
        np.testing.assert_array_equal(out[i : i + 1], ext.features([img]))


def test_names_carry_non_default_params():
    assert create_extractor("dhash", hash_size=16).name == "dhash_16"
    assert create_extractor("phash", exact=True).name == "phash_exact"
    assert create_extractor("crop_resistant", segments=2).dim == 128
    assert create_extractor("dhash", hash_size=16).dim == 256


@pytest.mark.parametrize("name", ["ahash", "phash", "dhash", "whash"])
def test_resized_copy_is_close_and_other_images_are_far(name):
    ext = create_extractor(name)
    originals = [synthetic_image(i, (320, 240)) for i in range(8)]
    copies = [img.resize((200, 150), Image.Resampling.BILINEAR) for img in originals]
    a, b = _bits(ext.features(originals)), _bits(ext.features(copies))
    same = (a != b).sum(axis=1)
    cross = (a[:, None] != a[None]).sum(axis=2)[~np.eye(len(a), dtype=bool)]
    assert same.max() <= 8, same
    assert cross.mean() >= 20, cross.mean()


def test_crop_resistant_distance_prefers_the_crop():
    ext = CropResistantHash()
    originals = [synthetic_image(i, (200, 150)) for i in range(4)]
    crop = originals[0].crop((20, 10, 190, 140))  # imagehash itself misses harsher crops here
    feats = ext.features([crop, *originals])
    dist = crop_resistant_distance(feats[:1], feats[1:])
    assert dist.argmin() == 0, dist


def test_fast_mode_is_close_to_exact_on_jpegs(tmp_path):
    from helpers.images import load_image

    paths = []
    for i in range(6):
        synthetic_image(i, (500, 375)).save(tmp_path / f"{i}.jpg", quality=90)
        paths.append(tmp_path / f"{i}.jpg")
    for name in ["ahash", "dhash", "phash", "whash"]:
        fast, exact = create_extractor(name), create_extractor(name, exact=True)
        assert fast.draft is not None and exact.draft is None
        f = fast(np.stack([fast.transform(load_image(p, draft=fast.draft)) for p in paths]))
        e = exact(np.stack([exact.transform(load_image(p)) for p in paths]))
        assert (_bits(f) != _bits(e)).sum(axis=1).mean() <= 6, name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hash_size": 1}, "hash_size"), ({"hash_size": 2.5}, "hash_size"), ({"draft_factor": 0}, "draft_factor")],
)
def test_bad_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_extractor("dhash", **kwargs)
    with pytest.raises(ValueError, match="power-of-two"):
        create_extractor("whash", hash_size=12)


def test_lanczos_matrix_resizes_like_pil():
    """The fast hashes' resize: identity at equal sizes, rows summing to 1, PIL's result within a
    few grey levels on a photo-like image (PIL rounds to uint8 between its two passes)."""
    from extractor.hashes import lanczos_matrix

    np.testing.assert_allclose(lanczos_matrix(7, 7), np.eye(7), atol=1e-6)
    np.testing.assert_allclose(lanczos_matrix(141, 32).sum(axis=1), 1, atol=1e-5)
    grey = synthetic_image(3, (188, 141)).convert("L")
    want = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
    got = lanczos_matrix(141, 32) @ np.asarray(grey, dtype=np.float32) @ lanczos_matrix(188, 32).T
    assert np.abs(got - want).mean() < 0.5 and np.abs(got - want).max() < 4
    ext = create_extractor("phash")
    assert ext.params["resize"] and "resize" not in create_extractor("phash", exact=True).params
    np.testing.assert_array_equal(ext.transform(np.asarray(grey)), ext.transform(grey))  # array or PIL


def test_lanczos_over_a_partial_last_pixel_and_the_dct_matrix():
    """`span`: a decoded grid whose last pixel covers part of a block resizes like the whole picture;
    the fast pHash's DCT rows equal scipy's DCT-II (exact mode keeps scipy)."""
    import scipy.fftpack

    from extractor.hashes import dct_matrix, lanczos_matrix

    grey = np.asarray(synthetic_image(4, (500, 375)).convert("L"), dtype=np.float32)
    want = np.asarray(Image.fromarray(grey.astype(np.uint8)).resize((32, 32), Image.Resampling.LANCZOS), np.float32)
    padded = np.pad(grey, ((0, 1), (0, 4)), mode="edge")  # 376 x 504: 8 x 8 blocks, the last ones partial
    blocks = padded.reshape(47, 8, 63, 8).mean(axis=(1, 3))  # what a 1/8-scale decode returns
    spanned = lanczos_matrix(47, 32, 46.875) @ blocks @ lanczos_matrix(63, 32, 62.5).T
    stretched = lanczos_matrix(47, 32) @ blocks @ lanczos_matrix(63, 32).T
    assert np.abs(spanned - want).mean() < 0.5 * np.abs(stretched - want).mean()
    with pytest.raises(ValueError, match="span"):
        lanczos_matrix(63, 32, 61.5)
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32)).astype(np.float64)
    ref = scipy.fftpack.dct(scipy.fftpack.dct(x, axis=1), axis=2)[:, :8, :8]
    np.testing.assert_allclose(dct_matrix(32, 8) @ x @ dct_matrix(32, 8).T, ref, rtol=1e-9, atol=1e-6)
    assert create_extractor("phash").draft == (32, 32) and create_extractor("dhash").draft == (36, 32)
