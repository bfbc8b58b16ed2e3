"""Run a search experiment -> Results/NAME/results.json.

The command lives in imsim/commands/search_experiment.py; this file keeps
`python search_experiment.py ...` working from a clone. Installed: `imsim search ...` or `imsim-search ...`.
"""

import sys

from imsim.commands import search_experiment as _command

# ---- editable defaults: `python search_experiment.py` runs with these (flags override them) ----
METHOD = "dhash"
DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]
INDEXES = ["BFlat"]  # faiss factory strings: Flat, IVF1024,Flat, HNSW32, ... (binary: BFlat, BIVF64, BHNSW32)
METRICS = ["hamming"]  # float features: L2, cosine, IP, L1; hashes: hamming
KS = [1, 5, 10]
NPROBES = [1, 4, 16, 64]
EFSEARCHES = [16, 64, 256]
THREADS = None  # None: all cores
BLOCK_SIZE = None  # stream the database in blocks of this many rows (bounded memory); None: load it whole
TARGETS = []  # ["my_copies=my_originals"]: a query folder and the dataset it copies (names follow the rule)
GROUND_TRUTH = None  # CSV of query_id,positive_id[,category] rows (several rows: several positives)
MEMORY_BUDGET = "4GB"  # --indexes auto: the chosen index must fit this
MAX_QUERY_MS = 10.0  # --indexes auto: nprobe / efSearch tuned to this many ms per query
ONDISK = False  # IVF indexes built as shards merged on disk and searched memory-mapped (larger than RAM)


if __name__ == "__main__":
    from imsim.commands import run_script

    run_script(_command, globals())
else:  # `import search_experiment` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
