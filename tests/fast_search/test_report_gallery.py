"""process_experiment figures and summaries, explore_neighbors galleries, and the three root scripts."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extractor.store import store_path, write_features
from fast_search import explore_neighbors, format_table, process_experiment, run_experiment, summary_rows

from .conftest import DATABASE, QUERIES, make_stores

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # one experiment, figures and galleries: ~20 s on 2 shared cores


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8).repeat(3, 0).repeat(3, 1))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One small experiment with images for originals and attacks (distractors left missing)."""
    tmp = tmp_path_factory.mktemp("exp")
    features = make_stores(tmp / "Features", n_orig=8, n_distractors=40, copies=2, n_negatives=3)
    datasets = tmp / "Datasets"
    for folder, names in (
        ("demo/Original", [str(i) for i in range(8)]),
        ("demo/Attacks", [f"{i // 2}_attack{i % 2}" for i in range(16)]),
        ("demo/Negatives", [f"{1000 + i}_attack0" for i in range(3)]),
    ):
        (datasets / folder).mkdir(parents=True)
        for j, name in enumerate(names):
            _picture(j).save(datasets / folder / f"{name}.jpg")
    run_experiment(
        "exp", "feat", DATABASE, QUERIES, indexes=["Flat", "IVF4,Flat", "HNSW8"], metrics=["cosine"], ks=[1, 10],
        nprobes=[1, 4], efsearches=[8, 32], threads=1, features_root=features, results_root=tmp / "Results",
    )  # fmt: skip
    return tmp


def test_process_writes_figures_and_summaries(experiment):
    paths = process_experiment("exp", experiment / "Results")
    names = {p.name for p in paths}
    for stem in ("time_recall", "recall_at_k", "roc", "precision_recall", "distances_cosine"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
    rows = list(csv.DictReader((experiment / "Results" / "exp" / "summary.csv").open()))
    assert len(rows) == 5 and rows[0]["index"] == "Flat--cosine"
    assert "| Flat--cosine |" in (experiment / "Results" / "exp" / "summary.md").read_text()


def test_summary_rows_for_the_demo_table(experiment):
    rows = summary_rows("exp", experiment / "Results")
    assert list(rows[0]) == [
        "method",
        "index",
        "recall@1",
        "recall@10",
        "mAP@10",
        "recall@1%FPR",
        "micro-AP",
        "DISC21 recall@P90",
        "queries/s",
    ]
    assert rows[0]["method"] == "feat" and 0 <= rows[0]["recall@1"] <= rows[0]["recall@10"] <= 1
    assert format_table(rows).count("\n") == len(rows) + 1


def test_process_missing_experiment_says_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="search_experiment.py nope"):
        process_experiment("nope", tmp_path)


def test_explore_neighbors_images_and_html(experiment):
    page = explore_neighbors(
        "exp", k=5, sample=None, results_root=experiment / "Results", datasets_root=experiment / "Datasets"
    )
    folder = page.parent
    images = sorted(folder.glob("*/*.jpg"))
    assert len(images) == 19  # every query
    assert {p.parent.name for p in images} <= {"correct", "incorrect"}
    assert any(p.parent.name == "correct" for p in images)
    html = page.read_text()
    assert all(f"{p.parent.name}/{p.name}" in html for p in images)
    with Image.open(images[0]) as img:
        assert img.width > 500 and img.height > 300
    page = explore_neighbors(
        "exp", run="HNSW8--cosine--efSearch=32", k=3, sample=4, results_root=experiment / "Results",
        datasets_root=experiment / "Datasets",
    )  # fmt: skip
    drawn = list(page.parent.glob("*/*.jpg"))  # earlier galleries replaced
    assert sum(p.parent.name == "correct" for p in drawn) == 4  # the sample limits the successes only
    assert sum(p.parent.name == "incorrect" for p in drawn) == page.read_text().count("<p class='bad'>")
    with pytest.raises(ValueError, match="no run 'nope'"):
        explore_neighbors("exp", run="nope", results_root=experiment / "Results")
    with pytest.raises(ValueError, match="k must be"):
        explore_neighbors("exp", k=50, results_root=experiment / "Results")


def test_scripts(experiment, tmp_path, capsys):
    results = str(experiment / "Results")
    assert _script("process").main(["exp", "--results-root", results]) == 0
    assert "Flat--cosine" in capsys.readouterr().out
    assert (
        _script("explore_neighbors").main(
            ["exp", "--k", "3", "--sample", "2", "--results-root", results, "--datasets-root", str(tmp_path)]
        )
        == 0
    )  # images not found: grey placeholders, no crash
    assert "index.html" in capsys.readouterr().out
    search = _script("search_experiment")
    features = str(experiment / "Features")
    argv = ["exp2", "--method", "feat", "--indexes", "Flat", "--metrics", "L2", "--k", "1,3",
            "--features-root", features, "--results-root", str(tmp_path)]  # fmt: skip
    assert search.main(argv) == 0
    assert (tmp_path / "exp2" / "results.json").is_file()
    capsys.readouterr()
    assert search.main(argv) == 2  # refuses to overwrite: a one-line error, no traceback
    assert "exists; rerun with --overwrite (overwrite=True)" in capsys.readouterr().err
    assert search.main([*argv, "--overwrite"]) == 0
    with pytest.raises(SystemExit) as exit_info:  # a bad name is refused by the argument parser
        search.main(["a/b", "--features-root", features, "--results-root", str(tmp_path)])
    assert exit_info.value.code == 2 and "plain folder name" in capsys.readouterr().err
    assert _script("process").main(["nope", "--results-root", results]) == 2
    assert "search_experiment.py nope" in capsys.readouterr().err


def test_gallery_finds_unregistered_folders_from_the_store(tmp_path):
    images = tmp_path / "pics"
    images.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8)).astype("f4")
    for i in range(6):
        _picture(i).save(images / f"p{i}.jpg")
    features = tmp_path / "F"
    ids = [f"pics/p{i}" for i in range(6)]
    write_features(store_path("pics", "m", features), ids, x, method="m", extra_attrs={"folder": str(images)})
    run_experiment(
        "self", "m", ["pics"], ["pics"], ks=[2], features_root=features, results_root=tmp_path / "R"
    )
    page = explore_neighbors("self", k=2, sample=None, results_root=tmp_path / "R", datasets_root=tmp_path)
    assert len(list(page.parent.glob("*/*.jpg"))) == 6
    with Image.open(next(page.parent.glob("*/*.jpg"))) as img:
        top_left = np.asarray(img.convert("RGB"))[40:120, 40:120]
    assert top_left.std() > 20  # the query picture, not a flat grey placeholder


def test_summary_columns_follow_the_experiments_k(tmp_path):
    features = make_stores(tmp_path / "Features", n_orig=6, n_distractors=20, n_negatives=2)
    res = run_experiment(
        "k15", "feat", DATABASE, QUERIES, ks=[1, 5], threads=1, features_root=features, results_root=tmp_path
    )
    rows = summary_rows(res)
    assert [c for c in rows[0] if c.startswith("recall@") and "FPR" not in c] == ["recall@1", "recall@5"]
    assert all(rows[0][c] is not None for c in ("recall@1", "recall@5", "mAP@5"))
    table = format_table(rows)
    assert "recall@10" not in table and "| recall@5 |" in table


def test_figures_are_honest(experiment, monkeypatch):
    """Step ROC curves, legends naming nprobe / efSearch, integer bins for Hamming distances."""
    from matplotlib.axes import Axes

    import fast_search.report as R

    calls = {"step": [], "hist": [], "plot": []}
    real_step, real_hist, real_plot = Axes.step, Axes.hist, Axes.plot
    monkeypatch.setattr(
        Axes, "step", lambda self, *a, **k: calls["step"].append(k) or real_step(self, *a, **k)
    )
    monkeypatch.setattr(
        Axes, "hist", lambda self, *a, **k: calls["hist"].append(k) or real_hist(self, *a, **k)
    )
    monkeypatch.setattr(
        Axes, "plot", lambda self, *a, **k: calls["plot"].append(k) or real_plot(self, *a, **k)
    )
    res = R.load_results("exp", experiment / "Results")
    folder = experiment / "Results" / "exp"
    targets = R._targets(folder)
    R.plot_roc_pr(res, folder, targets)
    labels = [c["label"] for c in calls["step"]]
    assert len(labels) == 6 and all(c["where"] == "post" for c in calls["step"])  # ROC + PR, 3 runs each
    assert any("nprobe=4" in lab for lab in labels) and any("efSearch=32" in lab for lab in labels)
    calls["plot"].clear()
    R.plot_recall_k(res, folder, targets)
    assert any("nprobe=4" in c["label"] for c in calls["plot"])
    # Hamming distances are integers: every bin is one integer wide (edges at half-integers)
    hist_res = dict(res, runs=[dict(res["runs"][0], metric="hamming")])
    D = np.tile(np.arange(12.0), (len(targets), 1))
    ids = np.tile(np.arange(12), (len(targets), 1))
    monkeypatch.setattr(R, "_run_arrays", lambda folder, run: (D, ids))
    R.plot_distances(hist_res, folder, targets)
    edges = np.asarray(calls["hist"][0]["bins"])
    assert np.allclose(np.diff(edges), 1.0) and np.allclose(edges % 1, 0.5)


def test_gallery_page_reads_like_a_report(experiment):
    process_experiment("exp", experiment / "Results")  # figures to link to
    page = explore_neighbors("exp", k=3, sample=None, results_root=experiment / "Results",
                             datasets_root=experiment / "Datasets").read_text()  # fmt: skip
    assert "decision threshold (1 % FPR)" in page and "recall@1 " in page and "micro-AP" in page
    assert "href='../roc.png'" in page  # links to the figures
    assert page.index("id='incorrect'") < page.index("id='correct'")  # failures first
    assert "no original in the database (negative query)" in page  # legend
    assert page.count("<b>negative query</b>") == 3 and "no original in the database; " in page
    assert "d = " in page and "-> original demo_original/" in page  # captions are HTML text


def test_gallery_draws_every_failure_and_a_right_top1_above_the_threshold_is_a_miss(experiment):
    # threshold below every distance: nothing is accepted, so every positive query fails there
    page = explore_neighbors("exp", k=3, sample=1, threshold=-1.0, results_root=experiment / "Results",
                             datasets_root=experiment / "Datasets")  # fmt: skip
    drawn = list(page.parent.glob("*/*.jpg"))
    assert sum(p.parent.name == "incorrect" for p in drawn) == 16  # all 16 positive queries, not a sample
    assert sum(p.parent.name == "correct" for p in drawn) == 1  # one of the 3 rejected negatives
    assert "but rejected at d =" in page.read_text()


def test_verified_gallery_draws_the_matched_region(tmp_path):
    from PIL import ImageFilter

    from data_retrieval.attacks import apply_partial_attack
    from fast_search.gallery import YELLOW, _verify, compose
    from fast_search.verify import KeypointVerifier

    def texture(seed: int) -> Image.Image:
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8), "RGB").resize(
            (300, 240), Image.NEAREST).filter(ImageFilter.GaussianBlur(1))

    original, other = texture(5), texture(6)
    copy = apply_partial_attack(original, "meme_caption_25", 1)
    for name, img in (("q", copy.image), ("o", original), ("x", other)):
        img.save(tmp_path / f"{name}.png")
    neighbours = [(tmp_path / "o.png", "o", 0.1, True), (tmp_path / "x.png", "x", 0.2, False), (None, "gone", 0.3, False)]
    query_box, boxes, notes = _verify(KeypointVerifier(), tmp_path / "q.png", neighbours)
    assert query_box is not None and boxes[0] is not None and boxes[1] is None and boxes[2] is None
    assert "inliers" in notes[0] and notes[2] == ""
    from data_retrieval.partial_attacks import box_iou

    assert box_iou(query_box, copy.query_box) > 0.5
    img = np.asarray(compose(tmp_path / "q.png", tmp_path / "o.png", neighbours, "q", "o", query_box, boxes))
    assert (np.abs(img.astype(int) - YELLOW).sum(axis=2) < 60).sum() > 100  # the yellow boxes are drawn
    assert _verify(None, tmp_path / "q.png", neighbours) == (None, None, None)
