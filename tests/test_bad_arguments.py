"""Every root script over a table of bad command lines: exit status 2, one line naming the flag, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """Paths the table refers to: a plain file, a folder, a text file named .pth, stores, a bad results.json."""
    from extractor.store import store_path, write_features

    tmp = tmp_path_factory.mktemp("badargs")
    (tmp / "file.txt").write_text("not a folder")
    (tmp / "fake.pth").write_text("not a torch file")
    (tmp / "dir").mkdir()
    (tmp / "R" / "empty").mkdir(parents=True)
    (tmp / "R" / "empty" / "results.json").write_text("{}")
    rng = np.random.default_rng(0)
    for name in ("db", "q"):
        write_features(store_path(name, "feat", tmp / "F"), [f"{name}/{i}" for i in range(8)],
                       rng.normal(size=(8, 4)).astype("f4"), method="feat")
        write_features(store_path(name, "bits", tmp / "F"), [f"{name}/{i}" for i in range(8)],
                       rng.integers(0, 255, (8, 8)).astype("u1"), method="bits", binary=True)
    return {"file": str(tmp / "file.txt"), "dir": str(tmp / "dir"), "fake": str(tmp / "fake.pth"),
            "F": str(tmp / "F"), "R": str(tmp / "R"), "tmp": str(tmp)}


SEARCH = ["--database", "db", "--queries", "q", "--k", "1"]

#: (script, argv with {placeholders}, text the message must contain)
CASES = [
    ("extract_features.py", ["--batch-size", "0"], "--batch-size"),
    ("extract_features.py", ["--workers", "100000"], "--workers"),
    ("extract_features.py", ["--workers", "-1"], "--workers"),
    ("extract_features.py", ["--limit", "-1"], "--limit"),
    ("extract_features.py", ["--shard", "2/2"], "--shard"),
    ("extract_features.py", ["--device", "garbage"], "--device"),
    ("extract_features.py", ["--device", "cuda:0"], "--device"),  # no GPU here (skipped where there is one)
    ("extract_features.py", ["--weights", "{fake}"], "not a torch checkpoint"),
    ("extract_features.py", ["--weights", "{tmp}/runA/missing.pth"], "--weights"),
    ("extract_features.py", ["--folder", "{file}"], "--folder"),
    ("extract_features.py", ["--features-root", "{file}"], "--features-root"),
    ("extract_features.py", ["--hash-size", "1"], "--hash-size"),
    ("extract_features.py", ["--max-pixels", "0"], "--max-pixels"),
    ("extract_features.py", ["--method", "nope", "--folder", "{dir}", "--features-root", "{F}"], "--method"),
    ("extract_features.py", ["--ray-shards", "0"], "--ray-shards"),
    ("extract_features.py", ["--executor", "spark"], "--executor"),
    ("search_experiment.py", ["x", "--memory-budget", "lots"], "--memory-budget"),
    ("search_experiment.py", ["x", "--max-query-ms", "0"], "--max-query-ms"),
    ("search_experiment.py", ["x", *SEARCH, "--method", "feat", "--indexes", "auto", "--memory-budget", "10B",
                              "--metrics", "L2", "--features-root", "{F}", "--results-root", "{R}"], "smallest index"),
    ("search_experiment.py", ["x", *SEARCH, "--method", "feat", "--indexes", "HNSW8", "--ondisk", "--metrics", "L2",
                              "--features-root", "{F}", "--results-root", "{R}"], "IVF"),
    ("search_experiment.py", ["x", "--threads", "100000"], "--threads"),
    ("search_experiment.py", ["x", "--threads", "-1"], "--threads"),
    ("search_experiment.py", ["x", "--k", "0"], "--k"),
    ("search_experiment.py", ["x", "--nprobe", "0,4"], "--nprobe"),
    ("search_experiment.py", ["x", "--block-size", "0"], "--block-size"),
    ("search_experiment.py", [".."], "name"),
    ("search_experiment.py", ["a/b"], "name"),
    ("search_experiment.py", ["x", "--results-root", "{file}"], "--results-root"),
    ("search_experiment.py", ["x", "--features-root", "{file}"], "--features-root"),
    ("search_experiment.py", ["x", "--ground-truth", "{dir}"], "--ground-truth"),
    ("search_experiment.py", ["x", *SEARCH, "--method", "feat", "--indexes", "IVF0,Flat", "--metrics", "L2",
                              "--features-root", "{F}", "--results-root", "{R}"], "IVF0,Flat"),
    ("search_experiment.py", ["x", *SEARCH, "--method", "bits", "--indexes", "BIVF0", "--metrics", "hamming",
                              "--features-root", "{F}", "--results-root", "{R}"], "BIVF0"),
    ("process.py", ["empty", "--results-root", "{R}"], "not a search experiment's results"),
    ("process.py", ["a/b"], "name"),
    ("process.py", ["x", "--results-root", "{file}"], "--results-root"),
    ("explore_neighbors.py", ["x", "--sample", "-1"], "--sample"),
    ("explore_neighbors.py", ["x", "--k", "0"], "--k"),
    ("explore_neighbors.py", ["x", "--results-root", "{file}"], "--results-root"),
    ("hierarchical.py", ["--max-grids", "-1"], "--max-grids"),
    ("hierarchical.py", ["--clusters", "0"], "--clusters"),
    ("hierarchical.py", ["--results-root", "{file}"], "--results-root"),
    ("hierarchical.py", ["--run-name", "../up"], "--run-name"),
    ("dbscan.py", ["--max-grids", "-1"], "--max-grids"),
    ("dbscan.py", ["--eps", "0"], "--eps"),
    ("dbscan.py", ["--min-samples", "0"], "--min-samples"),
    ("finetune.py", ["--name", ".."], "--name"),
    ("finetune.py", ["--name", "a/b"], "--name"),
    ("finetune.py", ["--epochs", "-1"], "--epochs"),
    ("finetune.py", ["--steps-per-epoch", "0"], "--steps-per-epoch"),
    ("finetune.py", ["--checkpoints-root", "{file}"], "--checkpoints-root"),
    ("finetune.py", ["--device", "garbage"], "--device"),
    ("finetune.py", ["--weights", "{fake}"], "--weights"),
    ("evaluate_finetuning.py", ["-k", "0"], "-k"),
    ("evaluate_finetuning.py", ["--name", "a/b"], "--name"),
    ("evaluate_finetuning.py", ["--checkpoints-root", "{file}"], "--checkpoints-root"),
    ("train_adaptation.py", ["-r", "0"], "-r"),
    ("train_adaptation.py", ["-e", "-1"], "-e"),
    ("train_adaptation.py", ["--test-split", "1.5"], "--test-split"),
    ("train_adaptation.py", ["--device", "auto"], "--device"),
    ("train_adaptation.py", ["--name", "a/b"], "--name"),
    ("demo.py", ["--distractors", "-1"], "--distractors"),
    ("demo.py", ["--results-root", "{file}"], "--results-root"),
    ("ilias_extract.py", ["--dataset_dir", "{file}", "--hdf5_dir", "{dir}"], "--dataset_dir"),
    ("ilias_extract.py", ["--dataset_dir", "{dir}", "--hdf5_dir", "{file}"], "--hdf5_dir"),
    ("ilias_extract.py", ["--dataset_dir", "{dir}", "--hdf5_dir", "{dir}", "--hdf5_name", "a/b"], "--hdf5_name"),
    ("data_retrieval/kaggle_splitter.py", ["{file}", "{file}", "{dir}"], "images"),
    ("data_retrieval/kaggle_splitter.py", ["{file}", "{dir}", "{file}"], "templates"),
    ("data_retrieval/generate_attacks.py", ["{dir}", "{file}"], "output"),
    ("data_retrieval/generate_attacks.py", ["{dir}", "{tmp}/out", "--workers", "0"], "--workers"),
    ("fast_search/duplicates.py", ["{dir}", "--max-distance", "-1"], "--max-distance"),
    ("fast_search/duplicates.py", ["{dir}", "--workers", "100000"], "--workers"),
    ("fast_search/duplicates.py", ["{dir}", "--results-root", "{file}"], "--results-root"),
    ("fast_search/duplicates.py", ["{dir}", "--precision", "1.5"], "--precision"),
    ("fast_search/duplicates.py", ["{dir}", "--keep", "newest"], "--keep"),
    ("fast_search/duplicates.py", ["{dir}", "--output", "{file}"], "--output"),
    ("fast_search/duplicates.py", ["--undo", "{tmp}/missing.json"], "--undo"),
    ("fast_search/duplicates.py", ["{dir}", "--max-distance", "3", "--precision", "0.9"], "--precision"),
    ("fast_search/thresholds.py", ["--seed", "-1"], "--seed"),
    ("data_retrieval/photo_duplicates.py", ["{tmp}/out", "--seed", "x"], "--seed"),
    ("data_retrieval/demo.py", ["--root", "{file}"], "--root"),
    ("data_retrieval/demo.py", ["--distractors", "-5"], "--distractors"),
    ("SimCLRv1/download.py", ["--root", "{file}"], "--root"),
    ("SimCLRv2/download.py", ["--root", "{file}"], "--root"),
    ("search_app.py", ["--port", "0"], "--port"),
    ("search_app.py", ["--nprobe", "0"], "--nprobe"),
    ("search_app.py", ["--features-root", "{file}"], "--features-root"),
    ("search_app.py", ["--method", "feat", "--database", "db", "--features-root", "{F}"], "cannot rebuild the extractor"),
    # issue 23, item 10: accepted without a word, or with a misleading message, before
    ("extract_features.py", ["--method", "dhash", "--pooling", "local"], "--pooling"),
    ("extract_features.py", ["--method", "dhash", "--multiscale"], "--multiscale"),
    ("extract_features.py", ["--method", "dhash", "--transforms", "RESIZE_LARGE"], "--transforms"),
    ("extract_features.py", ["--method", "dhash", "--store-fp16"], "--store-fp16"),
    ("extract_features.py", ["--method", "dhash", "--resolution", "256"], "--resolution"),
    ("extract_features.py", ["--method", "dhash", "--weights", "none"], "--weights"),
    ("extract_features.py", ["--method", "dhash", "--l2"], "--l2"),
    ("extract_features.py", ["--method", "efficientnet_lite0", "--exact"], "--exact"),
    ("extract_features.py", ["--folder", ""], "--folder"),
    ("extract_features.py", ["--dataset", "nosuch", "--features-root", "{F}", "--datasets-root", "{dir}"], "nosuch"),
    ("finetune.py", ["--aug-p", "nosuch=0.5"], "--aug-p"),
    ("finetune.py", ["--train-attacks", "nosuch"], "--train-attacks"),
    ("finetune.py", ["--crop-scale", "0.9", "0.1"], "--crop-scale"),
    ("search_experiment.py", ["x", "--targets", "a=b=c"], "--targets"),
    ("search_experiment.py", ["x", "--resume", "--overwrite"], "--resume"),
    ("search_experiment.py", ["x", *SEARCH, "--method", "feat", "--indexes", "Flat", "--metrics", "L2", "--adaptation",
                              "{file}", "--features-root", "{F}", "--results-root", "{R}"], "not an adaptation file"),
    ("explore_neighbors.py", ["x", "--threshold", "-1"], "--threshold"),
    ("ilias_extract.py", ["--dataset_dir", "{tmp}/nonexistent", "--hdf5_dir", "{dir}"], "--dataset_dir"),
    ("search_app.py", ["--max-upload-mb", "1e12"], "--max-upload-mb"),
    ("search_app.py", ["--examples", "/nonexistent"], "--examples"),
    ("search_app.py", ["--host", "999.1.1.1"], "--host"),
    ("search_app.py", ["--url-allow", "notanetwork"], "--url-allow"),
]


def _run_in_process(script: str, argv: list[str]) -> tuple[int, str]:
    """Run a script as __main__ here (fast); an uncaught exception fails the test with its traceback."""
    err = io.StringIO()
    old_argv = sys.argv
    sys.argv = [str(ROOT / script), *argv]
    code = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old_argv
    return code, err.getvalue()


@pytest.mark.parametrize(("script", "argv", "names"), CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_bad_argument_exits_2_with_one_line(env, script, argv, names):
    if "cuda" in " ".join(argv):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    argv = [a.format(**env) for a in argv]
    code, err = _run_in_process(script, argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert names in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(
    ("script", "argv"),
    [("extract_features.py", ["--batch-size", "0"]), ("search_experiment.py", ["x", "--threads", "100000"]),
     ("finetune.py", ["--name", ".."])],
)
def test_real_processes_exit_2_without_traceback(script, argv):
    out = subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


#: Forks once per case from a process that has imported nothing heavy; each child runs the script as
#: __main__ and reports its exit status, its stderr and which heavy libraries the error path loaded.
_FORKED = r"""
import contextlib, io, json, os, runpy, sys, time
cases = json.loads(sys.stdin.read())
for script, argv in cases:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        err, code, start = io.StringIO(), None, time.perf_counter()
        sys.argv = [script, *argv]
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code
        except BaseException as e:
            err.write(f"Traceback: {type(e).__name__}: {e}")
        heavy = sorted(m for m in ("torch", "torchvision", "faiss", "timm", "gradio", "ray") if m in sys.modules)
        with os.fdopen(write, "w") as f:
            json.dump({"code": code, "err": err.getvalue(), "heavy": heavy,
                       "seconds": round(time.perf_counter() - start, 3)}, f)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        print(f.read(), flush=True)
    os.waitpid(pid, 0)
"""

#: Cases whose check needs torch itself: the list of model names (torchvision's models), a store's
#: extractor rebuilt, a CUDA device asked for.
NEEDS_TORCH = ("--method nope", "cannot rebuild", "cuda:0")
#: Cases whose error comes from the data, after the stores or results are read (faiss is loaded by then).
NEEDS_FAISS = ("smallest index", "IVF", "not a search experiment's results")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per case")
def test_bad_arguments_fail_before_heavy_imports(env):
    """Every row of the table again, each in a fresh child process: exit 2, and no torch/faiss loaded
    before the error (what makes a mistyped flag answer at once instead of after seconds of imports)."""
    cases = [(str(ROOT / script), [a.format(**env) for a in argv]) for script, argv, _ in CASES]
    out = subprocess.run([sys.executable, "-c", _FORKED], input=json.dumps(cases), cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    reports = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(CASES), out.stderr[-2000:]
    for (script, argv, names), report in zip(CASES, reports, strict=True):
        case = f"{script} {' '.join(argv)}"
        if "cuda" in case and report["code"] != 2:
            continue  # this machine has a GPU
        assert report["code"] == 2 and names in report["err"], (case, report)
        allowed = set()
        if any(token in f"{case} {names}" for token in NEEDS_TORCH):
            allowed |= {"torch", "torchvision", "faiss", "gradio"}
        if any(token in names for token in NEEDS_FAISS):
            allowed.add("faiss")
        assert set(report["heavy"]) <= allowed, (case, report)


def test_duplicates_never_hints_at_a_flag_it_does_not_have(tmp_path):
    """A folder changed since its features were cached is extracted again (the store is a cache here)."""
    from tests.conftest import synthetic_image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        synthetic_image(i).save(folder / f"{i}.jpg")
    argv = [str(folder), "--features-root", str(tmp_path / "F"), "--results-root", str(tmp_path / "R"), "--workers", "0"]
    assert _run_in_process("fast_search/duplicates.py", argv)[0] == 0
    synthetic_image(9).save(folder / "9.jpg")
    code, err = _run_in_process("fast_search/duplicates.py", argv)
    assert code == 0 and "--overwrite" not in err, err
