"""Where generated data lives. The one place that names the data folders.

Every script and package takes a root argument defaulting to these, so tests can point them
at a temporary folder; nothing else hard-codes `Datasets/`, `Features/` or `Results/`.
The data root follows the user, never the installed package's folder: ``$IMSIM_DATA_ROOT`` when
set (``imsim --root DIR`` sets it), else the working directory the command was started in (a
clone's root for `make demo`). Model weights are not data: each framework keeps them in its own
cache (Hugging Face hub, torch.hub), SimCLR's under `CACHE_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository (or installed package) folder: code and its tests, never generated data.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Parent of the four data folders: ``$IMSIM_DATA_ROOT``, or the working directory.
DATA_ROOT = Path(os.environ.get("IMSIM_DATA_ROOT") or Path.cwd()).expanduser().absolute()
DATASETS_DIR = DATA_ROOT / "Datasets"
FEATURES_DIR = DATA_ROOT / "Features"
RESULTS_DIR = DATA_ROOT / "Results"
CHECKPOINTS_DIR = DATA_ROOT / "Checkpoints"
#: Downloaded weights that no framework caches itself (the converted SimCLR checkpoints):
#: ``$IMSIM_CACHE``, else ``$XDG_CACHE_HOME/imsim`` (``~/.cache/imsim``).
CACHE_DIR = Path(os.environ.get("IMSIM_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "imsim").expanduser()
