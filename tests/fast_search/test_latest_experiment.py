"""process.py / explore_neighbors.py without a name: the most recent experiment, or a message saying how to make one."""

from __future__ import annotations

import os
import time

import pytest

import explore_neighbors
import process
from extractor.store import StoreError, load_features
from fast_search.results import list_experiments, resolve_experiment


def _fake(root, name, age_s):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text("{}")
    t = time.time() - age_s
    os.utime(folder / "results.json", (t, t))


def test_latest_and_listing(tmp_path):
    assert list_experiments(tmp_path / "none") == []
    _fake(tmp_path, "old", 100)
    _fake(tmp_path, "new", 10)
    (tmp_path / "not_an_experiment").mkdir()
    assert list_experiments(tmp_path) == ["new", "old"]
    assert resolve_experiment(None, tmp_path) == "new" and resolve_experiment("old", tmp_path) == "old"
    with pytest.raises(FileNotFoundError, match="make demo"):
        resolve_experiment(None, tmp_path / "none")


@pytest.mark.parametrize("script", [process, explore_neighbors])
def test_scripts_list_and_explain(script, tmp_path, capsys):
    _fake(tmp_path, "a", 5)
    assert script.main(["--list", "--results-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["a"]
    assert script.main(["--results-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "make demo" in err and len(err.strip().splitlines()) == 1


def test_missing_store_names_the_command(tmp_path):
    with pytest.raises(StoreError, match="extract_features.py --method dhash --dataset demo_original"):
        load_features("demo_original", "dhash", tmp_path)
