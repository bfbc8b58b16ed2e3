"""Extraction on a local Ray (2 CPUs): the store equals the single-process one, bad files, kills, refusals."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import ray
import torch
import torchvision

from extractor import (
    NeuralExtractor,
    PreprocessCfg,
    StoreError,
    extract_dataset,
    load_features,
)
from extractor.pipeline import errors_path
from extractor.store import read_attrs
from imsim.scaleout import RayClusterError, extract_dataset_ray
from imsim.scaleout.ray_extract import KILL_ONCE_ENV
from tests.conftest import synthetic_image

pytestmark = pytest.mark.slow  # one local Ray for the module: ~10 s to start on 2 cores


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, object_store_memory=80 * 1024**2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Good JPEGs, a CMYK JPEG, and broken files of every kind conftest has but the (slow) bomb."""
    folder = tmp_path_factory.mktemp("rayimgs") / "mixed"
    folder.mkdir()
    for i in range(14):
        synthetic_image(i, (48, 36)).save(folder / f"img{i}.jpg", quality=90)
    synthetic_image(99, (48, 36)).convert("CMYK").save(folder / "cmyk.jpg")
    good = (folder / "img0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text_named_as_image.png").write_text("hello, not an image")
    (folder / "notes.txt").write_text("not an image extension")  # skipped at listing time
    return folder


def _same_file(a: Path, b: Path, exact: bool = True) -> None:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert list(fa["index"].asstr()[:]) == list(fb["index"].asstr()[:])
        assert fa["skipped"].asstr()[:].tolist() == fb["skipped"].asstr()[:].tolist()
        if exact:
            np.testing.assert_array_equal(fa["features"][:], fb["features"][:])
        else:
            np.testing.assert_allclose(fa["features"][:], fb["features"][:], rtol=1e-4, atol=1e-5)
    attrs_a, attrs_b = read_attrs(a), read_attrs(b)
    for key in ("created", "versions"):
        attrs_a.pop(key), attrs_b.pop(key)
    assert attrs_a == attrs_b
    assert errors_path(a).read_text() == errors_path(b).read_text()


def test_hash_shards_equal_the_single_process_ones_bitwise(folder, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for k in range(3):
        extract_dataset("dhash", folder, features_root=local, shard=(k, 3), workers=0, progress=False)
    import extract_features  # the command line, on the module's Ray

    rc = extract_features.main(["--method", "dhash", "--folder", str(folder), "--executor", "ray", "--ray-shards", "3",
                                "--batch-size", "4", "--features-root", str(on_ray)])
    assert rc == 0
    paths = sorted((on_ray / "mixed").glob("dhash.shard-*.h5"))
    assert [p.name for p in paths] == [f"dhash.shard-{k}-of-3.h5" for k in range(3)]
    for path in paths:
        _same_file(path, local / "mixed" / path.name)

    assert len(load_features("mixed", "dhash", on_ray)) == 15
    assert sum(len(h5py.File(p)["skipped"]) for p in paths) == 4  # the 4 broken files, with their reasons


    # a rerun skips the complete shards; a shard made from other images is refused, nothing rewritten
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert extract_dataset_ray("dhash", folder, features_root=on_ray, shards=3, progress=False) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    with pytest.raises(StoreError, match="other inputs or settings"):
        extract_dataset_ray("dhash", folder, features_root=on_ray, shards=3, limit=10, progress=False)
    with pytest.raises(StoreError, match="split otherwise"):
        extract_dataset_ray("dhash", folder, features_root=on_ray, shards=2, progress=False)


def test_tar_shards_equal_the_single_process_store(tmp_path):
    import io
    import tarfile

    from data_retrieval.tars import load_tar_dataset

    folder = tmp_path / "tars"
    folder.mkdir()
    for t in range(2):
        with tarfile.open(folder / f"{t:05d}.tar", "w") as tf:
            for k in range(5):
                buf = io.BytesIO()
                synthetic_image(t * 10 + k, (40, 30)).save(buf, "JPEG", quality=90)
                data = buf.getvalue() if (t, k) != (1, 2) else b"not a jpeg at all"  # one bad member
                info = tarfile.TarInfo(f"{t * 10 + k}.jpg")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    listing = load_tar_dataset(folder, progress=False)
    local = extract_dataset("dhash", listing, features_root=tmp_path / "local", workers=0, progress=False)
    (path,) = extract_dataset_ray("dhash", listing, features_root=tmp_path / "ray", shards=1, batch_size=3,
                                  progress=False)
    _same_file(path, local)
    assert len(h5py.File(path)["skipped"]) == 1


def test_model_on_actors_matches_local_and_survives_a_killed_worker(folder, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    ext = NeuralExtractor("r18", model, PreprocessCfg(resize_size=72, crop_size=64), precision="fp32", dim=512)
    local = extract_dataset(ext, folder, features_root=tmp_path / "local", workers=0, progress=False)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))  # the model actor dies on its second batch, once
    (path,) = extract_dataset_ray(ext, folder, features_root=tmp_path / "ray", shards=1, batch_size=4, progress=False)
    assert marker.exists()  # the kill happened, and Ray redid the work
    assert path.name == "r18.h5" and not path.with_name("r18.h5.partial").exists()
    _same_file(path, local, exact=False)


def test_unreachable_cluster_is_a_clear_error_and_writes_nothing(folder, tmp_path):
    with pytest.raises(RayClusterError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        extract_dataset_ray("dhash", folder, features_root=tmp_path / "f", address="127.0.0.1:1", progress=False)
    assert not (tmp_path / "f").exists()
