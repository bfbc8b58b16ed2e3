"""Damaged results files are named, never read as other numbers; a killed --overwrite leaves the old
complete experiment (process.py and --resume agree on it)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from fast_search import explore_neighbors, process_experiment
from tests.fast_search.test_experiment import _run

ROOT = Path(__file__).resolve().parents[2]


def _script(script: str, *argv: str) -> tuple[int, str]:
    """Run a root script in process; (exit status, stderr)."""
    import contextlib
    import io

    err, old = io.StringIO(), sys.argv
    sys.argv = [script, *argv]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as e:
        return e.code, err.getvalue()
    finally:
        sys.argv = old
    return 0, err.getvalue()


@pytest.mark.parametrize("which", ["run", "ids"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_a_damaged_results_file_is_named_in_one_line(stores, tmp_path, which, damage):
    res = _run(stores, tmp_path, indexes=["Flat"], metrics=["L2"])
    folder = tmp_path / "R" / "exp"
    target = folder / (res["runs"][0]["file"] if which == "run" else "ids.npz")
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # inside the arrays: a zip CRC would not always say so
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) // 3]))
    else:
        target.unlink()
    for script in ("process.py", "explore_neighbors.py"):
        code, err = _script(script, "exp", "--results-root", str(tmp_path / "R"))
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (script, err)
        assert target.name in lines[0] and "--overwrite" in lines[0], lines[0]
    with pytest.raises(ValueError, match=target.name):
        explore_neighbors("exp", results_root=tmp_path / "R", datasets_root=tmp_path)


def test_a_killed_overwrite_keeps_the_old_complete_experiment(stores, tmp_path, monkeypatch):
    import fast_search.experiment as E

    first = _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"])
    folder = tmp_path / "R" / "exp"
    real = E._run_index

    def dies_on_l2(cfg, data, info, folder, factory, metric, *rest):
        if metric == "L2":
            raise KeyboardInterrupt
        return real(cfg, data, info, folder, factory, metric, *rest)

    monkeypatch.setattr(E, "_run_index", dies_on_l2)
    with pytest.raises(KeyboardInterrupt):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], overwrite=True)
    monkeypatch.setattr(E, "_run_index", real)
    kept = json.loads((folder / "results.json").read_text())
    assert kept == json.loads(json.dumps(first)) and kept["complete"]
    assert process_experiment("exp", tmp_path / "R")  # every run file is still there
    with pytest.raises(FileExistsError, match="complete"):
        _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], resume=True)
    again = _run(stores, tmp_path, indexes=["Flat"], metrics=["cosine", "L2"], overwrite=True)
    assert again["complete"] and len(again["runs"]) == 2
    assert sorted(p.name for p in (tmp_path / "R").iterdir()) == ["exp"]


def test_a_swap_killed_between_its_renames_is_finished_by_the_next_run(stores, tmp_path):
    from fast_search.experiment import recover_experiment

    _run(stores, tmp_path, indexes=["Flat"], metrics=["L2"])
    folder = tmp_path / "R" / "exp"
    folder.rename(folder.parent / ".exp.old")  # the first rename done, the second not
    recover_experiment(folder)
    assert (folder / "results.json").is_file() and not (folder.parent / ".exp.old").exists()
