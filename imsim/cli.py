"""The command line: one `imsim` command with subcommands, and one console command per subcommand.

    imsim extract --method dhash --folder my_photos        # = imsim-extract ..., python extract_features.py ...
    imsim search mine --database my_originals --queries my_copies --targets my_copies=my_originals --extract
    imsim --root /data/imsim duplicates my_photos          # data under /data/imsim instead of the working dir

Generated data (Datasets/, Features/, Results/, Checkpoints/) goes under the data root: the working
directory, ``$IMSIM_DATA_ROOT``, or ``imsim --root DIR`` (helpers/paths.py). Each subcommand is a module
with ``main(argv) -> int``; nothing heavy is imported before its arguments are checked.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

#: subcommand -> (module with main(argv), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("imsim.commands.extract_features", "features of image folders into resumable stores"),
    "search": ("imsim.commands.search_experiment", "a search experiment: recall, mAP, FPR per index"),
    "process": ("imsim.commands.process", "figures and tables of an experiment's results"),
    "duplicates": ("fast_search.duplicates_cli", "near-duplicate groups of one folder"),
    "app": ("imsim.commands.search_app", "the reverse image search app on a collection"),
    "demo": ("imsim.commands.demo", "the whole job end to end on a small embedded demo set"),
}
USAGE = "usage: imsim [--root DIR] {" + ",".join(COMMANDS) + "} [args...]"


def _help() -> str:
    rows = "\n".join(f"  {name:<11} {text}   (imsim-{name})" for name, (_, text) in COMMANDS.items())
    return (f"{USAGE}\n\nImage similarity: extract, search, evaluate.\n\ncommands:\n{rows}\n\n"
            "options:\n  --root DIR   parent of Datasets/ Features/ Results/ (default: $IMSIM_DATA_ROOT or the "
            "working directory)\n\n`imsim COMMAND --help` shows a command's flags.\n")


def run_command(name: str, argv: list[str], prog: str) -> NoReturn:
    """Run subcommand `name` on `argv` as program `prog` (its messages and exit status, as a script)."""
    from helpers import cli

    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [prog, *argv]
    cli.run(module.main)


def main(argv: list[str] | None = None) -> NoReturn:
    """`imsim [--root DIR] COMMAND [args]`."""
    import argparse

    from helpers import cli

    parser = cli.ArgumentParser(prog="imsim", usage=USAGE, add_help=False)
    parser.add_argument("--root", type=cli.folder, default=None)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("command", nargs="?")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.help or args.command is None:
        print(_help())
        sys.exit(0 if args.help else 2)
    if args.command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(args.command, COMMANDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        parser.error(f"unknown command {args.command!r}; {hint}choose from {', '.join(COMMANDS)}")
    if args.root is not None:  # before any command module reads helpers.paths
        os.environ["IMSIM_DATA_ROOT"] = os.path.abspath(args.root)
    run_command(args.command, args.args, f"imsim {args.command}")


def _console(name: str):
    def entry() -> NoReturn:
        run_command(name, sys.argv[1:], f"imsim-{name}")

    entry.__doc__ = f"`imsim-{name}`: {COMMANDS[name][1]}."
    return entry


extract_command = _console("extract")
search_command = _console("search")
process_command = _console("process")
duplicates_command = _console("duplicates")
app_command = _console("app")
demo_command = _console("demo")
