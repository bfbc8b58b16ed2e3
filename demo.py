"""`make demo`: the whole job end to end on the embedded demo set.

The command lives in imsim/commands/demo.py; this file keeps
`python demo.py ...` working from a clone. Installed: `imsim demo ...` or `imsim-demo ...`.
"""

import sys

from imsim.commands import demo as _command

# ---- editable defaults: `python demo.py` runs with these (flags override them) ----
DISTRACTORS = 4000  # procedural; plus 1,000 tiles of photographs (data_retrieval/demo.py)
HASHES = ["ahash", "phash", "dhash", "whash"]
NEURAL = ["efficientnet_lite0", "resnet50"]  # each used when its pretrained weights are installed / on disk
DATABASE = ["demo_original", "demo_distractors"]
QUERIES = ["demo_attacks", "demo_negatives"]
CLUSTER_DATASETS = ["demo_original", "demo_attacks"]
GALLERY_SAMPLE = 40  # successes drawn in each gallery; every failure is drawn
NPROBES = (1, 4, 16)  # IVF probes shown in the demo table (figures use the same sweep)


if __name__ == "__main__":
    from imsim.commands import run_script

    run_script(_command, globals())
else:  # `import demo` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
