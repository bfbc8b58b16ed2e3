"""Stores are trusted only after a check: the pixel limit is part of the provenance, shards of two
generations or a single file beside shards are refused, a damaged partial file is not resumed."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from extractor import StoreError, create_extractor, extract_dataset, load_features, store_path
from extractor.pipeline import RunCfg, feed, open_writer, plan_extraction
from extractor.store import store_files
from helpers import images
from tests.conftest import synthetic_image
from tests.extractor.test_pipeline import _StopAfter


def _dhash(folder, root, **kwargs):
    return extract_dataset("dhash", folder, features_root=root, workers=0, progress=False, **kwargs)


@pytest.fixture
def max_pixels():
    """Set the pixel limit for one test and restore it after."""
    old = images.MAX_PIXELS
    yield images.set_max_pixels
    images.set_max_pixels(old)


def test_a_store_made_with_a_lower_pixel_limit_is_not_reused_at_the_default(image_folder, tmp_path, max_pixels):
    synthetic_image(50, (400, 300)).save(image_folder / "50.jpg")
    max_pixels(10_000)  # 400x300 is over it: skipped
    low = load_features(_dhash(image_folder, tmp_path))
    assert "images/50" not in low.ids and low.attrs["provenance"]["max_pixels"] == 10_000
    max_pixels(images.DEFAULT_MAX_PIXELS)
    with pytest.raises(StoreError, match="max_pixels: stored 10000, now 268435456"):
        _dhash(image_folder, tmp_path)
    assert "images/50" in load_features(_dhash(image_folder, tmp_path, if_changed="redo")).ids


def test_a_store_written_before_the_pixel_limit_was_recorded_matches_the_default(image_folder, tmp_path):
    path = _dhash(image_folder, tmp_path)
    with h5py.File(path, "r+") as f:  # as stores written before the key existed
        import json

        prov = json.loads(f.attrs["provenance"])
        del prov["max_pixels"], prov["listing_sha1"]
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    assert _dhash(image_folder, tmp_path) == path


def test_a_single_store_beside_shards_is_refused_naming_both(image_folder, tmp_path):
    for k in range(2):
        _dhash(image_folder, tmp_path, shard=(k, 2))
    synthetic_image(40).save(image_folder / "40.jpg")
    _dhash(image_folder, tmp_path)  # a complete single file made later (or earlier) than the shards
    with pytest.raises(StoreError, match=r"dhash\.h5 and shards .*dhash\.shard-0-of-2\.h5"):
        load_features("images", "dhash", tmp_path)


def test_shards_of_two_generations_are_refused(image_folder, tmp_path):
    _dhash(image_folder, tmp_path, shard=(0, 2))
    synthetic_image(40).save(image_folder / "5b.jpg")  # a file added between the two shards
    _dhash(image_folder, tmp_path, shard=(1, 2))
    with pytest.raises(StoreError, match="different contents of the folder.*shard-1-of-2.*--overwrite"):
        store_files("images", "dhash", tmp_path)
    with pytest.raises(StoreError, match="different contents"):
        load_features("images", "dhash", tmp_path)
    _dhash(image_folder, tmp_path, shard=(0, 2), overwrite=True)
    ids = load_features("images", "dhash", tmp_path).ids
    assert len(ids) == 13 and len(set(ids)) == 13


def test_duplicate_ids_across_shards_are_refused(image_folder, tmp_path):
    for k in range(2):
        _dhash(image_folder, tmp_path, shard=(k, 2))
    first = load_features(store_path("images", "dhash", tmp_path, (0, 2)))
    with h5py.File(store_path("images", "dhash", tmp_path, (1, 2)), "r+") as f:  # older shards: no listing_sha1
        import json

        prov = json.loads(f.attrs["provenance"])
        del prov["listing_sha1"]
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    path = store_path("images", "dhash", tmp_path, (0, 2))
    with h5py.File(path, "r+") as f:
        prov = json.loads(f.attrs["provenance"])
        del prov["listing_sha1"]
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    # shard 1 rewritten holding one of shard 0's ids
    from extractor.store import write_features

    other = load_features(store_path("images", "dhash", tmp_path, (1, 2)))
    store_path("images", "dhash", tmp_path, (1, 2)).unlink()
    write_features(store_path("images", "dhash", tmp_path, (1, 2)), [first.ids[0], *other.ids[1:]],
                   other.features, method="dhash", binary=True, dim=other.dim)
    with pytest.raises(StoreError, match="same id twice"):
        load_features("images", "dhash", tmp_path)


def test_a_damaged_partial_is_not_resumed(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        synthetic_image(i, (48, 36)).save(folder / f"{i}.jpg", quality=90)
    want = load_features(_dhash(folder, tmp_path / "full"))
    plan = plan_extraction(create_extractor("dhash"), folder, tmp_path / "cut", tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with open_writer(create_extractor("dhash"), plan, chunk_rows=8) as writer:
            feed(_StopAfter(4), writer, plan, RunCfg(batch_size=8, workers=0, progress=False))
    partial = plan.out.with_name(plan.out.name + ".partial")
    with h5py.File(partial, "r") as f:
        assert f.attrs["n_rows"] == 24
        info = f["features"].id.get_chunk_info(1)
    data = bytearray(partial.read_bytes())
    data[info.byte_offset + 3] ^= 0x10  # one bit of the second features chunk
    partial.write_bytes(bytes(data))
    capsys.readouterr()
    got = load_features(_dhash(folder, tmp_path / "cut"))
    assert "damaged" in capsys.readouterr().err
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.features, want.features)


# ---- local token stores: the same provenance, lock and checksums as feature stores ----------------------
def _vit(precision="fp32"):
    pytest.importorskip("timm")
    return create_extractor("timm:test_vit", weights=None, pooling="local", transforms="RESIZE_LARGE",
                            resolution=64, precision=precision)


def _tokens(folder, root, ext=None, **kwargs):
    from extractor.local_store import extract_local

    return extract_local(ext or _vit(), folder, root, batch_size=4, workers=0, progress=False, **kwargs)


def test_a_token_store_made_from_other_files_or_settings_is_refused(image_folder, tmp_path):
    from extractor.local_store import LocalFeatures

    path = _tokens(image_folder, tmp_path)
    assert _tokens(image_folder, tmp_path) == path  # same inputs: returned as is
    with pytest.raises(StoreError, match="dtype: stored 'float32', now 'float16'"):
        _tokens(image_folder, tmp_path, dtype="float16")
    with pytest.raises(StoreError, match="precision"):
        _tokens(image_folder, tmp_path, ext=_vit("bf16"))
    synthetic_image(40).save(image_folder / "40.jpg")
    with pytest.raises(StoreError, match="files_sha1: stored .*--overwrite"):
        _tokens(image_folder, tmp_path)
    with LocalFeatures(_tokens(image_folder, tmp_path, overwrite=True)) as lf:
        assert len(lf) == 13


def test_two_writers_of_one_token_store_are_refused(tmp_path):
    from extractor.local_store import LocalWriter

    path = tmp_path / "d" / "m.tokens.h5"
    with LocalWriter(path, method="m", dim=4, n_total=2) as first:
        with pytest.raises(StoreError, match="being written by another token extraction"):
            LocalWriter(path, method="m", dim=4, n_total=2)
        first.append(["d/a"], [np.ones((3, 4), np.float32)])
        first.finish()
    assert not path.with_name(path.name + ".lock").exists()


@pytest.mark.parametrize("where", ["tokens", "index"])
def test_a_damaged_token_store_names_the_file(tmp_path, where):
    from extractor.local_store import LocalFeatures, LocalWriter

    path = tmp_path / "d" / "m.tokens.h5"
    rng = np.random.default_rng(0)
    with LocalWriter(path, method="m", dim=4, n_total=3, chunk_tokens=4) as w:
        w.append(["d/alpha", "d/beta", "d/gamma"], [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(3)])
        w.finish()
    with h5py.File(path) as f:
        offset = f["tokens"].id.get_chunk_info(1).byte_offset if where == "tokens" else None
    data = bytearray(path.read_bytes())
    offset = offset if offset is not None else data.index(b"d/beta") + 2
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"{path}.* damaged"):
        with LocalFeatures(path) as lf:
            [lf.tokens(i) for i in range(len(lf))]


# ---- listing: links, loops, FIFOs and devices are skipped with a reason, never abort or vanish ------------
def test_odd_entries_are_skipped_with_their_reason(image_folder, tmp_path):
    import os

    from extractor.pipeline import errors_path

    (image_folder / "loop_a.jpg").symlink_to(image_folder / "loop_b.jpg")
    (image_folder / "loop_b.jpg").symlink_to(image_folder / "loop_a.jpg")
    (image_folder / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (image_folder / "device.jpg").symlink_to("/dev/zero")
    os.mkfifo(image_folder / "pipe.jpg")
    (image_folder / "linked_folder").symlink_to(tmp_path)
    (image_folder / "good_link.jpg").symlink_to(image_folder / "0.jpg")
    path = _dhash(image_folder, tmp_path / "F")
    rows = dict(line.split("\t") for line in errors_path(path).read_text().splitlines()[1:])
    reasons = {Path(p).name: r for p, r in rows.items()}
    assert reasons["loop_a.jpg"] == reasons["loop_b.jpg"] == "symlink loop"
    assert reasons["broken.jpg"].startswith("broken symlink")
    assert reasons["device.jpg"] == "symlink to a character device"
    assert reasons["pipe.jpg"] == "a FIFO (named pipe)"
    assert reasons["linked_folder"] == "symlink to a folder (not followed)"
    ids = load_features(path).ids
    assert len(ids) == 13 and "images/good_link" in ids


def test_a_full_disk_while_appending_names_the_partial_file(tmp_path, monkeypatch):
    import errno

    from extractor.store import FeatureWriter

    out = tmp_path / "d" / "feat.h5"
    with FeatureWriter(out, method="feat", dim=4, n_total=4) as w:
        w.append(["d/a"], np.ones((1, 4), np.float32))

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "Can't write data (file write failed: No space left on device)")

        monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
        with pytest.raises(StoreError, match=r"feat\.h5\.partial: cannot write .*No space left"):
            w.append(["d/b"], np.ones((1, 4), np.float32))
        monkeypatch.undo()
        assert w.n_seen == 1  # the first chunk stays: a rerun resumes after it
