"""generate_attacks: counts, names, byte-identical reruns, resume after a kill, bad images skipped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from data_retrieval import generate_attacks as ga
from data_retrieval.attacks import ATTACK_IDS
from data_retrieval.datasets import DatasetError, find_originals, load_dataset
from tests.conftest import synthetic_image

FEW = ["gaussian_noise_0.01", "s&p_noise_0.1", "jpg_compression_50", "scaling_0.4", "text_length_20"]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        synthetic_image(i, (64, 48)).save(folder / f"img{i}.jpg")
    return folder


def test_writes_every_attack_of_every_image_then_nothing(small_folder, tmp_path):
    out = tmp_path / "out"
    report = ga.generate_attacks(small_folder, out, FEW, workers=1)
    assert (report.n_images, report.written, report.existing, report.bad) == (4, 20, 0, [])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"img{i}_{a}.png" for i in range(4) for a in FEW)
    assert Image.open(out / "img0_scaling_0.4.png").size == (26, 19)
    again = ga.generate_attacks(small_folder, out, FEW, workers=1)
    assert (again.written, again.existing) == (0, 20)


@pytest.mark.slow
def test_all_58_attacks_on_all_cores_match_one_process(small_folder, tmp_path):
    multi = ga.generate_attacks(small_folder, tmp_path / "multi", workers=2, seed=3)
    single = ga.generate_attacks(small_folder, tmp_path / "single", workers=1, seed=3)
    assert multi.written == single.written == 4 * 58
    assert digests(tmp_path / "multi") == digests(tmp_path / "single")  # order and processes do not matter
    listing = load_dataset(tmp_path / "multi", name="q")
    ground = find_originals(listing.ids, load_dataset(small_folder, name="o").ids, targets={"q": "o"})
    assert (ground >= 0).all()
    assert sorted({a for p in listing.paths for a in ATTACK_IDS if p.stem.endswith("_" + a)}) == sorted(
        ATTACK_IDS
    )


def test_seed_gives_identical_bytes_and_changes_random_attacks(small_folder, tmp_path):
    ga.generate_attacks(small_folder, tmp_path / "a", FEW, seed=7, workers=1)
    ga.generate_attacks(small_folder, tmp_path / "b", FEW, seed=7, workers=1)
    ga.generate_attacks(small_folder, tmp_path / "c", FEW, seed=8, workers=1)
    a, b, c = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert a == b
    assert a["img0_gaussian_noise_0.01.png"] != c["img0_gaussian_noise_0.01.png"]
    assert a["img0_scaling_0.4.png"] == c["img0_scaling_0.4.png"]  # deterministic attacks ignore the seed


def test_same_image_under_two_names_gets_different_noise(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    synthetic_image(0).save(folder / "a.png")
    synthetic_image(0).save(folder / "b.png")
    ga.generate_attacks(folder, tmp_path / "out", ["gaussian_noise_0.01"], workers=1)
    d = digests(tmp_path / "out")
    assert d["a_gaussian_noise_0.01.png"] != d["b_gaussian_noise_0.01.png"]


def test_resume_after_a_kill_completes_with_the_same_files(small_folder, tmp_path):
    full = tmp_path / "full"
    ga.generate_attacks(small_folder, full, FEW, workers=1)
    killed = tmp_path / "killed"
    ga.generate_attacks(small_folder, killed, FEW, workers=1)
    victims = sorted(killed.iterdir())[::3]
    for path in victims:  # a killed run: some outputs missing, one temporary file left behind
        path.unlink()
    (killed / f".{victims[0].name}{ga.TMP_MARK}1234").write_bytes(b"\x89PNG truncated")
    report = ga.generate_attacks(small_folder, killed, FEW, workers=1)
    assert report.written == len(victims)
    assert digests(killed) == digests(full)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.png"

    def explode(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        ga.save_atomic(Image.new("RGB", (4, 4)), target)
    assert list(tmp_path.iterdir()) == []


def write_light_bad_images(folder: Path) -> dict[str, str]:
    """The conftest's awkward files minus its decompression bomb (slow to write; load_image's tests cover it)."""
    folder.mkdir(parents=True)
    good = synthetic_image(100)
    good.save(folder / "good.jpg")
    good.convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    jpeg = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text_named_as_image.png").write_text("hello")
    (folder / "notes.txt").write_text("not an image extension")
    (folder / ".hidden.jpg").write_bytes(jpeg)
    return {
        "good.jpg": "ok",
        "cmyk.jpg": "ok",
        "one_pixel.png": "ok",
        "truncated.jpg": "bad",
        "corrupt.jpg": "bad",
        "empty.png": "bad",
        "text_named_as_image.png": "bad",
    }


def test_bad_images_are_skipped_with_reasons(tmp_path):
    folder = tmp_path / "bad"
    kinds = write_light_bad_images(folder)
    report = ga.generate_attacks(folder, tmp_path / "out", ["scaling_0.8", "text_length_10"], workers=2)
    bad_names = sorted(Path(p).name for p, _ in report.bad)
    assert bad_names == sorted(n for n, k in kinds.items() if k == "bad")
    assert all(Path(p).name in reason for p, reason in report.bad)
    assert sorted(Path(p).name for p, _ in report.not_listed) == [".hidden.jpg", "notes.txt"]
    n_ok = sum(k == "ok" for k in kinds.values())
    assert report.written == 2 * n_ok == len(list((tmp_path / "out").iterdir()))
    assert "unreadable" in report.summary()


def test_errors_name_the_problem(tmp_path, small_folder):
    with pytest.raises(DatasetError, match="missing"):
        ga.generate_attacks(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        ga.generate_attacks(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="valid ids"):
        ga.generate_attacks(small_folder, tmp_path / "out", ["blur"])
    with pytest.raises(ValueError, match="input folder"):
        ga.generate_attacks(small_folder, small_folder / ".." / small_folder.name, FEW)
    with pytest.raises(ValueError, match="ext"):
        ga.generate_attacks(small_folder, tmp_path / "out", FEW, ext=".gif")


def test_command_line(small_folder, tmp_path, capsys):
    assert (
        ga.main([str(small_folder), str(tmp_path / "out"), "--attacks", "scaling_0.4", "--workers", "1"]) == 0
    )
    assert "4 attacks written" in capsys.readouterr().out
    assert (
        ga.main(
            [str(small_folder), str(tmp_path / "out"), "--attacks", "scaling_0.4", "--jpeg", "--workers", "1"]
        )
        == 0
    )
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 4
    with pytest.raises(SystemExit):
        ga.main([str(tmp_path / "missing"), str(tmp_path / "out")])
    assert "missing" in capsys.readouterr().err
