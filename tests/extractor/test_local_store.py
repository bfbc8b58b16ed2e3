"""Local (patch token) features: variable counts per image, streamed to disk, read back per image, resumable."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from extractor import create_extractor
from extractor.local_store import LocalFeatures, LocalWriter, extract_local, tokens_path
from extractor.store import StoreError
from helpers.images import load_image
from tests.conftest import synthetic_image


def test_writer_round_trip_streaming_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"d/{i}", rng.standard_normal((int(rng.integers(0, 9)), 4)).astype(np.float32)) for i in range(20)]
    path = tmp_path / "d" / "m.tokens.h5"
    with LocalWriter(path, method="m", dim=4, n_total=20) as w:
        w.append([i for i, _ in rows[:7]], [t for _, t in rows[:7]], skipped=[("bad.jpg", "cannot decode")])
        # a kill after data was written but before the batch was committed: resume drops it
        w.file["index"].resize((9,))
        w.file["tokens"].resize((w.file["tokens"].shape[0] + 5, 4))
    with LocalWriter(path, method="m", dim=4, n_total=20) as w:
        assert (w.n_seen, w.n_images) == (8, 7)
        w.append([i for i, _ in rows[7:]], [t for _, t in rows[7:]])
        assert w.skipped() == [("bad.jpg", "cannot decode")]
        out = w.finish()
    with LocalFeatures(out) as lf:
        assert len(lf) == 20 and list(lf.ids) == [i for i, _ in rows]
        np.testing.assert_array_equal(lf.counts(), [len(t) for _, t in rows])
        for k, (image_id, tokens) in enumerate(rows):
            np.testing.assert_array_equal(lf.tokens(image_id), tokens)
            np.testing.assert_array_equal(lf.tokens(k), tokens)
        streamed = list(lf.iter_tokens(block_tokens=10))  # small blocks: never the whole file at once
        assert [i for i, _ in streamed] == list(lf.ids)
        for (_, got), (_, want) in zip(streamed, rows, strict=True):
            np.testing.assert_array_equal(got, want)
    with h5py.File(out) as f:
        assert f["offsets"][0] == 0 and f["offsets"][-1] == f["tokens"].shape[0] and f.attrs["complete"]
    with pytest.raises(StoreError):
        with LocalWriter(tmp_path / "x.tokens.h5", method="m", dim=4) as w:
            pass
        LocalWriter(tmp_path / "x.tokens.h5", method="m", dim=8)  # another dim on the same partial file


def test_extract_local_from_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    sizes = [(96, 72), (120, 40), (72, 96), (64, 64), (200, 50)]
    for i, size in enumerate(sizes):
        synthetic_image(i, size).save(folder / f"{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    ext = create_extractor("timm:test_vit", weights=None, pooling="local", transforms="RESIZE_LARGE",
                           resolution=64, precision="fp32")
    path = extract_local(ext, folder, tmp_path / "F", batch_size=2, workers=0, progress=False)
    assert path == tokens_path("imgs", ext.name, tmp_path / "F")
    with LocalFeatures(path) as lf:
        assert len(lf) == 5 and len(set(lf.counts())) > 1  # variable counts
        for i in range(5):
            want = ext.local_features([load_image(folder / f"{i}.png")])[0]
            np.testing.assert_allclose(lf.tokens(f"imgs/{i}"), want, rtol=1e-4, atol=1e-5)
        assert lf.attrs["n_seen"] == 6
    half = extract_local(ext, folder, tmp_path / "H", batch_size=4, workers=0, dtype="float16", progress=False)
    with LocalFeatures(half) as lf:
        assert lf.tokens(0).dtype == np.float16
    with pytest.raises(ValueError, match="pooling='local'"):
        extract_local(create_extractor("timm:test_vit", weights=None), folder, tmp_path / "G")
