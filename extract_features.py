"""Extract features of images into Features/<dataset>/<method>.h5 (resumable, shardable).

The command lives in imsim/commands/extract_features.py (its editable defaults too); this file keeps
`python extract_features.py ...` working from a clone. Installed: `imsim extract ...` or `imsim-extract ...`.
"""

import sys

from imsim.commands import extract_features as _command

if __name__ == "__main__":
    from helpers import cli

    cli.run(_command.main)
else:  # `import extract_features` is the command module itself (tests, notebooks); loaded from its path, a copy of its names
    globals().update({k: v for k, v in vars(_command).items() if not k.startswith("__")})
    sys.modules[__name__] = _command
