"""scripts/slurm_extract.sh: array tasks write shards that read back as the single-process store."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from extractor import extract_dataset, load_features
from helpers.paths import REPO_ROOT
from tests.conftest import synthetic_image


@pytest.mark.slow  # two script runs, each a fresh Python that imports torch
def test_job_array_shards_read_as_one_store(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(7):
        synthetic_image(i, (40, 30)).save(folder / f"{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"nope")
    script = REPO_ROOT / "scripts" / "slurm_extract.sh"
    for task in range(2):  # what slurm runs for --array=0-1
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "2",
               "SLURM_SUBMIT_DIR": str(REPO_ROOT), "SLURM_CPUS_PER_TASK": "0", "PY": sys.executable}
        subprocess.run(["bash", str(script), "--method", "dhash", "--folder", str(folder),
                        "--features-root", str(tmp_path / "F")], env=env, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "F" / "imgs").glob("*.h5")) == [f"dhash.shard-{k}-of-2.h5" for k in range(2)]
    sharded = load_features("imgs", "dhash", tmp_path / "F")
    whole = load_features(extract_dataset("dhash", folder, features_root=tmp_path / "G", workers=0, progress=False))
    assert sharded.ids.tolist() == whole.ids.tolist() and len(whole) == 7
    np.testing.assert_array_equal(sharded.features, whole.features)
    missing = subprocess.run(["bash", str(script), "--method", "dhash"], capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")})
    assert missing.returncode != 0 and "sbatch --array" in missing.stderr
