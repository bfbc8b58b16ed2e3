"""Fast start: `--help` of the root scripts and `import fast_search` / `import extractor` load no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Scripts whose --help must not import torch (finetune.py and train_adaptation.py train torch modules
#: and define their flags from them).
LIGHT_SCRIPTS = [
    "extract_features.py", "search_experiment.py", "process.py", "explore_neighbors.py", "hierarchical.py",
    "dbscan.py", "evaluate_finetuning.py", "demo.py", "ilias_extract.py",
]

_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
print(sorted(m for m in ("torch", "torchvision", "faiss", "matplotlib") if m in sys.modules))
"""


def _run(args: list[str]) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("script", LIGHT_SCRIPTS)
def test_help_does_not_import_torch(script):
    loaded = _run(["-c", _PROBE, script])
    assert "torch" not in loaded, f"{script} --help imported {loaded}"


def test_packages_import_without_torch():
    code = ("import sys, fast_search, extractor, clustering, extractor.store; "
            "print(sorted(m for m in ('torch', 'faiss', 'matplotlib') if m in sys.modules))")
    assert _run(["-c", code]) == "[]"


def test_lazy_names_resolve():
    import extractor
    import fast_search

    assert callable(extractor.load_features) and callable(fast_search.run_experiment)
    assert set(extractor.__all__) <= set(dir(extractor))
    with pytest.raises(AttributeError):
        _ = fast_search.no_such_name


@pytest.mark.parametrize("script", ["finetune.py", "train_adaptation.py"])
def test_finetuning_scripts_help_without_torch(script):
    loaded = _run(["-c", _PROBE, script])
    assert "torch" not in loaded, f"{script} --help imported {loaded}"


def test_finetuning_names_match_their_modules():
    from finetuning import adaptation, copy_policy, names, training

    assert names.AUGMENTATION_STEPS == copy_policy.STEP_NAMES
    assert adaptation.MODELS == names.ADAPTATION_MODELS and training.OPTIMIZERS == names.OPTIMIZERS


def test_duplicates_command_help_without_torch():
    code = ("import runpy, sys\nsys.argv = ['duplicates', '--help']\ntry:\n"
            "    runpy.run_module('fast_search.duplicates', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'faiss') if m in sys.modules))")
    assert _run(["-c", code]) == "[]"


def test_hash_extraction_never_imports_torch(tmp_path):
    """`create_extractor('dhash')` and a whole hash extraction (API and command) load no torch: a hash command
    pays numpy, PIL and h5py, not 4 s of torch start-up (issue 26.1)."""
    from helpers.synthetic import synthetic_image

    for i in range(3):
        synthetic_image(i).save(tmp_path / f"{i}.jpg")
    code = ("import sys\nfrom extractor import create_extractor, extract_dataset\n"
            f"ext = create_extractor('dhash')\nextract_dataset(ext, {str(tmp_path)!r}, features_root={str(tmp_path / 'F')!r}, "
            "workers=0, progress=False)\n"
            "sys.argv = ['imsim-extract', '--method', 'phash', '--folder', "
            f"{str(tmp_path)!r}, '--features-root', {str(tmp_path / 'G')!r}]\n"
            "from imsim.commands.extract_features import main\nassert main() == 0\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'faiss') if m in sys.modules))")
    assert _run(["-c", code]) == "[]"
    assert (tmp_path / "F" / tmp_path.name / "dhash.h5").is_file() and (tmp_path / "G" / tmp_path.name / "phash.h5").is_file()
