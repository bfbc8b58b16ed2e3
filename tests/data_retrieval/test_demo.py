"""The demo-set builder on a tiny configuration: counts, ids, ground truth, determinism, no network."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_retrieval import demo
from data_retrieval.attacks import ATTACK_IDS
from data_retrieval.datasets import (
    DEMO_DATASETS,
    find_originals,
    generator_kind,
    image_generator,
    load_dataset,
    shared_generators,
)

PHOTOS = ["astronaut", "camera", "rocket"]  # rocket is held out: its attacks are negatives
ATTACKS = ["gaussian_noise_0.01", "jpg_compression_50", "rotation_10_and_rescaling", "text_length_20"]
KW = dict(n_distractors=20, photos=PHOTOS, attack_ids=ATTACKS, n_synthetic_negatives=1, workers=2,
          n_photo_distractors=7, n_photo_negatives=4, n_procedural_negatives=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("datasets")
    real_socket = socket.socket

    class NoNetwork(real_socket):
        def connect(self, *args, **kwargs):
            raise AssertionError("the demo builder tried to use the network")

    socket.socket = NoNetwork
    try:
        counts = demo.build_demo(root, **KW)
    finally:
        socket.socket = real_socket
    return root, counts


def digests(root: Path) -> dict[str, str]:
    files = sorted(p for p in (root / "demo").rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_counts(built):
    _, counts = built
    assert counts == {"Original": 2, "Attacks": 2 * 4, "Negatives": (1 + 1) * 4 + 4 + 3, "Distractors": 20 + 7}


def test_folders_match_the_dataset_specs_and_ids_are_unique(built):
    root, counts = built
    ids = []
    for name, key in [
        ("demo_original", "Original"),
        ("demo_attacks", "Attacks"),
        ("demo_negatives", "Negatives"),
        ("demo_distractors", "Distractors"),
    ]:
        listing = load_dataset(name, root=root)
        assert len(listing) == counts[key] and listing.skipped == []
        ids += listing.ids
    assert len(ids) == len(set(ids))
    for name in ["demo_original", "demo_distractors"]:
        assert all("_" not in p.stem for p in load_dataset(name, root=root).paths)


def test_ground_truth(built):
    root, _ = built
    database = load_dataset("demo_original", root=root).ids + load_dataset("demo_distractors", root=root).ids
    attacks = load_dataset("demo_attacks", root=root).ids
    found = find_originals(attacks, database)
    assert (found >= 0).all()
    for query, index in zip(attacks, found, strict=True):
        assert query.split("/")[1].startswith(database[index].split("/")[1] + "_")
    negatives = load_dataset("demo_negatives", root=root)
    assert (find_originals(negatives.ids, database) == -1).all()
    assert {p.stem.split("_")[0].split("-")[0].rstrip("0123456789") for p in negatives.paths} == {
        "rocket", "synthetic", "procedural"}


def test_originals_are_rgb_and_at_most_512(built):
    root, _ = built
    for path in load_dataset("demo_original", root=root).paths:
        with Image.open(path) as img:
            assert max(img.size) <= demo.MAX_SIDE


def test_rerun_writes_nothing_and_repairs_deletions(built, tmp_path):
    root, _ = built
    before = digests(root)
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "demo").rglob("*") if p.is_file()}
    demo.build_demo(root, **KW)
    assert {p: p.stat().st_mtime_ns for p in (root / "demo").rglob("*") if p.is_file()} == mtimes
    for path in (
        sorted((root / "demo" / "Attacks").iterdir())[:3]
        + sorted((root / "demo" / "Distractors").iterdir())[:3]
    ):
        path.unlink()
    demo.build_demo(root, **KW)
    assert digests(root) == before


def test_deterministic_for_a_seed(built, tmp_path):
    root, _ = built
    other = tmp_path / "again"
    demo.build_demo(other, **{**KW, "workers": 1})
    assert digests(other) == digests(root)


def test_distractors_are_varied():
    prints = set()
    for i in range(200):
        img = demo.procedural_image(demo.derive_seed(0, "distractor", i))
        assert img.mode == "RGB" and 160 <= min(img.size) <= max(img.size) <= 256
        a = np.asarray(img.convert("L").resize((9, 8)), dtype=np.int16)
        prints.add((a[:, 1:] > a[:, :-1]).tobytes())  # a 64-bit difference hash
    assert len(prints) >= 195


def test_photo_catalogue_is_shipped_and_well_named():
    photos = demo.available_photos()
    stems = [s for s, _ in photos]
    assert len(photos) >= 25 and len(set(stems)) == len(stems)
    assert all("_" not in s for s in stems)
    assert set(demo.HELD_OUT) <= set(stems)
    assert all(path.is_file() for _, path in photos)


def test_downscale_keeps_aspect():
    assert demo.downscale(Image.new("RGB", (1000, 500))).size == (512, 256)
    assert demo.downscale(Image.new("RGB", (300, 200))).size == (300, 200)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="astronaut"):
        demo.build_demo(tmp_path, photos=["nosuchphoto"])
    with pytest.raises(ValueError, match="n_distractors"):
        demo.build_demo(tmp_path, n_distractors=-1)
    with pytest.raises(ValueError, match="valid ids"):
        demo.build_demo(tmp_path, attack_ids=["blur"], photos=["camera"])


def test_command_line_passes_its_flags(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake(root, n_distractors, seed, workers, n_photo_distractors):
        seen.update(root=root, n=n_distractors, seed=seed, workers=workers, photo=n_photo_distractors)
        return {"Original": 0}

    monkeypatch.setattr(demo, "build_demo", fake)
    assert demo.main(["--root", str(tmp_path), "--distractors", "7", "--seed", "3", "--workers", "1",
                      "--photo-distractors", "2"]) == 0
    assert seen == {"root": tmp_path, "n": 7, "seed": 3, "workers": 1, "photo": 2}
    assert "Original: 0" in capsys.readouterr().out


# ---- issue 21 (item 8): photographic negatives and distractors, by kind --------------------------


def test_negatives_and_distractors_come_in_both_kinds_from_disjoint_photographs(built):
    root, _ = built
    ids = {name: load_dataset(name, root=root).ids for name in DEMO_DATASETS}
    kinds = {name: {generator_kind(i) for i in found} for name, found in ids.items()}
    assert kinds["demo_negatives"] == kinds["demo_distractors"] == {"photo", "procedural"}
    assert kinds["demo_original"] == kinds["demo_attacks"] == {"photo"}
    photos = {name: {image_generator(i) for i in found} - {"procedural"} for name, found in ids.items()}
    assert photos["demo_negatives"] == {"photo:rocket"}  # crops and attacks of the held-out photograph
    assert photos["demo_distractors"] <= {f"photo:{s}" for _, _, s in demo.DISTRACTOR_PHOTOS}
    assert len(photos["demo_distractors"]) >= 3
    # no photograph gives two roles: a negative never copies a distractor or an original
    assert not photos["demo_distractors"] & (photos["demo_negatives"] | photos["demo_original"])
    assert not photos["demo_negatives"] & photos["demo_original"]
    tiles = [p for p in load_dataset("demo_distractors", root=root).paths if "-tile" in p.stem]
    assert len(tiles) == 7 and all(max(Image.open(p).size) <= demo.DISTRACTOR_SIDE for p in tiles)


def test_default_demo_rests_each_1pct_fpr_on_1000_negatives_of_each_kind():
    photo = len(demo.HELD_OUT) * len(ATTACK_IDS) + demo.N_PHOTO_NEGATIVES
    procedural = demo.N_SYNTHETIC_NEGATIVES * len(ATTACK_IDS) + demo.N_PROCEDURAL_NEGATIVES
    assert photo >= 1000 and procedural >= 1000
    assert demo.N_DISTRACTORS + demo.N_PHOTO_DISTRACTORS == 5000 and demo.N_PHOTO_DISTRACTORS >= 1000


def test_image_generator_rules():
    assert image_generator("demo_distractors/12") == "procedural"
    assert image_generator("demo_distractors/tower-tile5") == "photo:tower"
    assert image_generator("demo_negatives/synthetic3_jpg_compression_10") == "procedural"
    assert image_generator("demo_negatives/procedural7") == "procedural"
    assert image_generator("demo_negatives/flower-crop12") == "photo:flower"
    assert image_generator("demo_attacks/astronaut_scaling_0.4") == "photo:astronaut"
    assert image_generator("sscd_train/procedural3") == "procedural"  # any dataset written by write_procedural
    assert image_generator("BSDS500_original/100007") is None and generator_kind("x/1") is None
    assert shared_generators(["demo_distractors/1"], ["demo_negatives/procedural2"]) == ["procedural"]
    assert shared_generators(["demo_distractors/tower-tile1"], ["demo_negatives/flower-crop2"]) == []
