"""The commands behind the root scripts and `imsim <command>` (imsim/cli.py): one module each, with
its editable defaults and ``main(argv) -> int``."""
