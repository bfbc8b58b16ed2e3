"""Figures and tables of a search experiment's results.

The command lives in imsim/commands/process.py; this file keeps
`python process.py ...` working from a clone. Installed: `imsim process ...` or `imsim-process ...`.
"""

import sys

from imsim.commands import process as _command

# ---- editable defaults: `python process.py` runs with these (flags override them) ----
NAME = None  # None: the most recent experiment


if __name__ == "__main__":
    from imsim.commands import run_script

    run_script(_command, globals())
else:  # `import process` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
