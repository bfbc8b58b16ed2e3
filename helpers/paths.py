"""Where generated data lives. The one place that names the repository's top-level folders.

Every script and package takes a root argument defaulting to these, so tests can point them
at a temporary folder; nothing else hard-codes `Datasets/`, `Features/` or `Results/`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Parent of the four data folders: the repository, or ``$IMSIM_DATA_ROOT`` when set (data kept
#: elsewhere; the tests of the docs and notebooks point it at a small demo set).
DATA_ROOT = Path(os.environ.get("IMSIM_DATA_ROOT") or REPO_ROOT)
DATASETS_DIR = DATA_ROOT / "Datasets"
FEATURES_DIR = DATA_ROOT / "Features"
RESULTS_DIR = DATA_ROOT / "Results"
CHECKPOINTS_DIR = DATA_ROOT / "Checkpoints"
