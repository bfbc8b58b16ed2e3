"""run_experiment: the results.json schema, refusal to overwrite, errors before any work, caching."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from extractor.store import store_path, write_features
from fast_search import default_search_params, run_experiment
from fast_search.experiment import SCHEMA

from .conftest import DATABASE, QUERIES, make_stores

RUN_KEYS = {
    "key", "index", "metric", "k", "exact", "param", "value", "variant", "recall_at_k", "map_at_k", "oracle_at_k",
    "roc_auc", "micro_ap", "recall_at_fpr_1pct", "threshold_at_fpr_1pct", "recall_at_fpr_0.1pct",
    "threshold_at_fpr_0.1pct", "top1_recall_at_precision_90", "top1_threshold_at_precision_90",
    "disc21_recall_at_precision_90", "disc21_threshold_at_precision_90", "recall_vs_exact", "train_time_s",
    "add_time_s", "search_time_s", "queries_per_s", "index_bytes", "file", "by_negative_kind", "sha256",
}  # fmt: skip


def _run(stores, tmp_path, name="exp", **kw):
    kw.setdefault("indexes", ["Flat", "IVF4,Flat"])
    kw.setdefault("metrics", ["cosine", "L2"])
    kw.setdefault("ks", [1, 5])
    kw.setdefault("nprobes", [1, 4])
    kw.setdefault("threads", 1)  # tiny searches: OpenMP on a busy 2-core machine only adds waiting
    return run_experiment(
        name,
        kw.pop("method", "feat"),
        DATABASE,
        QUERIES,
        features_root=stores,
        results_root=tmp_path / "R",
        **kw,
    )


def test_results_json_schema(stores, tmp_path):
    res = _run(stores, tmp_path, threads=None)  # None: every core
    on_disk = json.loads((tmp_path / "R" / "exp" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert on_disk["schema"] == SCHEMA and on_disk["complete"] is True
    assert set(on_disk) >= {"machine", "threads", "versions", "params", "data", "runs", "errors", "created"}
    assert on_disk["machine"]["cores"] >= 1 and "faiss" in on_disk["versions"]
    assert on_disk["threads"] == os.cpu_count() and on_disk["params"]["threads"] is None
    assert on_disk["params"]["indexes"] == ["Flat", "IVF4,Flat"] and on_disk["params"]["ks"] == [1, 5]
    assert on_disk["data"] == {
        "method": "feat", "dim": 16, "binary": False, "n_database": 120, "n_queries": 46,
        "n_positive": 40, "n_negative": 6, "ground_truth": {
            "demo_attacks": "names (demo_attacks copies demo_original)",
            "demo_negatives": "names (demo_negatives copies demo_original)",
        }, "self_matches_excluded": None,
    }  # fmt: skip
    keys = [r["key"] for r in on_disk["runs"]]
    assert keys == [
        "Flat--cosine", "Flat--L2", "IVF4,Flat--cosine--nprobe=1", "IVF4,Flat--cosine--nprobe=4",
        "IVF4,Flat--L2--nprobe=1", "IVF4,Flat--L2--nprobe=4",
    ]  # fmt: skip
    for run in on_disk["runs"]:
        assert set(run) == RUN_KEYS
        assert set(run["recall_at_k"]) == {"1", "5"}
        assert 0 <= run["recall_at_k"]["1"] <= run["recall_at_k"]["5"] <= 1
        assert run["index_bytes"] > 0 and run["queries_per_s"] > 0
        with np.load(tmp_path / "R" / "exp" / run["file"]) as z:
            assert z["I"].shape == (46, 6)  # k + 1: the extra neighbour closes ties at the k-th distance
    flat = on_disk["runs"][0]
    assert flat["recall_at_k"]["1"] > 0.9 and flat["recall_vs_exact"] == 1.0
    ivf_full = on_disk["runs"][3]  # nprobe = nlist: exact
    assert ivf_full["recall_vs_exact"] == pytest.approx(1.0)
    assert (tmp_path / "R" / "exp" / "cache" / "exact_cosine.npz").is_file()


def test_refuses_to_overwrite_and_bad_names(stores, tmp_path):
    _run(stores, tmp_path, indexes=["Flat"], metrics=["L2"])
    with pytest.raises(FileExistsError, match="overwrite"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["L2"])
    res = _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine"], overwrite=True)
    assert [r["key"] for r in res["runs"]] == ["Flat--cosine"]
    for bad in ("a/b", "", ".."):
        with pytest.raises(ValueError, match="plain folder name"):
            _run(stores, tmp_path, name=bad)


def test_binary_experiment(binary_stores, tmp_path):
    res = _run(
        binary_stores, tmp_path, method="hash", indexes=["BFlat", "BIVF4"], metrics=["hamming"], ks=[1, 3]
    )
    keys = [r["key"] for r in res["runs"]]
    assert keys == ["BFlat--hamming", "BIVF4--hamming--nprobe=1", "BIVF4--hamming--nprobe=4"]
    assert res["runs"][0]["recall_at_k"]["1"] == 1.0  # 5 % flipped bits of 64: originals are nearest
    assert res["runs"][-1]["recall_vs_exact"] > 0.5


def test_block_mode_matches_in_memory(stores, tmp_path):
    a = _run(stores, tmp_path, name="mem", indexes=["Flat"], metrics=["L2"])
    b = _run(stores, tmp_path, name="blk", indexes=["Flat"], metrics=["L2"], block_size=16)
    for key in ("recall_at_k", "micro_ap", "roc_auc", "recall_at_fpr_1pct"):
        assert a["runs"][0][key] == pytest.approx(b["runs"][0][key])
    c = _run(
        stores, tmp_path, name="blk_ivf", indexes=["IVF4,Flat"], metrics=["L2"], block_size=16, nprobes=[4]
    )
    assert c["runs"][0]["recall_vs_exact"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kw,error,match",
    [
        ({"indexes": ["Bogus"]}, ValueError, "cannot build index 'Bogus'"),
        ({"metrics": ["euclid"]}, ValueError, "unknown metric 'euclid'.*valid: L2, cosine, IP, L1"),
        ({"ks": [1, 500]}, ValueError, "k=500 is larger than the database"),
        ({"ks": [0]}, ValueError, "positive integers"),
        ({"indexes": ["IVF4096,Flat"]}, ValueError, "at least 4096 training vectors"),
        ({"indexes": ["IVF4,PQ4"], "metrics": ["L1"]}, ValueError, "METRIC_L1"),
        ({"method": "nothing"}, FileNotFoundError, "no features"),
        ({"bogus_param": 1}, TypeError, "unknown parameters"),
    ],
)
def test_errors_before_any_work(stores, tmp_path, kw, error, match):
    with pytest.raises((error, ValueError), match=match):
        _run(stores, tmp_path, **kw)
    assert not (tmp_path / "R" / "exp").exists()


def test_dimension_method_and_empty_mismatch(tmp_path):
    root = make_stores(tmp_path / "F")
    path = store_path("demo_negatives", "feat", root)
    path.unlink()
    write_features(path, ["demo_negatives/1_a"], np.zeros((1, 8), "f4"), method="feat")
    with pytest.raises(ValueError, match="dim=8 but database 'demo_[a-z]+' has dim=16"):
        _run(root, tmp_path)
    path.unlink()
    write_features(path, ["demo_negatives/1_a"], np.zeros((1, 16), "f4"), method="other")
    with pytest.raises(ValueError, match="holds method 'other', not 'feat'"):
        _run(root, tmp_path)
    root2 = make_stores(tmp_path / "F2")
    for name in DATABASE:
        store_path(name, "feat", root2).unlink()
        write_features(store_path(name, "feat", root2), [], np.zeros((0, 16), "f4"), method="feat")
    with pytest.raises(ValueError, match="holds no feature rows"):
        _run(root2, tmp_path)
    assert not (tmp_path / "R").exists()


def test_nan_features_name_their_ids(tmp_path):
    root = make_stores(tmp_path / "F")
    with h5py.File(store_path("demo_distractors", "feat", root), "r+") as f:
        f["features"][7, 3] = np.nan
    with pytest.raises(ValueError, match="demo_distractors/7"):
        _run(root, tmp_path)
    assert not (tmp_path / "R" / "exp" / "results.json").exists()


def test_failing_configuration_is_recorded_and_skipped(stores, tmp_path):
    # PQ with 8 bits per code needs 256 training points; the database has 120: faiss raises
    res = _run(stores, tmp_path, indexes=["Flat", "IVF2,PQ4"], metrics=["L2"])
    assert [r["key"] for r in res["runs"]] == ["Flat--L2"]
    assert res["errors"] and res["errors"][0]["index"] == "IVF2,PQ4"


def test_default_search_params(stores, binary_stores, tmp_path):
    params = default_search_params("feat", DATABASE, stores)
    assert params == {"indexes": ["Flat", "IVF3,Flat"], "metrics": ["cosine"], "nprobes": [1, 2, 3]}
    params = default_search_params("hash", DATABASE, binary_stores)
    assert params["indexes"] == ["BFlat", "BIVF3"] and params["metrics"] == ["hamming"]
    res = _run(binary_stores, tmp_path, method="hash", **params)
    assert len(res["runs"]) == 4 and not res["errors"]


def _interrupt_before_l2(stores, tmp_path, monkeypatch) -> None:
    """Run Flat with cosine then L2 and stop it (Ctrl-C) as the L2 run starts: an interrupted experiment."""
    import fast_search.experiment as E

    real = E._run_index

    def dies_on_l2(cfg, data, info, folder, factory, metric, *rest):
        if metric == "L2":
            raise KeyboardInterrupt
        return real(cfg, data, info, folder, factory, metric, *rest)

    monkeypatch.setattr(E, "_run_index", dies_on_l2)
    with pytest.raises(KeyboardInterrupt):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"])
    monkeypatch.setattr(E, "_run_index", real)


def test_resume_an_interrupted_experiment(stores, tmp_path, monkeypatch):
    _interrupt_before_l2(stores, tmp_path, monkeypatch)
    saved = json.loads((tmp_path / "R" / "exp" / "results.json").read_text())
    assert saved["complete"] is False and [r["key"] for r in saved["runs"]] == ["Flat--cosine"]
    with pytest.raises(ValueError, match=r"parameters \['ks'\] differ"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], ks=[1], resume=True)
    res = run_experiment(  # the datasets in another order: the same experiment
        "exp", "feat", DATABASE[::-1], QUERIES[::-1], indexes=["Flat"], metrics=["cosine", "L2"], ks=[1, 5],
        nprobes=[1, 4], threads=1, features_root=stores, results_root=tmp_path / "R", resume=True,
    )  # fmt: skip
    assert res["complete"] and [r["key"] for r in res["runs"]] == ["Flat--cosine", "Flat--L2"]
    assert res["runs"][0] == saved["runs"][0]
    with pytest.raises(FileExistsError, match="complete"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], resume=True)


def test_factory_vocabulary(tmp_path):
    root = make_stores(tmp_path / "F", n_distractors=300)
    indexes = ["PCA8,Flat", "HNSW8", "IVF4,PQ2x4", "OPQ2,IVF4,PQ2x4"]
    res = _run(root, tmp_path, indexes=indexes, metrics=["L2"], nprobes=[4], efsearches=[32])
    assert not res["errors"]
    assert [r["key"] for r in res["runs"]] == [
        "PCA8,Flat--L2", "HNSW8--L2--efSearch=32", "IVF4,PQ2x4--L2--nprobe=4", "OPQ2,IVF4,PQ2x4--L2--nprobe=4",
    ]  # fmt: skip
    assert res["runs"][1]["recall_vs_exact"] > 0.9
    assert res["runs"][2]["index_bytes"] < res["runs"][1]["index_bytes"]  # PQ codes are small


def test_exact_results_are_cached_and_overwrite_clears_them(stores, tmp_path, monkeypatch):
    import fast_search.experiment as E

    calls = []
    real = E.block_search

    def counting_block_search(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(E, "block_search", counting_block_search)
    _run(stores, tmp_path, indexes=["IVF4,Flat", "HNSW8"], metrics=["L2"])
    assert len(calls) == 1  # computed once, then read from the cache for the second index
    cache = tmp_path / "R" / "exp" / "cache" / "exact_L2.npz"
    cache.write_bytes(cache.read_bytes()[:100])  # a truncated cache (a kill before atomic writes)
    res = _run(stores, tmp_path, indexes=["IVF4,Flat"], metrics=["L2"], overwrite=True)
    assert len(calls) == 2 and res["runs"][-1]["recall_vs_exact"] == pytest.approx(1.0)
    assert np.load(cache)["I"].shape[0] == 46  # cleared by --overwrite, then written whole again


def test_damaged_exact_cache_is_recomputed(stores, tmp_path):
    from fast_search.results import load_exact

    cache = tmp_path / "exact_L2.npz"
    cache.write_bytes(b"PK\x03\x04 truncated")
    assert load_exact(cache, "fp", 46, 1) is None


def test_queries_without_negatives(stores, tmp_path):
    from fast_search import process_experiment

    res = run_experiment(
        "pos", "feat", DATABASE, ["demo_attacks"], ks=[1], features_root=stores, results_root=tmp_path
    )
    run = res["runs"][0]
    assert res["data"]["n_negative"] == 0
    assert run["roc_auc"] is None and run["recall_at_fpr_1pct"] is None and run["recall_at_k"]["1"] > 0.9
    names = {p.name for p in process_experiment("pos", tmp_path)}
    assert "roc.png" not in names and "time_recall.png" in names


def _tied_hash_stores(root):
    """8-bit hashes: a handful of values shared by many images, so distances tie constantly."""
    rng = np.random.default_rng(7)
    values = rng.integers(0, 256, (6, 1), dtype=np.uint8)
    orig = values[rng.integers(0, 6, 30)]
    dist = values[rng.integers(0, 6, 60)]
    att = orig ^ (rng.random((30, 8)) < 0.1).astype(np.uint8).dot(1 << np.arange(8)).astype(np.uint8)[:, None]
    neg = values[rng.integers(0, 6, 10)]
    kw = {"method": "h", "binary": True, "dim": 8}
    write_features(
        store_path("demo_original", "h", root), [f"demo_original/{i}" for i in range(30)], orig, **kw
    )
    write_features(
        store_path("demo_distractors", "h", root), [f"demo_distractors/{i}" for i in range(60)], dist, **kw
    )
    write_features(
        store_path("demo_attacks", "h", root), [f"demo_attacks/{i}_a" for i in range(30)], att, **kw
    )
    write_features(
        store_path("demo_negatives", "h", root), [f"demo_negatives/{99 + i}_a" for i in range(10)], neg, **kw
    )
    return root


def test_results_do_not_depend_on_the_order_of_datasets(tmp_path):
    root = _tied_hash_stores(tmp_path / "F")
    kw = {"indexes": ["BFlat", "BIVF2"], "metrics": ["hamming"], "ks": [1, 3], "nprobes": [1], "threads": 1}
    kw.update(features_root=root, results_root=tmp_path / "R")
    a = run_experiment("a", "h", DATABASE, QUERIES, **kw)
    b = run_experiment("b", "h", DATABASE[::-1], QUERIES[::-1], **kw)
    skip = {"train_time_s", "add_time_s", "search_time_s", "queries_per_s"}
    for ra, rb in zip(a["runs"], b["runs"], strict=True):
        assert {k: v for k, v in ra.items() if k not in skip} == {
            k: v for k, v in rb.items() if k not in skip
        }
    assert a["runs"][0]["recall_at_k"]["1"] < 1.0  # ties count against the query


def test_search_time_improvements_are_their_own_rows(stores, tmp_path):
    W = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 16)))[0].astype("f4")  # a rotation
    np.savez(tmp_path / "adapt.npz", weight=W)
    background = np.random.default_rng(1).normal(size=(30, 16)).astype("f4")
    write_features(store_path("bg", "feat", stores), [f"bg/{i}" for i in range(30)], background, method="feat")
    res = _run(
        stores, tmp_path, indexes=["Flat"], metrics=["cosine"], query_expansion=2, dba=2,
        background=["bg"], adaptation=str(tmp_path / "adapt.npz"),
    )  # fmt: skip
    keys = [r["key"] for r in res["runs"]]
    assert keys == [
        "Flat--cosine", "Flat--cosine--aqe", "Flat--cosine--dba", "Flat--cosine--dba+aqe", "Flat--cosine--adapt",
        "Flat--cosine--adapt+aqe", "Flat--cosine--snorm", "Flat--cosine--aqe+snorm", "Flat--cosine--dba+snorm",
        "Flat--cosine--dba+aqe+snorm", "Flat--cosine--adapt+snorm", "Flat--cosine--adapt+aqe+snorm",
    ]  # fmt: skip
    runs = {r["key"]: r for r in res["runs"]}
    plain, adapted, normed = runs["Flat--cosine"], runs["Flat--cosine--adapt"], runs["Flat--cosine--snorm"]
    assert adapted["recall_at_k"] == pytest.approx(plain["recall_at_k"])  # a rotation keeps cosines
    assert normed["recall_at_k"] == plain["recall_at_k"]  # a per-query shift keeps rankings...
    assert normed["threshold_at_fpr_1pct"] != plain["threshold_at_fpr_1pct"]  # ...and moves thresholds
    assert (
        runs["Flat--cosine--aqe"]["variant"] == "aqe" and runs["Flat--cosine--aqe"]["recall_vs_exact"] is None
    )


def test_resume_refuses_a_store_changed_since_the_interrupted_run(tmp_path, monkeypatch):
    """Issue 12: --resume kept neighbour positions of a 300-row database after it became 150 rows."""
    stores = make_stores(tmp_path / "F")
    _interrupt_before_l2(stores, tmp_path, monkeypatch)
    make_stores(tmp_path / "F2", n_distractors=50)  # the database shrinks: a re-extraction elsewhere, copied in
    for path in (tmp_path / "F2" / "demo_distractors").glob("*.h5"):
        os.replace(path, stores / "demo_distractors" / path.name)
    with pytest.raises(ValueError, match=r"stores \['database/demo_distractors'\] changed"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], resume=True)


def test_background_normalises_hashes_and_refuses_l2(binary_stores, stores, tmp_path):
    """Issue 21: --background did nothing for hashes (silently); now they are normalised, L2 refused."""
    rng = np.random.default_rng(1)
    write_features(store_path("bg", "hash", binary_stores), [f"bg/{i}" for i in range(30)],
                   rng.integers(0, 256, (30, 8), dtype=np.uint8), method="hash", binary=True, dim=64)  # fmt: skip
    res = _run(binary_stores, tmp_path, method="hash", indexes=["BFlat"], metrics=["hamming"], background=["bg"])
    runs = {r["key"]: r for r in res["runs"]}
    assert set(runs) == {"BFlat--hamming", "BFlat--hamming--snorm"}
    assert runs["BFlat--hamming--snorm"]["recall_at_k"] == runs["BFlat--hamming"]["recall_at_k"]
    write_features(store_path("bg", "feat", stores), [f"bg/{i}" for i in range(30)],
                   rng.normal(size=(30, 16)).astype("f4"), method="feat")  # fmt: skip
    with pytest.raises(ValueError, match="score normalisation .* defined for the metrics"):
        _run(stores, tmp_path, name="l2", indexes=["Flat"], metrics=["L2"], background=["bg"])


def _mixed_folder(root, n=20, seed=0):
    """One store holding originals and their near-copies ("mixed/o<i>", "mixed/c<i>"), and a gt.csv of pairs."""
    rng = np.random.default_rng(seed)
    orig = rng.normal(size=(n, 16)).astype("f4")
    copy = orig + 0.2 * rng.normal(size=(n, 16)).astype("f4")
    ids = [f"mixed/o{i}" for i in range(n)] + [f"mixed/c{i}" for i in range(n)] + ["mixed/lonely"]
    x = np.vstack([orig, copy, rng.normal(size=(1, 16)).astype("f4")])
    write_features(store_path("mixed", "feat", root / "F"), ids, x, method="feat")
    gt = root / "gt.csv"
    gt.write_text("".join(f"mixed/c{i},mixed/o{i}\nmixed/o{i},mixed/c{i}\n" for i in range(n)))
    return root / "F", gt


def test_a_folder_against_itself_excludes_self_matches(tmp_path):
    """Issue 21: --database mixed --queries mixed gave recall@1 0.0000, every image finding itself."""
    features, gt = _mixed_folder(tmp_path)
    res = run_experiment("self", "feat", ["mixed"], ["mixed"], ground_truth=str(gt), indexes=["Flat", "IVF2,Flat"],
                         metrics=["cosine"], ks=[1, 5], nprobes=[2], threads=1, features_root=features,
                         results_root=tmp_path / "R")  # fmt: skip
    assert res["data"]["self_matches_excluded"]["n_queries"] == 41
    assert res["data"]["n_positive"] == 40 and res["data"]["n_negative"] == 1  # "lonely" has no pair
    for run in res["runs"]:
        assert run["recall_at_k"]["1"] == 1.0, run["key"]  # each copy finds its original, not itself
    with np.load(tmp_path / "R" / "self" / "runs" / "Flat--cosine.npz") as z:
        ids = z["I"]
    assert not (ids == np.arange(41)[:, None]).any()  # no query among its own results
    assert ids.shape == (41, 6) and (ids >= 0).all()


# ---- issue 21 (item 8): metrics by kind of negative; a background never shares the negatives' generator ----


def _kind_stores(root, n_each=12):
    """conftest's stores with negatives of two kinds: 12 photo crops and 12 procedural pictures."""
    make_stores(root, n_negatives=1)
    rng = np.random.default_rng(5)
    database = rng.normal(size=(1, 16)).astype("f4")
    photo = np.repeat(database, n_each, 0) + 0.01 * rng.normal(size=(n_each, 16)).astype("f4")
    procedural = rng.normal(size=(n_each, 16)).astype("f4")
    ids = [f"demo_negatives/flower-crop{i}" for i in range(n_each)] + [f"demo_negatives/procedural{i}" for i in range(n_each)]
    write_features(store_path("demo_negatives", "feat", root), ids, np.concatenate([photo, procedural]),
                   method="feat", overwrite=True)
    return root


def test_every_measure_is_reported_by_negative_kind(tmp_path):
    from fast_search import metrics as M
    from fast_search.results import score

    stores = _kind_stores(tmp_path / "F")
    res = _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine"])
    run = res["runs"][0]
    kinds = run["by_negative_kind"]
    assert sorted(kinds) == ["photo", "procedural"] and kinds["photo"]["n_negative"] == 12
    for kind in kinds.values():  # positives are the same queries: recall@k does not move
        assert kind["recall_at_k"] == run["recall_at_k"]
        assert kind["recall_at_fpr_1pct"] is None  # 12 negatives cannot carry a 1 % FPR figure
    folder = tmp_path / "R" / "exp"
    with np.load(folder / "ids.npz") as z, np.load(folder / run["file"]) as r:
        queries, positives, D, I = z["query_ids"], z["positives"], r["D"], r["I"]  # noqa: E741
    rows = np.array([not q.startswith("demo_negatives/procedural") for q in queries])
    expected = score(D[rows], I[rows], positives[rows], [1, 5])
    assert kinds["photo"]["micro_ap"] == pytest.approx(expected["micro_ap"])
    assert kinds["photo"]["roc_auc"] == pytest.approx(M.roc_auc(D[rows], I[rows], positives[rows]))


def test_score_normalisation_background_of_the_negatives_generator_is_refused(tmp_path):
    stores = _kind_stores(tmp_path / "F")
    bg = np.random.default_rng(1).normal(size=(30, 16)).astype("f4")
    write_features(store_path("bgproc", "feat", stores), [f"bgproc/procedural{i}" for i in range(30)], bg, method="feat")
    with pytest.raises(ValueError, match=r"background \['bgproc'\] shares generator\(s\) procedural with negative"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine"], background=["bgproc"])
    write_features(store_path("bgtile", "feat", stores), [f"bgtile/tower-tile{i}" for i in range(30)], bg, method="feat")
    res = _run(stores, tmp_path, name="ok", indexes=["Flat"], metrics=["cosine"], background=["bgtile"])
    assert [r["variant"] for r in res["runs"]] == ["", "snorm"]
