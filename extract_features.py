"""Extract features of images into Features/<dataset>/<method>.h5 (resumable, shardable).

The command lives in imsim/commands/extract_features.py; this file keeps
`python extract_features.py ...` working from a clone. Installed: `imsim extract ...` or `imsim-extract ...`.
"""

import sys

from helpers.images import DEFAULT_MAX_PIXELS
from helpers.paths import DATASETS_DIR, FEATURES_DIR
from imsim.commands import extract_features as _command

# ---- editable defaults: `python extract_features.py` runs with these (flags override them) ----
METHODS = ["dhash"]
DATASETS = ["demo_original", "demo_distractors", "demo_attacks", "demo_negatives"]  # after `make demo`
BATCH_SIZE = 64
WORKERS = 2
DEVICE = "cpu"
PRECISION = "auto"  # auto: fp32 on a CPU, bf16/fp16 AMP on CUDA; bf16 on a CPU only when asked (recorded)
LIMIT = None
WEIGHTS = "DEFAULT"  # torchvision weights tag, a .pth path, or "none" (random init)
EXECUTOR = "local"  # local: DataLoader workers in this process; ray: Ray Data (see scaleout/)
RAY_ADDRESS = None  # None: start a local Ray; "host:port" / "ray://host:port" / "auto": join a cluster
RAY_SHARDS = None  # output shard files on Ray (None: one per 50,000 images)
FEATURES_ROOT = FEATURES_DIR
DATASETS_ROOT = DATASETS_DIR
MAX_PIXELS = DEFAULT_MAX_PIXELS  # larger images are skipped as possible decompression bombs


if __name__ == "__main__":
    from imsim.commands import run_script

    run_script(_command, globals())
else:  # `import extract_features` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
