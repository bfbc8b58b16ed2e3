"""`make demo`: the whole job end to end on the embedded demo set.

The command lives in imsim/commands/demo.py (its editable defaults too); this file keeps
`python demo.py ...` working from a clone. Installed: `imsim demo ...` or `imsim-demo ...`.
"""

import sys

from imsim.commands import demo as _command

if __name__ == "__main__":
    from helpers import cli

    cli.run(_command.main)
else:  # `import demo` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
