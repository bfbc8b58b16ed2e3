"""Webdataset-style tars as a dataset: ids, tar ranges, selected ids, damaged and odd members."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_retrieval.datasets import DatasetError
from data_retrieval.tars import list_tars, load_tar_dataset, load_tars, read_selected_ids
from tests.conftest import synthetic_image

ROOT = Path(__file__).resolve().parents[2]


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, (40, 30)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tar_dir(tmp_path: Path) -> Path:
    """Three tars of 3 samples each (jpg + json), keys t*10+k; tars named 00000.tar .. 00002.tar."""
    folder = tmp_path / "tars"
    for t in range(3):
        members = []
        for k in range(3):
            key = f"{t * 10 + k}"
            members += [(f"{key}.jpg", jpeg(t * 10 + k)), (f"{key}.json", b"{}")]
        make_tar(folder / f"{t:05d}.tar", members)
    return folder


def test_ids_are_tar_basename_and_key_in_tar_order(tar_dir: Path) -> None:
    listing = load_tar_dataset(tar_dir, progress=False)
    assert listing.ids == [f"{t:05d}.tar/{t * 10 + k}" for t in range(3) for k in range(3)]
    assert listing.name == "tars" and not listing.skipped and len(listing) == 9
    assert listing.paths[4] == f"{(tar_dir / '00001.tar').resolve()}/11.jpg"
    assert listing.paths.read(4) == jpeg(11)
    part = listing.paths[3:6]
    assert len(part) == 3 and part.read(0) == jpeg(10)


def test_start_and_total_tars(tar_dir: Path) -> None:
    assert [p.name for p in list_tars(tar_dir, 1)] == ["00001.tar", "00002.tar"]
    listing = load_tar_dataset(tar_dir, start_tar=1, total_tars=1, progress=False)
    assert listing.ids == ["00001.tar/10", "00001.tar/11", "00001.tar/12"]
    assert listing.name == "tars_tars1-2"  # a tar range never shares a store with the whole folder
    with pytest.raises(DatasetError, match="holds only 3 tars"):
        list_tars(tar_dir, 3)
    with pytest.raises(DatasetError, match="no .tar files"):
        list_tars(tar_dir.parent)


def test_selected_ids_keys_or_full_ids_and_unknown_reported(tar_dir: Path, tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# mini set\n1\n00002.tar/22,extra column\n\n404\n00001.tar/2\n1\n")
    assert read_selected_ids(ids_file) == ["1", "00002.tar/22", "404", "00001.tar/2"]
    listing = load_tar_dataset(tar_dir, selected_ids=ids_file, progress=False)
    assert listing.ids == ["00000.tar/1", "00002.tar/22"]
    assert listing.unknown_ids == ["404", "00001.tar/2"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="lists no ids"):
        read_selected_ids(tmp_path / "empty.txt")


def test_bad_members_are_skipped_with_reasons(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "bad" / "a.tar", [
        ("1.jpg", jpeg(1)), ("1.txt", b"caption"),
        ("2.txt", b"no image in this sample"),            # missing jpg key
        ("3.jpg", jpeg(3)),
        ("1.jpg", jpeg(9)),                               # key 1 again, later in the tar
        ("4.jpg", jpeg(4)), ("4.jpg", jpeg(5)),           # two jpg members for one key
        ("README", b"no extension"),
        ("5.jpg", b"not a jpeg at all"),                  # decodes badly: skipped at extraction
    ])
    with tarfile.open(tar, "a") as tf:
        link = tarfile.TarInfo("6.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "1.jpg"
        tf.addfile(link)
    listing = load_tars([tar], "bad", progress=False)
    assert listing.ids == ["a.tar/1", "a.tar/3", "a.tar/4", "a.tar/5"]
    assert listing.paths.read(2) == jpeg(4)  # the first of the duplicate members is kept
    reasons = {Path(p).name: r for p, r in listing.skipped}
    assert reasons["2"] == "no jpg member (has: txt)"
    assert reasons["1"].startswith("duplicate key '1'")
    assert reasons["4.jpg"].startswith("duplicate member 'jpg'")
    assert reasons["README"].startswith("no extension")
    assert reasons["6.jpg"] == "not a regular file"


def test_truncated_and_compressed_tars(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "t" / "cut.tar", [(f"{i}.jpg", jpeg(i)) for i in range(4)])
    with tarfile.open(tar) as tf:
        last = tf.getmembers()[-1]
    with open(tar, "r+b") as f:
        f.truncate(last.offset_data + last.size // 2)  # the last member is cut short
    listing = load_tars([tar], "cut", progress=False)
    assert listing.ids == ["cut.tar/0", "cut.tar/1", "cut.tar/2"]
    assert any("truncated member" in r for _, r in listing.skipped)
    flipped = make_tar(tmp_path / "t" / "flip.tar", [(f"{i}.jpg", jpeg(i)) for i in range(4)])
    with tarfile.open(flipped) as tf:
        third = tf.getmembers()[2]
    with open(flipped, "r+b") as f:
        f.seek(third.offset + 148)  # the header checksum field: the header no longer validates
        f.write(b"9999999\0")
    listing = load_tars([flipped], "flip", progress=False)
    assert listing.ids == ["flip.tar/0", "flip.tar/1"]
    assert "tar damaged after 2 members (invalid header at byte" in listing.skipped[0][1]
    gz = tmp_path / "t" / "z.tar"
    with tarfile.open(gz, "w:gz") as tf:
        info = tarfile.TarInfo("0.jpg")
        data = jpeg(0)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    listing = load_tars([gz], "z", progress=False)
    assert listing.ids == [] and "cannot read as an uncompressed tar" in listing.skipped[0][1]


def test_extraction_from_tars_equals_loose_files(tar_dir: Path, tmp_path: Path) -> None:
    from extractor import extract_dataset, load_features

    loose = tmp_path / "loose"
    loose.mkdir()
    for t in range(3):
        for k in range(3):
            (loose / f"{t * 10 + k}.jpg").write_bytes(jpeg(t * 10 + k))
    bad = make_tar(tar_dir / "00003.tar", [("90.jpg", b"garbage"), ("91.jpg", jpeg(91)[:200])])
    assert bad.exists()
    kw = {"features_root": tmp_path / "F", "workers": 0, "batch_size": 4, "progress": False}
    from_tars = load_features(extract_dataset("dhash", load_tar_dataset(tar_dir, progress=False), **kw))
    from_files = load_features(extract_dataset("dhash", loose, **kw))
    assert [i.split("/")[1] for i in from_tars.ids] == [i.split("/")[1] for i in from_files.ids]
    np.testing.assert_array_equal(from_tars.features, from_files.features)
    errors = (tmp_path / "F" / "tars" / "dhash.errors.tsv").read_text()
    assert "00003.tar/90.jpg\tcannot decode" in errors and "00003.tar/91.jpg\t" in errors
    assert "BytesIO" not in errors


_KILLABLE = """
import sys
from tests.kill_hook import kill_after_chunks
kill_after_chunks(int(sys.argv[1]))  # SIGKILL this process right after its n-th chunk is written
import ilias_extract
sys.exit(ilias_extract.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_killed_tar_extraction_resumes_to_the_same_file(tar_dir: Path, tmp_path: Path) -> None:
    """ilias_extract.py killed (SIGKILL) after two chunks, rerun: the files equal an uninterrupted run."""
    import signal

    import h5py

    def run(hdf5_dir: Path, kill_after: int) -> subprocess.CompletedProcess:
        argv = ["--partition", "distractors", "--dataset_dir", str(tar_dir), "--hdf5_dir", str(hdf5_dir),
                "--framework", "lib", "--model", "dhash", "--tar_batch_size", "2", "--batch_size", "2",
                "--num_workers", "0", "--device", "cpu"]
        return subprocess.run([sys.executable, "-c", _KILLABLE, str(kill_after), *argv], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=300)

    killed = run(tmp_path / "a", 2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "a" / "features_distractors_00000.hdf5.partial").exists()
    assert run(tmp_path / "a", 0).returncode == 0
    assert run(tmp_path / "b", 0).returncode == 0
    for name in ("features_distractors_00000.hdf5", "features_distractors_00001.hdf5"):
        with h5py.File(tmp_path / "a" / name) as fa, h5py.File(tmp_path / "b" / name) as fb:
            assert fa["index"].asstr()[:].tolist() == fb["index"].asstr()[:].tolist()
            np.testing.assert_array_equal(fa["features"][:], fb["features"][:])
    with h5py.File(tmp_path / "a" / "features_distractors_00001.hdf5") as f:
        assert f["index"].asstr()[:].tolist() == ["00002.tar/20", "00002.tar/21", "00002.tar/22"]


def test_extract_features_script_on_tars(tar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import extract_features
    from extractor import load_features

    (tmp_path / "ids.txt").write_text("10\n12\n99\n")
    argv = ["--method", "dhash", "--tars", str(tar_dir), "--start-tar", "1", "--total-tars", "2", "--selected-ids",
            str(tmp_path / "ids.txt"), "--workers", "0", "--features-root", str(tmp_path / "F")]
    assert extract_features.main(argv) == 0
    out = capsys.readouterr()
    assert "1 not found in the 2 tars" in out.err and "dhash tars_tars1-3:" in out.out
    assert list(load_features("tars_tars1-3", "dhash", tmp_path / "F").ids) == ["00001.tar/10", "00001.tar/12"]
    assert extract_features.main([*argv[:4], "--start-tar", "7", "--features-root", str(tmp_path / "F")]) == 2
    assert "holds only 3 tars" in capsys.readouterr().err
