"""Where generated data lives. The one place that names the repository's top-level folders.

Every script and package takes a root argument defaulting to these, so tests can point them
at a temporary folder; nothing else hard-codes `Datasets/`, `Features/` or `Results/`.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = REPO_ROOT / "Datasets"
FEATURES_DIR = REPO_ROOT / "Features"
RESULTS_DIR = REPO_ROOT / "Results"
CHECKPOINTS_DIR = REPO_ROOT / "Checkpoints"
