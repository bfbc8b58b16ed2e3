"""The commands behind the root scripts and `imsim <command>` (imsim/cli.py): one module each, with
its editable defaults and ``main(argv) -> int``."""

from types import ModuleType
from typing import Any


def run_script(command: ModuleType, defaults: dict[str, Any]) -> None:
    """Run `command` from its root script: the script's editable defaults (its UPPER_CASE names)
    replace the command module's own, so editing the top of `extract_features.py` changes what it does."""
    from helpers import cli

    for key, value in defaults.items():
        if key.isupper() and hasattr(command, key):
            setattr(command, key, value)
    cli.run(command.main)
