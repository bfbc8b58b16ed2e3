"""The HDF5 feature store on its own: round trip, shards, streaming, refusals, partial files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from extractor.store import (
    FeatureWriter,
    StoreError,
    iter_chunks,
    load_features,
    read_index,
    store_files,
    store_info,
    store_path,
    write_features,
)


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"ds/{i}" for i in range(start, start + n)]


def test_round_trip_float_and_ilias_layout(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    path = write_features(store_path("ds", "m", tmp_path), _ids(5), x, method="m", dataset="ds")
    f = load_features("ds", "m", tmp_path)
    assert f.ids.tolist() == _ids(5) and f.dim == 3 and not f.binary
    np.testing.assert_array_equal(f.features, x)
    with h5py.File(path) as h:  # ILIAS's names, readable without this library
        assert set(h) >= {"features", "index"} and h["index"].asstr()[0] == "ds/0"
    assert f.attrs["complete"] and f.attrs["method"] == "m" and "numpy" in f.attrs["versions"]


def test_binary_features_are_packed_bits(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (4, 64)).astype(np.uint8)
    write_features(store_path("ds", "h", tmp_path), _ids(4), np.packbits(bits, axis=1), method="h", binary=True)
    f = load_features("ds", "h", tmp_path)
    assert f.binary and f.dim == 64 and f.features.shape == (4, 8)
    np.testing.assert_array_equal(np.unpackbits(f.features, axis=1), bits)


def test_shards_read_as_one_store_and_missing_shard_is_named(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    for k in range(3):
        write_features(store_path("ds", "m", tmp_path, (k, 3)), _ids(2, 2 * k), x[2 * k : 2 * k + 2], method="m")
    f = load_features("ds", "m", tmp_path)
    assert f.ids.tolist() == _ids(6)
    np.testing.assert_array_equal(f.features, x)
    assert store_info("ds", "m", tmp_path)["n"] == 6
    store_path("ds", "m", tmp_path, (1, 3)).unlink()
    with pytest.raises(StoreError, match=r"\[1\] of 3"):
        store_files("ds", "m", tmp_path)


def test_iter_chunks_equals_load(tmp_path):
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    write_features(store_path("ds", "m", tmp_path), _ids(10), x, method="m")
    blocks = list(iter_chunks("ds", "m", tmp_path, chunk_size=3))
    assert [len(ids) for ids, _ in blocks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), x)


def test_partial_file_is_never_read_as_complete_and_resumes(tmp_path):
    path = store_path("ds", "m", tmp_path)
    w = FeatureWriter(path, method="m", dim=2, n_total=4)
    w.append(_ids(2), np.ones((2, 2)), skipped=[("bad.jpg", "truncated")])
    w.close()
    with pytest.raises(StoreError, match="unfinished"):
        load_features("ds", "m", tmp_path)
    w = FeatureWriter(path, method="m", dim=2)
    assert w.n_seen == 3 and w.n_rows == 2 and w.skipped() == [("bad.jpg", "truncated")]
    w.append(_ids(1, 2), np.zeros((1, 2)))
    w.finish()
    assert load_features("ds", "m", tmp_path).ids.tolist() == _ids(3)


def test_refuses_to_mix_method_dimension_or_kind(tmp_path):
    path = store_path("ds", "m", tmp_path)
    FeatureWriter(path, method="m", dim=2).close()
    for kwargs in ({"method": "other", "dim": 2}, {"method": "m", "dim": 3}, {"method": "m", "dim": 16, "binary": True}):
        with pytest.raises(StoreError, match="refusing to append"):
            FeatureWriter(path, **kwargs)
    w = FeatureWriter(path, method="m", dim=2)
    with pytest.raises(StoreError, match="do not fit"):
        w.append(_ids(1), np.ones((1, 5)))
    w.close()


def test_complete_file_is_not_reopened_for_writing(tmp_path):
    path = write_features(store_path("ds", "m", tmp_path), _ids(1), np.ones((1, 2), np.float32), method="m")
    with pytest.raises(StoreError, match="already complete"):
        FeatureWriter(path, method="m", dim=2)
    with pytest.raises(ValueError, match="must not contain"):
        store_path("a/b", "m", tmp_path)


# ---- issue 12: locks, checksums, damaged files ------------------------------------------------


def test_second_writer_of_a_store_is_refused_naming_the_holder(tmp_path):
    path = store_path("ds", "m", tmp_path)
    with FeatureWriter(path, method="m", dim=2) as first:
        with pytest.raises(StoreError, match=r"being written by another feature extraction \(pid \d+"):
            FeatureWriter(path, method="m", dim=2)
        first.append(_ids(2), np.zeros((2, 2), np.float32))
        first.finish()
    assert not path.with_name("m.h5.lock").exists() and len(load_features(path)) == 2


def test_closed_writer_cannot_publish(tmp_path):
    w = FeatureWriter(store_path("ds", "m", tmp_path), method="m", dim=2)
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.finish()
    assert not store_path("ds", "m", tmp_path).exists()


def _flip_byte_inside_features(path, value=1.5):
    """Flip bytes of the stored feature data without HDF5 (a disk or copy error)."""
    raw = bytearray(path.read_bytes())
    needle = np.float32(value).tobytes()
    at = raw.find(needle)
    assert at > 0
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped_feature", "not_hdf5", "unfinished"])
def test_damaged_store_gives_a_clear_error_naming_the_file(tmp_path, damage):
    x = np.full((64, 4), 1.5, np.float32)
    path = write_features(store_path("ds", "m", tmp_path), _ids(64), x, method="m")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flipped_feature":
        _flip_byte_inside_features(path)
    elif damage == "not_hdf5":
        path.write_text("hello")
    else:
        with h5py.File(path, "r+") as f:
            f.attrs["complete"] = False
    with pytest.raises(StoreError, match=rf"{path}.*(damaged|unfinished)"):
        load_features("ds", "m", tmp_path)
    with pytest.raises(StoreError, match=str(path)):
        list(iter_chunks("ds", "m", tmp_path))


def test_flipped_id_bytes_are_detected(tmp_path):
    path = write_features(store_path("ds", "m", tmp_path), ["ds/alpha", "ds/beta"], np.zeros((2, 2), "f4"),
                          method="m")
    raw = path.read_bytes()
    assert raw.count(b"ds/alpha") == 2  # the variable-length ``index`` and the ``index_lines`` bytes
    lines_at = raw.find(b"ds/alpha\nds/beta\n")
    assert lines_at > 0
    path.write_bytes(raw.replace(b"ds/alpha", b"ds/alphb"))  # both copies
    with pytest.raises(StoreError, match="index_sha1"):
        load_features(path)
    with pytest.raises(StoreError, match="index_sha1"):
        list(iter_chunks(path))
    flipped = bytearray(raw)  # only the copy readers use
    flipped[lines_at + 7] ^= 0x01
    path.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match="index_sha1"):
        load_features(path)


# ---- issue 26: ids read as one verified byte array (store format 2) ----------------------------


def test_ids_are_also_stored_as_lines_that_hash_to_index_sha1(tmp_path):
    import hashlib

    path = write_features(store_path("ds", "m", tmp_path), _ids(5), np.zeros((5, 2), "f4"), method="m")
    with h5py.File(path) as f:
        lines = f["index_lines"][:].tobytes()
        assert lines == b"".join(f"{i}\n".encode() for i in _ids(5))
        assert hashlib.sha1(lines).hexdigest() == f.attrs["index_sha1"] and f.attrs["format"] == 2
    assert read_index(path).tolist() == _ids(5)


@pytest.mark.parametrize("ids", [["ds/a\nb", "ds/c"], ["ds/ü", "ds/日本"], ["ds/x"]])
def test_ids_with_newlines_or_odd_bytes_round_trip(tmp_path, ids):
    x = np.arange(2 * len(ids), dtype="f4").reshape(len(ids), 2)
    path = write_features(store_path("ds", "m", tmp_path), ids, x, method="m")
    assert load_features(path).ids.tolist() == ids
    assert [i for b, _ in iter_chunks(path, chunk_size=1) for i in b] == ids and read_index(path).tolist() == ids


def test_format_1_stores_and_partial_files_still_read_and_resume(tmp_path):
    x = np.arange(12, dtype="f4").reshape(6, 2)
    path = write_features(store_path("ds", "m", tmp_path), _ids(6), x, method="m")
    with h5py.File(path, "r+") as f:  # a store written before ``index_lines`` existed
        del f["index_lines"]
    f = load_features(path)
    assert f.ids.tolist() == _ids(6) and read_index(path).tolist() == _ids(6)
    assert [i for b, _ in iter_chunks(path, chunk_size=4) for i in b] == _ids(6)
    old = store_path("ds", "old", tmp_path)
    w = FeatureWriter(old, method="old", dim=2)
    w.append(_ids(2), x[:2])
    del w._file["index_lines"]
    w.close()
    w = FeatureWriter(old, method="old", dim=2)
    w.append(_ids(2, 2), x[2:4])
    w.finish()
    assert load_features(old).ids.tolist() == _ids(4)


def test_resume_truncates_id_bytes_written_after_the_last_counted_chunk(tmp_path):
    path = store_path("ds", "m", tmp_path)
    w = FeatureWriter(path, method="m", dim=2)
    w.append(_ids(2), np.ones((2, 2)))
    lines = w._file["index_lines"]  # a kill after the data, before the counters: uncounted bytes
    lines.resize(lines.shape[0] + 5, axis=0)
    lines[-5:] = np.frombuffer(b"junk\n", np.uint8)
    w.close()
    w = FeatureWriter(path, method="m", dim=2)
    w.append(_ids(1, 2), np.zeros((1, 2)))
    w.finish()
    assert load_features(path).ids.tolist() == _ids(3)


def test_shards_read_straight_into_one_array(tmp_path):
    x = np.random.default_rng(3).normal(size=(7, 3)).astype("f2")
    for k, (a, b) in enumerate([(0, 3), (3, 3), (3, 7)]):  # an empty shard in the middle
        write_features(store_path("ds", "m", tmp_path, (k, 3)), _ids(b - a, a), x[a:b], method="m")
    f = load_features("ds", "m", tmp_path)
    assert f.ids.tolist() == _ids(7) and f.features.dtype == np.float16
    np.testing.assert_array_equal(f.features, x)


def test_store_without_attributes_is_readable(tmp_path):
    """ILIAS-written files: datasets features and index only; reading does not need provenance."""
    path = tmp_path / "ilias.h5"
    with h5py.File(path, "w") as f:
        f["features"] = np.eye(3, dtype=np.float32)
        f["index"] = np.array(["a", "b", "c"], dtype=object).astype(h5py.string_dtype())
    feats = load_features(path)
    assert feats.ids.tolist() == ["a", "b", "c"] and feats.dim == 3 and not feats.binary
