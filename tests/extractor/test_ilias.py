"""ILIAS both ways: its files load here, ours load with its logic; its extract.py flags and layout."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ilias_extract
from extractor import ilias, load_features, register_extractor, store_info, unregister_extractor
from extractor.store import StoreError, annotate_store
from tests.conftest import synthetic_image
from tests.data_retrieval.test_tars import jpeg, make_tar


# ---- ILIAS's own code, copied from ilias-vrg/ilias (feature_extraction/extract.py, knn_search/src) ----
def ilias_store_features(features: np.ndarray, index: list[str], hdf5_file_name: Path, hdf5_compression: int) -> None:
    """extract.py's store_features, verbatim but for the prints."""
    with h5py.File(hdf5_file_name, "w") as hdf5_file:
        hdf5_file.create_dataset("index", data=index, dtype=h5py.string_dtype(encoding="ascii"))
        hdf5_file.create_dataset(
            "features", data=features, dtype=features.dtype, compression="gzip", compression_opts=hdf5_compression
        )


def ilias_load_features(file_name: str):
    """knn_search/src/utils.py's load_features."""
    if h5py.is_hdf5(file_name):
        f = h5py.File(file_name, "r")
        return f["features"], f["index"].asstr()
    raise ValueError(f"File {file_name} is not a valid HDF5 file.")


def ilias_feature_dataset(query_hdf5, positive_hdf5, distractor_hdf5, total_distractors, selected_ids=None):
    """knn_search/src/dataset.py's FeatureDataset.__init__ + __getitem__, as plain code."""
    query_feat, query_ids = ilias_load_features(query_hdf5)
    positive_feat, positive_ids = ilias_load_features(positive_hdf5)
    distractor_feat, distractor_ids = [], []
    for i in range(total_distractors):
        feats, idx = ilias_load_features(distractor_hdf5.format(idx=f"{i:05d}"))
        distractor_feat.append(feats)
        distractor_ids.append(idx[:])
    db_ids = np.concatenate([positive_ids, *distractor_ids], axis=0)
    blocks = [(positive_feat[:], positive_ids[:])]
    for feats, ids in zip(distractor_feat, distractor_ids, strict=True):
        feats, ids = feats[:], np.asarray(ids)
        if selected_ids is not None:  # FeatureDataset.filter: the part after the tar name is the selected id
            keep = [i for i, image_id in enumerate(ids) if len(image_id.split("/")) > 1
                    and image_id.split("/")[1] in selected_ids]
            feats, ids = feats[keep], ids[keep]
        blocks.append((feats, ids))
    return query_feat[:], query_ids[:], db_ids, blocks


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def ilias_files(tmp_path: Path) -> Path:
    """Files as ILIAS writes them (float16, ascii ids, no attributes) in <root>/<model>/."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "hdf5" / "vit_small.test"
    folder.mkdir(parents=True)
    pos = rng.normal(size=(6, 8)).astype(np.float16)
    queries = (pos[::2] + 0.01).astype(np.float16)
    ilias_store_features(queries, [f"Q{i:04d}/query/q.jpg" for i in range(3)],
                         folder / "features_image_queries.hdf5", 0)
    ilias_store_features(pos, [f"Q{i // 2:04d}/pos/{i}.jpg" for i in range(6)],
                         folder / "features_positives.hdf5", 4)
    for b in range(2):
        ilias_store_features(rng.normal(size=(5, 8)).astype(np.float16), [f"{b:05d}.tar/{b * 5 + i}" for i in range(5)],
                             folder / f"features_distractors_{b:05d}.hdf5", 0)
    return folder


@pytest.fixture
def tiny_float() -> str:
    """A registered tiny float extractor (random conv + average pool), so ILIAS's logic reads floats."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7, stride=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    register_extractor("tiny_ilias", model.eval(), normalize=True)
    yield "tiny_ilias"
    unregister_extractor("tiny_ilias")


@pytest.fixture
def ilias_core(tmp_path: Path) -> Path:
    """ILIAS-core-like folders: queries and positives per instance, a non-ASCII name, a text query."""
    root = tmp_path / "core"
    for q in range(2):
        (root / f"Q{q}" / "query").mkdir(parents=True)
        (root / f"Q{q}" / "pos").mkdir(parents=True)
        synthetic_image(q, (48, 32)).save(root / f"Q{q}" / "query" / "q.jpg")
        synthetic_image(10 + q, (32, 48)).save(root / f"Q{q}" / "pos" / "p1.JPG")
        synthetic_image(20 + q).save(root / f"Q{q}" / "pos" / "p2.png")
        (root / f"Q{q}" / f"T{q}.txt").write_text(f"description {q}")
    synthetic_image(30).save(root / "Q1" / "pos" / "café.jpg")
    (root / "Q1" / "pos" / "notes.txt").write_text("not an image")
    return root


# ---- part 5: ILIAS-written files load here ---------------------------------------------------------
def test_ilias_files_load_with_inferred_attributes(ilias_files: Path) -> None:
    feats = load_features(ilias_files / "features_positives.hdf5")
    assert feats.dim == 8 and not feats.binary and feats.method == "vit_small.test"
    assert feats.features.dtype == np.float16 and feats.ids[1] == "Q0000/pos/1.jpg"
    assert sorted(feats.attrs["inferred"]) == ["binary", "dim", "dtype", "method"]
    assert load_features(ilias_files / "features_positives.hdf5", "siglip").method == "siglip"
    many = load_features(ilias_files / "features_distractors_*.hdf5")
    assert list(many.ids) == [f"{b:05d}.tar/{b * 5 + i}" for b in range(2) for i in range(5)]
    assert store_info(str(ilias_files / "features_distractors_*.hdf5"), "m")["n"] == 10
    with pytest.raises(StoreError, match="does not exist"):
        load_features(ilias_files / "features_nothing.hdf5")


def test_integer_features_without_attributes_ask_for_binary(tmp_path: Path) -> None:
    path = tmp_path / "bits.hdf5"
    ilias_store_features(np.zeros((3, 4), np.uint8), ["a/1", "a/2", "a/3"], path, 0)
    with pytest.raises(StoreError, match=r"annotate_store\(.*binary=True"):
        load_features(path)
    annotate_store(path, binary=True, method="dhash")
    feats = load_features(path)
    assert feats.binary and feats.dim == 32 and feats.method == "dhash"
    with pytest.raises(ValueError, match="annotate_store sets"):
        annotate_store(path, color="red")


def test_run_experiment_on_ilias_files(ilias_files: Path, tmp_path: Path) -> None:
    from fast_search.experiment import run_experiment

    result = run_experiment(
        "ilias_files", "vit_small.test",
        database=[str(ilias_files / "features_positives.hdf5"), str(ilias_files / "features_distractors_*.hdf5")],
        queries=[str(ilias_files / "features_image_queries.hdf5")],
        ks=[1, 2], results_root=str(tmp_path / "Results"), features_root=str(tmp_path / "F"),
    )
    assert result["data"]["n_database"] == 16 and result["data"]["dim"] == 8
    run = result["runs"][0]
    neighbours = np.load(tmp_path / "Results" / "ilias_files" / run["file"])["I"]
    database_ids = np.load(tmp_path / "Results" / "ilias_files" / "ids.npz")["database_ids"]
    positives = [str(i) for i in h5py.File(ilias_files / "features_positives.hdf5", "r")["index"].asstr()[:]]
    # each query's own positive is its nearest (datasets are searched in sorted order: compare ids)
    assert database_ids[neighbours[:, 0]].tolist() == [positives[i] for i in (0, 2, 4)]


# ---- part 4 + 5: our ILIAS-mode files, read by ILIAS's logic ------------------------------------------
def test_our_files_read_by_ilias_logic(ilias_core: Path, tmp_path: Path, tiny_float: str) -> None:
    tars = tmp_path / "yfcc"
    for t in range(3):
        make_tar(tars / f"{t:05d}.tar", [(f"{t}{k}.jpg", jpeg(t * 10 + k)) for k in range(2)]
                 + [(f"{t}x.txt", b"no image")])
    hdf5 = tmp_path / "hdf5" / tiny_float
    common = ["--hdf5_dir", str(hdf5), "--framework", "lib", "--model", tiny_float, "--num_workers", "0",
              "--device", "cpu"]
    for partition in ("image_queries", "positives"):
        assert ilias_extract.main(["--partition", partition, "--dataset_dir", str(ilias_core), *common]) == 0
    assert ilias_extract.main(["--partition", "distractors", "--dataset_dir", str(tars), "--tar_batch_size", "2",
                               *common]) == 0
    xq, q_ids, db_ids, blocks = ilias_feature_dataset(
        str(hdf5 / "features_image_queries.hdf5"), str(hdf5 / "features_positives.hdf5"),
        str(hdf5 / "features_distractors_{idx}.hdf5"), total_distractors=2)
    assert list(q_ids) == ["Q0/query/q.jpg", "Q1/query/q.jpg"]
    assert list(blocks[0][1]) == ["Q0/pos/p1.JPG", "Q0/pos/p2.png", "Q1/pos/caf#U00e9.jpg", "Q1/pos/p1.JPG",
                                  "Q1/pos/p2.png"]
    assert list(db_ids[5:]) == ["00000.tar/00", "00000.tar/01", "00001.tar/10", "00001.tar/11",
                                "00002.tar/20", "00002.tar/21"]
    assert xq.dtype == np.float16 and xq.shape == (2, 8)  # ILIAS's default --store_fp16 true
    assert all(len(f) == len(i) for f, i in blocks)
    np.testing.assert_allclose(np.linalg.norm(blocks[1][0].astype(np.float32), axis=1), 1, atol=1e-2)
    _, _, _, picked = ilias_feature_dataset(
        str(hdf5 / "features_image_queries.hdf5"), str(hdf5 / "features_positives.hdf5"),
        str(hdf5 / "features_distractors_{idx}.hdf5"), 2, selected_ids={"01", "20"})
    assert [list(ids) for _, ids in picked[1:]] == [["00000.tar/01"], ["00002.tar/20"]]
    assert "no jpg member" in (hdf5 / "features_distractors_00000.errors.tsv").read_text()
    # a finished file is kept as is on a rerun (resumable per output file)
    first = hdf5 / "features_distractors_00000.hdf5"
    stamp = first.stat().st_mtime_ns
    (hdf5 / "features_distractors_00001.hdf5").unlink()
    time.sleep(0.01)
    assert ilias_extract.main(["--partition", "distractors", "--dataset_dir", str(tars), "--tar_batch_size", "2",
                               *common]) == 0
    assert first.stat().st_mtime_ns == stamp and (hdf5 / "features_distractors_00001.hdf5").exists()


def test_core_selected_ids_and_text_queries(ilias_core: Path, tmp_path: Path) -> None:
    listing, unknown = ilias.core_listing(ilias_core, "positives", ["Q1/pos/p2.png", "Q9/pos/none.jpg", "Q0/pos/p1.JPG"])
    assert listing.ids == ["Q1/pos/p2.png", "Q0/pos/p1.JPG"] and unknown == ["Q9/pos/none.jpg"]

    class Text:
        name = "text_stub"

        def encode_text(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), 1.0] for t in texts])

    out = ilias.extract_partition(Text(), "text_queries", ilias_core, tmp_path / "h", progress=False)
    feats, ids = ilias_load_features(str(out[0]))
    assert out[0].name == "features_text_queries.hdf5" and list(ids[:]) == ["Q0/T0.txt", "Q1/T1.txt"]
    assert feats.dtype == np.float16 and feats[:].tolist() == [[13, 1], [13, 1]]


# ---- the flag set ------------------------------------------------------------------------------------
def test_run_slurm_lines_parse_and_map_to_our_registry(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The four commands of ILIAS's run_slurm.sh, with a models.sh line's values, parse unchanged."""
    ilias_dir = str(tmp_path)  # --dataset_dir must exist
    base = ["--dataset_dir", ilias_dir, "--hdf5_dir", "/hdf5/m/", "--framework", "timm", "--model",
            "resnet50.tv_in1k", "--resolution", "384", "--pooling", "head"]
    args = ilias_extract.build_parser().parse_args(["--partition", "distractors", *base, "--start_tar", "0",
                                                    "--total_tars", "10"])
    assert (args.start_tar, args.total_tars, args.resolution, args.pooling) == (0, 10, 384, "head")
    args = ilias_extract.build_parser().parse_args(["--partition", "text_queries", "--dataset_dir", ilias_dir,
                                                    "--hdf5_dir", "/h", "--framework", "text", "--model",
                                                    "vit_base_patch16_clip_224.openai"])
    assert args.framework == "text"
    args = ilias_extract.build_parser().parse_args(["--dataset-dir", ilias_dir, "--hdf5-dir", "/h", "--start-tar", "10",
                                                    "--multiscale", "true", "--store-fp16", "off"])
    assert args.start_tar == 10 and args.multiscale is True and args.store_fp16 is False

    calls = []
    monkeypatch.setattr("extractor.registry.create_extractor", lambda name, **kw: calls.append((name, kw)))
    ilias.ilias_extractor("timm", "resnet50.tv_in1k", device="cuda", resolution=384, pooling="gem")
    ilias.ilias_extractor("text", "vit_base_patch16_clip_224.openai", device="cpu")
    ilias.ilias_extractor("lib", "dhash", device="cpu")
    ilias.ilias_extractor("och", "RN50.openai", device="cpu", multiscale=True)
    ilias.ilias_extractor("fb", "dinov2_vitb14", device="cpu", resolution=724)
    ilias.ilias_extractor("tv", "alexnet", device="cpu", pooling="gem")
    assert calls[0] == ("timm:resnet50.tv_in1k", {"precision": "fp16", "device": "cuda", "normalize": True,
                                                  "pooling": "gem", "transforms": "RESIZE_LARGE", "resolution": 384})
    assert calls[1][0] == "open_clip:ViT-B-16/openai"
    assert calls[2] == ("dhash", {})
    assert calls[3] == ("open_clip:RN50/openai", {"device": "cpu", "normalize": True, "pooling": "head",
                                                  "transforms": "RESIZE_LARGE", "resolution": 512, "multiscale": True})
    assert all(kw["normalize"] for name, kw in calls if name != "dhash")  # ILIAS L2-normalises every descriptor
    assert [c[0] for c in calls[4:]] == ["hub:dinov2_vitb14", "torchvision:alexnet"]
    with pytest.raises(ValueError, match="UNICOM"):
        ilias.ilias_extractor("unicom", "unicom_vit_base_patch16_224")


def test_bad_command_lines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["--dataset_dir", str(tmp_path), "--hdf5_dir", str(tmp_path / "h"), "--framework", "lib",
            "--model", "dhash", "--device", "cpu"]
    with pytest.raises(SystemExit) as exit_:
        ilias_extract.main([*base, "--partition", "distractors", "--start_tar", "5"])
    assert exit_.value.code == 2 and "multiple of --tar_batch_size" in capsys.readouterr().err
    assert ilias_extract.main([*base, "--partition", "distractors"]) == 2
    assert "no .tar files" in capsys.readouterr().err
    assert ilias_extract.main([*base, "--partition", "distractors", "--selected_ids", str(tmp_path / "no")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert ilias_extract.main([*base, "--partition", "positives"]) == 2
    assert "no positives images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ilias_extract.main([*base, "--partition", "uned"])


def test_models_sh_style_run_with_a_timm_model_on_tars(tmp_path: Path) -> None:
    """A run_slurm.sh distractors line (timm, gem, resolution) on tars, random weights: ILIAS files out."""
    tars = tmp_path / "yfcc"
    make_tar(tars / "00000.tar", [(f"{k}.jpg", jpeg(k)) for k in range(3)])
    hdf5 = tmp_path / "hdf5" / "resnet18"
    assert ilias_extract.main([
        "--partition", "distractors", "--dataset_dir", str(tars), "--hdf5_dir", str(hdf5), "--framework", "timm",
        "--model", "resnet18", "--resolution", "64", "--pooling", "gem", "--start_tar", "0", "--total_tars", "10",
        "--weights", "none", "--num_workers", "0", "--device", "cpu", "--batch_size", "2",
    ]) == 0
    feats, ids = ilias_load_features(str(hdf5 / "features_distractors_00000.hdf5"))
    assert list(ids[:]) == ["00000.tar/0", "00000.tar/1", "00000.tar/2"]
    assert feats.shape == (3, 512) and feats.dtype == np.float16 and np.isfinite(feats[:]).all()
