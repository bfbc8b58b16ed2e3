"""Run a search experiment -> Results/NAME/results.json.

The command lives in imsim/commands/search_experiment.py (its editable defaults too); this file keeps
`python search_experiment.py ...` working from a clone. Installed: `imsim search ...` or `imsim-search ...`.
"""

import sys

from imsim.commands import search_experiment as _command

if __name__ == "__main__":
    from helpers import cli

    cli.run(_command.main)
else:  # `import search_experiment` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
