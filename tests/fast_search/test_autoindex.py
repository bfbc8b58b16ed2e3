"""--indexes auto: the documented choice at several (N, d, budget) points, latency tuning, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fast_search.autoindex import (
    DIFFERENCES,
    BudgetError,
    choose_index,
    estimate_bytes,
    measure_ms,
    nb_clusters,
    parse_bytes,
    tune,
)

AUTOFAISS_KEYS = json.loads((Path(__file__).parent / "autofaiss_keys.json").read_text())["cases"]


@pytest.mark.parametrize("case", AUTOFAISS_KEYS, ids=lambda c: f"{c['n']}-{c['d']}-{c['budget']}")
def test_same_key_as_autofaiss_or_a_documented_difference(case):
    """autofaiss's get_optimal_index_keys_v2(N, d, budget)[0], recorded in autofaiss_keys.json (budgets in bytes)."""
    try:
        ours = choose_index(case["n"], case["d"], case["budget_bytes"]).factory
    except BudgetError:
        ours = "BudgetError"
    assert ours == case["ours"]
    if ours == case["autofaiss"]:
        assert "differs" not in case
    else:
        assert case["differs"] and set(case["differs"]) <= set(DIFFERENCES)
    if ours != "BudgetError":
        assert estimate_bytes(ours, case["n"], case["d"]) <= case["budget_bytes"]


def test_latency_is_measured_one_query_per_call():
    calls = []

    def search(q):
        calls.append(q.shape)

    xq = np.zeros((7, 4), np.float32)
    ms = measure_ms(search, xq, timeout_s=10.0, max_queries=20)
    assert calls == [(1, 4)] * 20 and ms >= 0  # cycles through the 7 queries, one per call
    calls.clear()
    measure_ms(lambda q: (calls.append(q.shape), __import__("time").sleep(0.02)), xq, timeout_s=0.05)
    assert 1 <= len(calls) <= 4  # stops at the time limit


def test_never_slower_than_exact_search():
    """The limit is min(max_query_ms, exact search's latency); slower even at its fastest: Flat instead."""
    state = {}
    fake_ms = lambda xq: 0.5 + 0.25 * state["efSearch"]  # noqa: E731
    choice = choose_index(5_000, 128, "4GB")  # HNSW15
    tune(choice, lambda name, value: state.__setitem__(name, value), None, [[0.0]], 10.0, latency=fake_ms,
         exact_ms=5.0)
    assert (choice.factory, choice.param, choice.value) == ("HNSW15", "efSearch", 18)  # 0.5 + 0.25 * 18 = 5
    assert choice.query_ms <= choice.exact_ms == 5.0 and choice.met
    choice = choose_index(5_000, 128, "4GB")
    tune(choice, lambda name, value: state.__setitem__(name, value), None, [[0.0]], 10.0, latency=fake_ms,
         exact_ms=1.0)  # even efSearch=16 takes 4.5 ms
    assert (choice.factory, choice.replaced, choice.param, choice.value) == ("Flat", "HNSW15", None, None)
    assert choice.query_ms == 1.0 and choice.met and "replaced by Flat" in choice.reason


@pytest.mark.parametrize(
    "n,d,budget,expected",
    [
        (500, 128, "4GB", "Flat"),  # small N: exact
        (5_000, 128, "4GB", "HNSW15"),  # too few vectors for a quantizer
        (1_000_000, 256, "4GB", "HNSW32"),  # M = floor((4e9 / 4e6 - 256) / 2) = 372, capped at 32
        (50_000, 64, "20MB", "HNSW18"),  # M = floor((20e6 / 2e5 - 64) / 2) = 18
        (50_000, 64, "10MB", "OPQ48_96,IVF1024_HNSW32,PQ48x8"),  # IVF1024,Flat needs 13.5 MB; m need not divide d
        (500_000, 256, "520MB", "IVF2048,Flat"),  # HNSW M = 2 < 8; IVF-Flat 518 MB fits; k ~ 4 sqrt(N) = 2828 -> 2048
        (1_000_000, 256, "1GB", "OPQ128_384,IVF16384_HNSW32,PQ128x8"),  # N >= 1M: PQ, largest m that fits
        (100_000_000, 256, "4GB", "OPQ24_168,IVF65536_HNSW32,PQ24x8"),  # PQ32 needs 4.08 GB (centroids included)
    ],
)
def test_choice_follows_autofaiss_rules(n, d, budget, expected):
    choice = choose_index(n, d, budget)
    assert choice.factory == expected
    assert choice.estimated_bytes == estimate_bytes(expected, n, d) <= parse_bytes(budget)
    assert choice.reason and json.dumps(choice.as_dict())  # recorded as is in results.json


def test_binary_and_ondisk_choices():
    assert choose_index(1000, 64, "1MB", binary=True).factory == "BFlat"
    assert choose_index(50_000, 64, "4GB", ondisk=True).factory == "IVF1024,Flat"  # only IVF memory-maps


def test_budget_too_small_names_the_smallest_index():
    with pytest.raises(BudgetError, match=r"smallest index, OPQ4_28,IVF65536_HNSW32,PQ4x8, needs about 1.22 GB"):
        choose_index(100_000_000, 256, "1GB")
    with pytest.raises(BudgetError, match="smallest index, Flat, needs about 7.68 KB"):
        choose_index(120, 16, "5KB")
    with pytest.raises(ValueError, match="4GB"):
        parse_bytes("lots")


def test_nb_clusters():
    assert nb_clusters(1_000_000) == 16_384 and nb_clusters(50_000_000) == 65_536
    assert nb_clusters(200) == 5  # at least 39 training vectors per list


def test_tune_finds_the_largest_value_under_the_latency_budget():
    choice = choose_index(500_000, 256, "520MB")  # IVF2048,Flat
    state = {}
    fake_ms = lambda xq: 0.5 + 0.25 * state["nprobe"]  # noqa: E731  latency grows with nprobe
    tune(choice, lambda name, value: state.__setitem__(name, value), None, [[0.0]], 10.0, latency=fake_ms)
    assert (choice.param, choice.value, choice.met) == ("nprobe", 38, True)  # 0.5 + 0.25 * 38 = 10
    assert state["nprobe"] == 38 and choice.query_ms == 10.0 and len(choice.tried) <= 13  # binary search
    tune(choice, lambda name, value: state.__setitem__(name, value), None, [[0.0]], 0.1, latency=fake_ms)
    assert (choice.value, choice.met) == (1, False)  # nothing is fast enough: the fastest, flagged


def test_experiment_auto_records_choice_and_meets_budget(tmp_path):
    from fast_search import run_experiment
    from tests.fast_search.conftest import DATABASE, QUERIES, make_stores

    root = make_stores(tmp_path / "Features")
    common = {"metrics": ["L2"], "ks": [1, 5], "features_root": root, "results_root": tmp_path / "R"}
    result = run_experiment("auto", "feat", DATABASE, QUERIES, indexes=["auto"], memory_budget="9KB",
                            max_query_ms=50.0, **common)
    auto = result["auto_index"]["L2"]
    assert auto["factory"] == "Flat" and "N=120 < 1,000" in auto["reason"] and auto["param"] is None
    assert auto["met"] == (auto["query_ms"] <= 50.0)
    # on disk only IVF qualifies: IVF3,Flat, nprobe tuned to the latency budget
    result = run_experiment("auto_disk", "feat", DATABASE, QUERIES, indexes=["auto"], memory_budget="9KB",
                            max_query_ms=50.0, ondisk=True, block_size=16, **common)
    auto = result["auto_index"]["L2"]
    assert auto["factory"] == "IVF3,Flat" and "IVF only" in auto["reason"]
    assert auto["param"] == "nprobe" and 1 <= auto["value"] <= 3 and auto["max_query_ms"] == 50.0
    assert auto["met"] == (auto["query_ms"] <= 50.0) and auto["tried"]
    (run,) = result["runs"]
    assert (run["index"], run["param"], run["value"]) == ("IVF3,Flat", "nprobe", auto["value"])
    with pytest.raises(BudgetError, match="too small"):
        run_experiment("tiny", "feat", DATABASE, QUERIES, indexes=["auto"], memory_budget="1KB", **common)
    assert not (tmp_path / "R" / "tiny").exists()  # refused before any work


@pytest.mark.slow
def test_experiment_auto_is_never_slower_than_exact_search(tmp_path):
    """2,000 vectors of 16 dims: HNSW15 by the rules; after tuning it is faster than Flat on the same
    queries, one per call, or it was replaced by Flat (whose recall it cannot beat)."""
    from fast_search import run_experiment
    from tests.fast_search.conftest import DATABASE, QUERIES, make_stores

    root = make_stores(tmp_path / "Features", n_distractors=1980)
    result = run_experiment("auto", "feat", DATABASE, QUERIES, indexes=["auto"], metrics=["L2"], ks=[1, 5],
                            memory_budget="4GB", max_query_ms=10.0, features_root=root, results_root=tmp_path / "R")
    auto = result["auto_index"]["L2"]
    assert auto["exact_ms"] is not None and auto["exact_ms"] > 0
    if auto["factory"] == "Flat":
        assert auto["replaced"] == "HNSW15" and auto["query_ms"] == auto["exact_ms"]
    else:
        assert auto["factory"] == "HNSW15" and auto["query_ms"] <= auto["exact_ms"]
    (run,) = result["runs"]
    assert run["index"] == auto["factory"]
