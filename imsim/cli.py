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
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--root"] or (args and args[0].startswith("--root=")):
        root = args[0].partition("=")[2] if "=" in args[0] else (args[1] if len(args) > 1 else "")
        args = args[1:] if "=" in args[0] else args[2:]
        if not root or (os.path.exists(root) and not os.path.isdir(root)):
            print(f"imsim: error: argument --root: expected a folder, got {root!r} (see --help)", file=sys.stderr)
            sys.exit(2)
        os.environ["IMSIM_DATA_ROOT"] = os.path.abspath(os.path.expanduser(root))
    if not args or args[0] in ("-h", "--help"):
        print(_help())
        sys.exit(0 if args else 2)
    name = args[0]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"imsim: error: unknown command {name!r}{hint} (choose from {', '.join(COMMANDS)}; see --help)",
              file=sys.stderr)
        sys.exit(2)
    run_command(name, args[1:], f"imsim {name}")


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
