"""The reverse image search app (http://127.0.0.1:7860).

The command lives in imsim/commands/search_app.py (its editable defaults too); this file keeps
`python search_app.py ...` working from a clone. Installed: `imsim app ...` or `imsim-app ...`.
"""

import sys

from imsim.commands import search_app as _command

if __name__ == "__main__":
    from helpers import cli

    cli.run(_command.main)
else:  # `import search_app` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
