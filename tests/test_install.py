"""The package as a user installs it: the wheel in a fresh venv, its console commands, data under the
working directory; the dependency declarations in one place (pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import synthetic_image

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["imsim", "imsim-extract", "imsim-search", "imsim-process", "imsim-duplicates", "imsim-app", "imsim-demo"]
_SKIP = shutil.ignore_patterns(".git", ".venv", "Datasets", "Features", "Results", "Checkpoints", "build", "dist",
                               "*.egg-info", "__pycache__", "site", ".pytest_cache", ".ruff_cache")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH (the installed package must stand alone)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMSIM_DATA_ROOT")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding only the built wheel; the heavy dependencies (torch...) are this environment's,
    seen through a .pth line, so nothing is downloaded."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_SKIP)  # build from a copy: no build/ or egg-info in the checkout
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True)
    wheel = next((tmp / "dist").glob("image_similarity-*.whl"))
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, capture_output=True, text=True)
    purelib = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "_shared_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


@pytest.mark.slow
def test_wheel_installs_and_its_commands_run(venv, tmp_path):
    bin_dir = venv / "bin"
    for command in COMMANDS:
        out = subprocess.run([str(bin_dir / command), "--help"], cwd=tmp_path, env=_clean_env(), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0 and "usage" in out.stdout.lower(), (command, out.stderr[-2000:])
    where = subprocess.run([str(bin_dir / "python"), "-c", "import extractor; print(extractor.__file__)"], cwd=tmp_path,
                           env=_clean_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert str(venv) in where and str(ROOT) not in where  # the wheel's copy, not this checkout

    photos = tmp_path / "my photos"
    photos.mkdir()
    for i in range(4):
        synthetic_image(i).save(photos / f"img{i}.jpg")
    out = subprocess.run([str(bin_dir / "imsim-extract"), "--method", "dhash", "--folder", "my photos"], cwd=tmp_path,
                         env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "Features" / "my photos" / "dhash.h5").is_file()  # under the working directory

    elsewhere = tmp_path / "data"
    out = subprocess.run([str(bin_dir / "imsim"), "--root", str(elsewhere), "extract", "--method", "ahash", "--folder",
                          str(photos)], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (elsewhere / "Features" / "my photos" / "ahash.h5").is_file()

    bad = subprocess.run([str(bin_dir / "imsim-extract"), "--batch-size", "0"], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("imsim-extract: error: argument --batch-size")


def test_imsim_command_dispatches_and_refuses_unknown_commands(tmp_path):
    env = _clean_env(PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "imsim", "extrakt"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'extract'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "imsim", "--root", str(tmp_path / "r"), "search", "--help"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: imsim search")


def test_dependencies_are_declared_once_in_pyproject():
    """requirements*.txt only install the project (with extras): a dependency has one place, pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"app", "ray", "convert", "dev"} <= set(project["optional-dependencies"])
    assert any(d.startswith("torch>=") for d in project["dependencies"])
    for path in sorted(ROOT.glob("requirements*.txt")):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            assert not line or line.startswith("-e ."), (
                f"{path.name}: {line!r}: declare dependencies in pyproject.toml ([project] dependencies or an extra)")


def test_console_commands_name_existing_functions():
    import importlib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(scripts) == sorted(COMMANDS)
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def _readme_commands(heading: str) -> list[list[str]]:
    """The `imsim ...` command lines of the first bash block under `heading` in README.md (comments dropped)."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text[text.index(heading):], re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip().startswith("imsim ")]


def _own_folders(where: Path, n: int = 12) -> None:
    """my_originals/ and my_copies/ (two edited copies of each original, named <original stem>_<edit>.jpg)."""
    (where / "my_originals").mkdir(parents=True)
    (where / "my_copies").mkdir()
    for i in range(n):
        image = synthetic_image(i, (160, 120))
        image.save(where / "my_originals" / f"photo{i}.jpg", quality=95)
        image.resize((120, 90)).save(where / "my_copies" / f"photo{i}_small.jpg", quality=80)
        image.crop((4, 3, 156, 117)).save(where / "my_copies" / f"photo{i}_crop.jpg", quality=70)


@pytest.mark.slow
def test_readme_own_folders_run_as_written(tmp_path):
    """README's "Evaluate a descriptor on your own folders", command by command, in a working directory outside
    the clone: features, results and figures land there, not in the clone."""
    import json

    commands = _readme_commands("### 1. Evaluate a descriptor on your own folders")
    assert [c[:2] for c in commands] == [["imsim", "extract"], ["imsim", "search"], ["imsim", "process"]]
    work = tmp_path / "work"
    _own_folders(work)
    env = _clean_env(PYTHONPATH=str(ROOT))
    for command in commands:
        out = subprocess.run([sys.executable, "-m", "imsim", *command[1:]], cwd=work, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, (command, out.stderr[-3000:])
    assert (work / "Features" / "my_originals" / "phash.h5").is_file()
    results = json.loads((work / "Results" / "mine" / "results.json").read_text())
    assert results["data"]["n_positive"] == 24
    assert (work / "Results" / "mine" / "summary.md").is_file()
    assert not (ROOT / "Results" / "mine").exists()


@pytest.mark.slow
def test_search_takes_folder_paths_and_extracts_what_is_missing(tmp_path):
    """`--database ../my_originals --extract` from another folder: stores named after the folders, made on demand."""
    _own_folders(tmp_path)
    (tmp_path / "run").mkdir()
    env = _clean_env(PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "imsim", "search", "paths", "--method", "dhash", "--indexes", "BFlat", "--metrics",
            "hamming", "--database", "../my_originals", "--queries", "../my_copies",
            "--targets", "../my_copies=../my_originals"]
    out = subprocess.run(args, cwd=tmp_path / "run", env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "--extract" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*args, "--extract"], cwd=tmp_path / "run", env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "Features" / "my_copies" / "dhash.h5").is_file()
    assert (tmp_path / "run" / "Results" / "paths" / "results.json").is_file()
