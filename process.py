"""Figures and tables of a search experiment's results.

The command lives in imsim/commands/process.py (its editable defaults too); this file keeps
`python process.py ...` working from a clone. Installed: `imsim process ...` or `imsim-process ...`.
"""

import sys

from imsim.commands import process as _command

if __name__ == "__main__":
    from helpers import cli

    cli.run(_command.main)
else:  # `import process` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
