"""extract_dataset: store round trip, bad inputs, refusal to mix, shards, kill-and-resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision

from extractor import (
    FeatureWriter,
    NeuralExtractor,
    PreprocessCfg,
    StoreError,
    create_extractor,
    extract_dataset,
    load_features,
    shard_bounds,
    store_path,
)
from extractor.pipeline import RunCfg, errors_path, feed, open_writer, plan_extraction
from helpers.images import BadImageError, load_image
from helpers.paths import REPO_ROOT
from tests.conftest import synthetic_image, write_bad_images

SMALL = PreprocessCfg(resize_size=72, crop_size=64)


def small_resnet(seed: int = 0) -> NeuralExtractor:
    """A random-init resnet18 on 64 px inputs: same weights in every process for the same seed."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    return NeuralExtractor("r18", model, SMALL, precision="fp32", dim=512)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    """conftest's bad images, written once for this module (the bomb PNG is slow to write)."""
    folder = tmp_path_factory.mktemp("badimages") / "bad"
    return folder, write_bad_images(folder)


def _folder(tmp_path: Path, n: int, size=(48, 36)) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        synthetic_image(i, size).save(folder / f"{i}.jpg", quality=90)
    return folder


def test_round_trip_ids_attributes_and_values(image_folder, tmp_path):
    ext = create_extractor("dhash")
    path = extract_dataset(ext, image_folder, features_root=tmp_path / "F", batch_size=5, workers=2, progress=False)
    assert path == store_path("images", "dhash", tmp_path / "F")
    feats = load_features(path)
    assert list(feats.ids) == [f"images/{i}" for i in range(12)]  # natural order, dataset-qualified
    assert feats.features.dtype == np.uint8 and feats.features.shape == (12, 8) and feats.binary and feats.dim == 64
    attrs = feats.attrs
    assert attrs["method"] == "dhash" and attrs["complete"] and attrs["dataset"] == "images"
    assert attrs["folder"] == str(image_folder.resolve()) and attrs["params"]["hash_size"] == 8
    assert attrs["n_seen"] == 12 and "torch" in attrs["versions"]
    direct = ext(ext.collate([ext.transform(ext.decode(image_folder / f"{i}.jpg")) for i in range(12)]))
    np.testing.assert_array_equal(feats.features, direct)
    assert errors_path(path).read_text() == "path\treason\n"


def test_exact_hash_through_pipeline_equals_imagehash(image_folder, tmp_path):
    import imagehash
    from PIL import Image

    path = extract_dataset(create_extractor("phash", exact=True), image_folder, features_root=tmp_path, workers=0,
                           progress=False)
    want = np.stack([imagehash.phash(Image.open(image_folder / f"{i}.jpg")).hash.reshape(-1) for i in range(12)])
    np.testing.assert_array_equal(np.unpackbits(load_features(path).features, axis=1), want)


def test_neural_store_is_float32_and_matches_direct_features(image_folder, tmp_path):
    ext = small_resnet()
    path = extract_dataset(ext, image_folder, features_root=tmp_path, batch_size=4, workers=2, progress=False)
    feats = load_features(path)
    assert feats.features.dtype == np.float32 and feats.features.shape == (12, 512) and not feats.binary
    direct = ext.features([load_image(image_folder / f"{i}.jpg") for i in range(12)])
    np.testing.assert_allclose(feats.features, direct, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["dhash", "r18"])
def test_bad_inputs_are_converted_or_skipped_with_reasons(bad_folder, tmp_path, method):
    folder, kinds = bad_folder
    ext = small_resnet() if method == "r18" else create_extractor(method)
    path = extract_dataset(ext, folder, features_root=tmp_path, batch_size=3, workers=2, progress=False)
    feats = load_features(path)
    ok = sorted(f"bad/{Path(n).stem}" for n, kind in kinds.items() if kind == "ok")
    assert sorted(feats.ids) == ok and np.isfinite(feats.features.astype(np.float32)).all()
    with h5py.File(path) as f:
        skipped = dict(f["skipped"].asstr()[:])
    bad = {str(folder / n) for n, kind in kinds.items() if kind == "bad"}
    assert set(skipped) == bad and all(skipped.values())
    assert "decompression bomb" in skipped[str(folder / "bomb.png")]
    assert "empty" in skipped[str(folder / "empty.png")]
    log = errors_path(path).read_text()
    for name in [*bad, "notes.txt", ".hidden.jpg"]:  # decoding failures and listing skips
        assert Path(name).name in log


@pytest.mark.parametrize("method", ["dhash", "r18"])
def test_threads_processes_and_one_process_give_the_same_store(bad_folder, tmp_path, method):
    """CPU extractors are fed by threads: every image once, in order, bad files skipped the same way."""
    folder, _ = bad_folder
    ext = small_resnet() if method == "r18" else create_extractor(method)
    assert ext.threaded and not create_extractor("crop_resistant").threaded

    def run(root, workers, threaded=True):
        ext.threaded = threaded
        return load_features(extract_dataset(ext, folder, features_root=tmp_path / root, batch_size=1,
                                             workers=workers, progress=False))

    one, threads, procs = run("one", 0), run("threads", 3), run("procs", 2, threaded=False)
    for other in (threads, procs):
        np.testing.assert_array_equal(other.ids, one.ids)
        np.testing.assert_array_equal(other.features, one.features)  # fp32 models too: the same batches
    assert threads.attrs["n_seen"] == one.attrs["n_seen"] > 2 * 3  # more batches than 3 threads keep in flight


class _StopAfter:
    """dHash that raises KeyboardInterrupt on its n-th batch, like a Ctrl-C in the middle of a run."""

    def __init__(self, n: int) -> None:
        self.ext, self.n, self.calls = create_extractor("dhash"), n, 0

    def __getattr__(self, name):
        return getattr(self.ext, name)

    def __call__(self, batch):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.ext(batch)


def test_interrupted_run_keeps_the_finished_batches_then_resumes(tmp_path):
    folder = _folder(tmp_path, 20)
    want = load_features(extract_dataset("dhash", folder, features_root=tmp_path / "full", workers=0, progress=False))
    plan = plan_extraction(create_extractor("dhash"), folder, tmp_path / "cut", tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with open_writer(create_extractor("dhash"), plan) as writer:
            feed(_StopAfter(4), writer, plan, RunCfg(batch_size=3, workers=0, progress=False))
    with h5py.File(plan.out.with_suffix(".h5.partial")) as f:
        assert f.attrs["n_seen"] == 9  # three finished batches written on the way out, none lost
    got = load_features(extract_dataset("dhash", folder, features_root=tmp_path / "cut", workers=2, progress=False))
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.features, want.features)


def test_strict_stops_at_the_first_bad_file(bad_folder, tmp_path):
    folder, _ = bad_folder
    with pytest.raises(BadImageError, match="strict mode"):
        extract_dataset("dhash", folder, features_root=tmp_path, batch_size=2, workers=0, strict=True, progress=False)
    assert not store_path("bad", "dhash", tmp_path).exists()


def test_refuses_to_append_to_another_method_or_image_list(image_folder, tmp_path):
    partial = store_path("images", "dhash", tmp_path)
    FeatureWriter(partial, method="dhash", dim=256, binary=True).close()  # a 256-bit dhash was started here
    with pytest.raises(StoreError, match="refusing to append"):
        extract_dataset("dhash", image_folder, features_root=tmp_path, workers=0, progress=False)
    extract_dataset("ahash", image_folder, features_root=tmp_path, workers=0, limit=5, batch_size=2,
                    progress=False)
    assert load_features(tmp_path / "images" / "ahash.h5").ids.shape == (5,)
    # a partial run over another list of images cannot be resumed
    phash = create_extractor("phash")
    plan = plan_extraction(phash, image_folder, tmp_path, limit=3)
    open_writer(phash, plan).close()
    with pytest.raises(StoreError, match=r"n_files: stored 3, now 12"):
        extract_dataset(phash, image_folder, features_root=tmp_path, workers=0, batch_size=2, progress=False)
    # nor one started with other parameters under the same name (e.g. another precision)
    ext = small_resnet()
    FeatureWriter(store_path("images", "r18", tmp_path), method="r18", dim=512, params={"precision": "bf16"}).close()
    with pytest.raises(StoreError, match="params: partial"):
        extract_dataset(ext, image_folder, features_root=tmp_path, workers=0, progress=False)


def test_inconsistent_counters_after_a_crash_restart_the_partial_file(image_folder, tmp_path):
    ext = create_extractor("dhash")
    want = load_features(extract_dataset(ext, image_folder, features_root=tmp_path / "full", workers=0,
                                         progress=False))
    with open_writer(ext, plan_extraction(ext, image_folder, tmp_path)) as w:
        w.append(["images/0"], want.features[:1])
        w._file.attrs["n_rows"] = 2  # as if killed after updating n_rows but not n_seen
    got = load_features(extract_dataset(ext, image_folder, features_root=tmp_path, workers=0, progress=False))
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.features, want.features)


def test_complete_store_is_returned_not_redone(image_folder, tmp_path):
    first = extract_dataset("ahash", image_folder, features_root=tmp_path, workers=0, progress=False)
    mtime = first.stat().st_mtime_ns
    assert extract_dataset("ahash", image_folder, features_root=tmp_path, workers=0, progress=False) == first
    assert first.stat().st_mtime_ns == mtime
    extract_dataset("ahash", image_folder, features_root=tmp_path, workers=0, overwrite=True, progress=False)
    assert first.stat().st_mtime_ns != mtime


@pytest.mark.parametrize("n_shards", [3, 5])
def test_shards_concatenated_equal_one_full_run(image_folder, tmp_path, n_shards):
    ext = create_extractor("dhash")
    full = load_features(extract_dataset(ext, image_folder, features_root=tmp_path / "full", workers=0,
                                         progress=False))
    for k in range(n_shards):
        path = extract_dataset(ext, image_folder, features_root=tmp_path / "sh", shard=(k, n_shards), workers=0,
                               batch_size=2, progress=False)
        assert path.name == f"dhash.shard-{k}-of-{n_shards}.h5"
    joined = load_features("images", "dhash", root=tmp_path / "sh")
    np.testing.assert_array_equal(joined.ids, full.ids)
    np.testing.assert_array_equal(joined.features, full.features)


def test_shard_bounds_cover_everything_once():
    for n in [0, 1, 7, 100]:
        for parts in [1, 3, 8]:
            spans = [shard_bounds(n, (k, parts)) for k in range(parts)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    with pytest.raises(ValueError, match="0 <= k < n"):
        shard_bounds(10, (3, 3))


def test_file_list_input(image_folder, tmp_path):
    files = [image_folder / f"{i}.jpg" for i in (3, 1, 2)]
    path = extract_dataset("ahash", files, features_root=tmp_path, name="picked", workers=0, progress=False)
    assert list(load_features(path).ids) == ["picked/3", "picked/1", "picked/2"]


def test_bad_arguments_are_clear_errors(image_folder, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        extract_dataset("dhash", image_folder, features_root=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="limit"):
        extract_dataset("dhash", image_folder, features_root=tmp_path, limit=-1)
    with pytest.raises(FileNotFoundError, match="neither a registered dataset"):
        extract_dataset("dhash", tmp_path / "nowhere", features_root=tmp_path)
    with pytest.raises(TypeError, match="dataset must be"):
        extract_dataset("dhash", 42, features_root=tmp_path)


_SCRIPT = """
import os, sys, torch, torchvision
sys.path.insert(0, {repo!r})
from tests.extractor.test_pipeline import small_resnet
from tests.kill_hook import kill_after_chunks
from extractor import create_extractor, extract_dataset
kill_after_chunks(int(os.environ.get("KILL_AFTER_CHUNKS") or 0))  # SIGKILL right after the n-th chunk is written
ext = small_resnet() if sys.argv[1] == "r18" else create_extractor(sys.argv[1])
extract_dataset(ext, sys.argv[2], features_root=sys.argv[3], batch_size=int(sys.argv[4]), workers=int(sys.argv[5]),
                progress=False)
"""


def _run(method, folder, root, batch, workers, exit_after=None, popen=False):
    env = {**os.environ, "KILL_AFTER_CHUNKS": str(exit_after or "")}
    args = [sys.executable, "-c", _SCRIPT.format(repo=str(REPO_ROOT)), method, str(folder), str(root), str(batch),
            str(workers)]
    if popen:
        return subprocess.Popen(args, env=env, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    return subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted_run_bitwise(tmp_path):
    folder = _folder(tmp_path, 14)
    rng = random.Random(os.getpid())
    want = load_features(extract_dataset(small_resnet(), folder, features_root=tmp_path / "full", batch_size=3,
                                         workers=0, progress=False))
    root = tmp_path / "killed"
    partial = store_path("imgs", "r18", root).with_suffix(".h5.partial")
    for k in (rng.randint(1, 2), rng.randint(1, 2)):  # killed twice at random chunk counts, then finished
        assert _run("r18", folder, root, 3, 0, exit_after=k).returncode == -signal.SIGKILL
        assert partial.exists() and not store_path("imgs", "r18", root).exists()
    extract_dataset(small_resnet(), folder, features_root=root, batch_size=3, workers=1, progress=False)
    got = load_features("imgs", "r18", root=root)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.features, want.features)  # fp32, bitwise
    assert got.attrs["n_seen"] == 14 and not partial.exists()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    folder = _folder(tmp_path, 200, size=(24, 18))
    ext = create_extractor("dhash")
    want = load_features(extract_dataset(ext, folder, features_root=tmp_path / "full", workers=0, progress=False))
    root = tmp_path / "killed"
    partial = store_path("imgs", "dhash", root).with_suffix(".h5.partial")
    rng = random.Random(os.getpid())
    for _ in range(2):
        proc = _run("dhash", folder, root, 2, 0, popen=True)
        deadline = time.time() + 60
        while not partial.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        final = store_path("imgs", "dhash", root)
        if final.exists():  # the kill landed after the rename (e.g. at interpreter exit): it must be whole
            assert load_features(final).attrs["complete"] and len(load_features(final)) == len(want)
    done = _run("dhash", folder, root, 2, 0)
    assert done.returncode == 0, done.stderr
    got = load_features("imgs", "dhash", root=root)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.features, want.features)


def test_extract_features_script(image_folder, tmp_path, capsys):
    import extract_features

    rc = extract_features.main(["--method", "dhash", "ahash", "--folder", str(image_folder), "--features-root",
                                str(tmp_path), "--workers", "0", "--shard", "1/2"])
    out = capsys.readouterr().out
    assert rc == 0 and "dhash.shard-1-of-2.h5" in out and "ahash.shard-1-of-2.h5" in out
    assert len(load_features(tmp_path / "images" / "dhash.shard-1-of-2.h5")) == 6
    assert extract_features.main(["--method", "nope", "--folder", str(image_folder), "--features-root",
                                  str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        extract_features.main(["--shard", "2/2"])


# ---- issue 12: a store records what produced it ---------------------------------------------


def _dhash(folder, root, **kwargs):
    return extract_dataset("dhash", folder, features_root=root, workers=0, progress=False, **kwargs)


def test_same_folder_name_with_other_pictures_is_refused(tmp_path):
    a, b = tmp_path / "a" / "images", tmp_path / "b" / "images"
    for folder, seed in ((a, 0), (b, 50)):
        folder.mkdir(parents=True)
        for i in range(3):
            synthetic_image(seed + i).save(folder / f"{i}.jpg")
    _dhash(a, tmp_path / "F")
    with pytest.raises(StoreError, match=r"folder: stored '.*/a/images', now '.*/b/images'.*--overwrite"):
        _dhash(b, tmp_path / "F")
    again = load_features(_dhash(b, tmp_path / "F", overwrite=True))
    assert again.attrs["provenance"]["folder"] == str(b.resolve())


@pytest.mark.parametrize("change", ["added", "removed", "edited"])
def test_changed_files_are_noticed(image_folder, tmp_path, change):
    _dhash(image_folder, tmp_path)
    if change == "added":
        synthetic_image(99).save(image_folder / "99.jpg")
    elif change == "removed":
        (image_folder / "3.jpg").unlink()
    else:
        synthetic_image(77).save(image_folder / "3.jpg")
        os.utime(image_folder / "3.jpg", ns=(1, 10**18))
    with pytest.raises(StoreError, match="files_sha1: stored"):
        _dhash(image_folder, tmp_path)
    ids = load_features(_dhash(image_folder, tmp_path, if_changed="redo")).ids
    assert ("images/99" in ids) == (change == "added") and ("images/3" in ids) == (change != "removed")


def test_limit_then_full_run_is_refused(image_folder, tmp_path):
    _dhash(image_folder, tmp_path, limit=5)
    with pytest.raises(StoreError, match=r"limit: stored 5, now null"):
        _dhash(image_folder, tmp_path)


def test_weights_files_with_one_name_are_told_apart_by_hash(image_folder, tmp_path):
    from data_retrieval.datasets import load_dataset
    from extractor.pipeline import make_provenance

    class Fake(type(create_extractor("dhash"))):
        def __init__(self, weights):
            super().__init__()
            self.weights = weights

        @property
        def params(self):
            return {**super().params, "weights": str(self.weights), "precision": "fp32"}

    listing = load_dataset(image_folder)
    run_a, run_b = tmp_path / "runA" / "ckpt.pth", tmp_path / "runB" / "ckpt.pth"
    for path, payload in ((run_a, b"A"), (run_b, b"B")):
        path.parent.mkdir()
        path.write_bytes(payload * 1000)
    prov = [make_provenance(Fake(p), listing, listing.paths, listing.ids, None, None) for p in (run_a, run_b)]
    assert prov[0]["weights_sha256"] != prov[1]["weights_sha256"] and prov[0]["weights_sha256"]
    run_b.write_bytes(b"A" * 1000)
    assert make_provenance(Fake(run_b), listing, listing.paths, listing.ids, None, None)["weights_sha256"] == \
        prov[0]["weights_sha256"]


def test_precision_change_is_named(image_folder, tmp_path):
    ext = small_resnet()
    extract_dataset(ext, image_folder, features_root=tmp_path, workers=0, limit=2, progress=False)
    with pytest.raises(StoreError, match=r"precision: stored 'fp32', now 'bf16'"):
        extract_dataset(ext.to(precision="bf16"), image_folder, features_root=tmp_path, workers=0, limit=2,
                        progress=False)


def test_provenance_attributes_are_recorded(image_folder, tmp_path):
    attrs = load_features(_dhash(image_folder, tmp_path, shard=(0, 2))).attrs
    prov = attrs["provenance"]
    assert set(prov) == {"folder", "dataset", "n_files", "files_sha1", "extractor", "params", "weights_sha256",
                         "precision", "code", "limit", "shard", "max_pixels", "listing_sha1"}
    assert prov["n_files"] == 6 and prov["shard"] == "0/2" and prov["extractor"] == "dhash" and prov["limit"] is None
    assert len(attrs["index_sha1"]) == 40


@pytest.mark.parametrize("error", [ModuleNotFoundError("No module named 'imagehash'"), NameError("name 'x'")])
def test_missing_package_or_bug_stops_the_run_instead_of_skipping_every_image(image_folder, tmp_path, error):
    """Only decoding and image-content errors are per-image skips (issue 12: `except Exception` in the worker)."""
    dhash = create_extractor("dhash")

    class Broken(type(dhash)):
        def transform(self, image):
            raise error

    with pytest.raises(type(error), match=str(error.args[0])[:10]):
        extract_dataset(Broken(), image_folder, features_root=tmp_path, workers=0, progress=False)
    assert not store_path("images", "dhash", tmp_path).exists()


def test_worker_count_is_bounded_by_the_batches():
    from extractor.pipeline import RunCfg

    assert RunCfg(batch_size=64, workers=64).workers_for(5) == 1
    assert RunCfg(batch_size=2, workers=3).workers_for(100) == 3


@pytest.mark.slow
def test_two_extractions_of_one_store_at_once(tmp_path):
    """The second writer is refused with the holder named; the first publishes a whole store."""
    folder = _folder(tmp_path, 200, size=(24, 18))
    root = tmp_path / "F"
    first = _run("dhash", folder, root, 2, 0, popen=True)
    lock = store_path("imgs", "dhash", root).with_name("dhash.h5.lock")
    deadline = time.time() + 60
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    second = _run("dhash", folder, root, 2, 0)
    assert first.wait(timeout=120) == 0
    if second.returncode != 0:  # normally: the first still held the lock
        assert "being written by another feature extraction (pid" in second.stderr
    assert len(load_features("imgs", "dhash", root=root)) == 200


def test_file_name_that_is_not_utf8_does_not_abort_the_dataset(image_folder, tmp_path):
    with open(bytes(image_folder) + b"/caf\xe9.jpg", "wb") as f:
        f.write((image_folder / "0.jpg").read_bytes())
    synthetic_image(5).save(image_folder / "0.png")  # and a stem shared with 0.jpg: both are extracted
    path = _dhash(image_folder, tmp_path)
    ids = load_features(path).ids.tolist()
    assert len(ids) == 13 and "images/0.jpg" in ids and "images/0.png" in ids
    assert "caf\\xe9.jpg\tfile name is not valid UTF-8" in errors_path(path).read_text()


def test_store_finished_by_another_process_meanwhile_is_returned(image_folder, tmp_path, monkeypatch):
    import extractor.pipeline as P

    path = _dhash(image_folder, tmp_path)
    real, calls = P.check_existing, []

    def not_yet_then_real(plan):  # the other process published between our check and our lock
        calls.append(plan)
        return False if len(calls) == 1 else real(plan)

    monkeypatch.setattr(P, "check_existing", not_yet_then_real)
    assert _dhash(image_folder, tmp_path) == path and len(calls) == 2


# ---- issue 21 (item 11): a store records the code that wrote it -------------------------------


def _set_provenance(path, **changes):
    """Rewrite a finished store's provenance as older code would have written it (None drops a key)."""
    import json

    with h5py.File(path, "r+") as f:
        prov = json.loads(f.attrs["provenance"])
        for key, value in changes.items():
            if value is None:
                prov.pop(key, None)
            else:
                prov[key] = value
        f.attrs["provenance"] = json.dumps(prov, sort_keys=True)


def test_code_record_hashes_the_extractors_sources():
    import hashlib

    from extractor.code_digest import ROOT, code_record

    record = code_record(create_extractor("dhash"))
    assert {"extractor/hashes.py", "extractor/base.py", "helpers/jpeg.py"} <= set(record["sources"])
    assert not {"extractor/store.py", "extractor/pipeline.py", "extractor/registry.py"} & set(record["sources"])
    digest = hashlib.sha256()
    for rel in record["sources"]:
        digest.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    assert record["sources_sha256"] == digest.hexdigest() and record["version"]
    neural = code_record(small_resnet())
    assert "extractor/neural.py" in neural["sources"] and "extractor/hashes.py" not in neural["sources"]


@pytest.mark.parametrize("older", ["other sources", "no code record"])
def test_store_written_by_older_extractor_code_is_refused_then_redone(image_folder, tmp_path, older):
    path = _dhash(image_folder, tmp_path)
    code = load_features(path).attrs["provenance"]["code"]
    stale = {**code, "sources_sha256": "0" * 64} if older == "other sources" else None
    _set_provenance(path, code=stale)
    with pytest.raises(StoreError, match=r"code: stored .*--overwrite"):
        _dhash(image_folder, tmp_path)
    redone = load_features(_dhash(image_folder, tmp_path, if_changed="redo"))
    assert redone.attrs["provenance"]["code"] == code and len(redone.ids) == 12


def test_neural_default_precision_is_fp32_on_cpu_and_bf16_is_recorded(image_folder, tmp_path):
    ext = NeuralExtractor("r18", small_resnet().model, SMALL, dim=512)  # precision left to its default
    assert ext.precision == "fp32"  # whatever the CPU: bf16 only when asked
    path = extract_dataset(ext.to(precision="bf16"), image_folder, features_root=tmp_path, workers=0, limit=2,
                           progress=False)
    attrs = load_features(path).attrs
    assert attrs["provenance"]["precision"] == "bf16" and attrs["params"]["precision"] == "bf16"
