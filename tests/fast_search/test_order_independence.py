"""Results never depend on input order or file names: permuted store rows and renamed files give bitwise-equal metrics.

Sorting the datasets proves nothing (swapping --database/--queries is undone by the sort); this test
permutes the rows of every store and renames every file so that the sort order of the ids changes,
then requires every measure of every run (hashes and float features, Flat and IVF, in memory and
streamed) to be bitwise equal. Index training sees its vectors in an order defined by their content
(`fast_search.index.content_order`), and a streamed training sample is chosen by content too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extractor.store import store_path, write_features
from fast_search import run_experiment

from .conftest import DATABASE, QUERIES

TIMINGS = {"train_time_s", "add_time_s", "search_time_s", "queries_per_s", "file", "index_bytes", "sha256"}  # plus the run file and its checksum (zip bytes, not metrics)


def _vectors(binary: bool, rng: np.random.Generator, n_orig=40, n_dist=300, copies=2, n_neg=12, dim=64):
    if binary:
        orig = rng.integers(0, 256, (n_orig, dim // 8), dtype=np.uint8)
        flips = rng.random((n_orig * copies, dim)) < 0.08
        att = np.packbits(np.unpackbits(np.repeat(orig, copies, 0), axis=1) ^ flips, axis=1)
        return orig, rng.integers(0, 256, (n_dist, dim // 8), dtype=np.uint8), att, rng.integers(
            0, 256, (n_neg, dim // 8), dtype=np.uint8)
    orig = rng.normal(size=(n_orig, 16)).astype("f4")
    att = np.repeat(orig, copies, 0) + 0.5 * rng.normal(size=(n_orig * copies, 16)).astype("f4")
    return orig, rng.normal(size=(n_dist, 16)).astype("f4"), att, rng.normal(size=(n_neg, 16)).astype("f4")


def _write(root: Path, method: str, binary: bool, shuffled: bool) -> Path:
    """The same vectors under names "i" (as given) or "z<999 - i>" (reversed sort order), rows permuted."""
    orig, dist, att, neg = _vectors(binary, np.random.default_rng(0))
    copies = len(att) // len(orig)
    name = (lambda i: f"z{999 - i:03d}") if shuffled else (lambda i: f"{i:03d}")
    sets = {
        "demo_original": ([f"demo_original/{name(i)}" for i in range(len(orig))], orig),
        "demo_distractors": ([f"demo_distractors/d{name(i)}" for i in range(len(dist))], dist),
        "demo_attacks": ([f"demo_attacks/{name(i // copies)}_attack{i % copies}" for i in range(len(att))], att),
        "demo_negatives": ([f"demo_negatives/n{name(i)}_attack0" for i in range(len(neg))], neg),
    }
    rng = np.random.default_rng(1)
    kw = {"method": method, "binary": binary, **({"dim": 64} if binary else {})}
    for dataset, (ids, x) in sets.items():
        order = rng.permutation(len(ids)) if shuffled else np.arange(len(ids))
        write_features(store_path(dataset, method, root), [ids[i] for i in order], x[order], **kw)
    return root


def _scores(res: dict) -> dict:
    return {r["key"]: {k: v for k, v in r.items() if k not in TIMINGS} for r in res["runs"]}


@pytest.mark.parametrize(
    ("method", "binary", "indexes", "metric"),
    [("feat", False, ["Flat", "IVF8,Flat"], "cosine"), ("hash", True, ["BFlat", "BIVF8"], "hamming")],
)
@pytest.mark.parametrize("block_size", [None, 64])
def test_permuted_rows_and_renamed_files_give_bitwise_equal_metrics(tmp_path, method, binary, indexes, metric,
                                                                    block_size):  # fmt: skip
    results = []
    for shuffled in (False, True):
        features = _write(tmp_path / f"F{shuffled}", method, binary, shuffled)
        res = run_experiment(
            f"e{shuffled}", method, DATABASE, QUERIES, indexes=indexes, metrics=[metric], ks=[1, 5],
            nprobes=[1, 2], threads=1, block_size=block_size, features_root=features, results_root=tmp_path / "R",
        )  # fmt: skip
        results.append(json.loads(json.dumps(_scores(res))))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == results[1][key], key  # bitwise: == on every float
    ivf = [k for k in results[0] if "IVF" in k and "nprobe=1" in k]
    assert ivf and results[0][ivf[0]]["recall_vs_exact"] < 1.0  # the IVF rows are approximate: a real test
