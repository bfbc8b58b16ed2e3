"""The one argument-validation layer of every script: bad values get one line and exit status 2.

    from helpers import cli
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=cli.threads, default=None)
    p.add_argument("--batch-size", type=cli.int_in(1), default=64)
    p.add_argument("--results-root", type=cli.folder, default=RESULTS_DIR)
    ...
    if __name__ == "__main__":
        cli.run(main)           # errors that are the user's input: one line, exit 2, no traceback

Each type raises `argparse.ArgumentTypeError`, which `ArgumentParser` reports as
``prog: error: argument --threads: expected an integer in [1, 8], got '100000' (see --help)`` on
one line with status 2.
Nothing here imports torch at import time: ``--device`` checks CUDA only when a CUDA device is
asked for, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

#: Set (to anything) to get the full traceback instead of the one-line message.
TRACEBACK_ENV = "IMSIM_TRACEBACK"
#: Most threads / worker processes a flag accepts, per core of this machine.
PER_CORE = 4


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _fail(what: str, value: Any) -> NoReturn:
    raise argparse.ArgumentTypeError(f"{what}, got {value!r}")


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (either end open when None)."""
    span = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            _fail(f"expected an integer in {span}", text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(f"expected an integer in {span}", text)
        return value

    parse.__name__ = f"integer in {span}"
    return parse


def float_in(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] (``(lo, hi]`` with `lo_open`)."""
    span = f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            _fail(f"expected a number in {span}", text)
        bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
        if value != value or value in (float("inf"), float("-inf")) or bad_lo or (hi is not None and value > hi):
            _fail(f"expected a finite number in {span}", text)
        return value

    parse.__name__ = f"number in {span}"
    return parse


def int_list(lo: int = 1) -> Callable[[str], list[int]]:
    """Comma-separated integers >= lo (``1,5,10``)."""
    one = int_in(lo)

    def parse(text: str) -> list[int]:
        items = [v for v in str(text).split(",") if v.strip()]
        if not items:
            _fail(f"expected comma-separated integers >= {lo}", text)
        try:
            return [one(v.strip()) for v in items]
        except argparse.ArgumentTypeError:
            _fail(f"expected comma-separated integers >= {lo}", text)

    return parse


def threads(text: str) -> int:
    """Threads of a thread pool (faiss OpenMP, torch): 1 .. PER_CORE x the cores of this machine."""
    return int_in(1, PER_CORE * (os.cpu_count() or 1))(text)


def workers(text: str) -> int:
    """Worker processes: 0 (in process) .. PER_CORE x the cores of this machine."""
    return int_in(0, PER_CORE * (os.cpu_count() or 1))(text)


#: A plain name: a file or folder name, never a path (no '/', '\\', '..', NUL).
_BAD_NAME = re.compile(r"[/\\\x00]")


def check_name(name: str, what: str = "name") -> str:
    """`name` if it is a plain folder/file name, else ValueError naming `what` (the one rule for names)."""
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or _BAD_NAME.search(name) \
            or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ValueError(f"{what} must be a plain folder name (one path component: no '/', '\\\\', '.' or '..', at most 255 bytes), got {name!r}")
    return name


def name(text: str) -> str:
    """A run / experiment name: one folder under a root, never a path."""
    try:
        return check_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def folder(text: str) -> str:
    """A folder to read or create: anything but an existing file or an empty string (which would
    silently mean the current directory); returned as a str, like a default."""
    if not str(text).strip():
        _fail("expected a folder, not an empty string", text)
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        _fail("expected a folder, but this is a file", text)
    return str(path)


def existing_folder(text: str) -> str:
    """A folder that exists."""
    path = folder(text)
    if not Path(path).is_dir():
        _fail("expected an existing folder", text)
    return path


def existing_file(text: str) -> str:
    """A file that exists (not a folder)."""
    path = Path(text).expanduser()
    if not path.is_file():
        _fail("expected an existing file" + (", but this is a folder" if path.is_dir() else ""), text)
    return str(path)


def host(text: str) -> str:
    """An address or host name this machine can resolve (to bind a server to)."""
    import socket

    try:
        socket.getaddrinfo(str(text), None)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        _fail(f"expected an address or host name that resolves ({err.args[-1] if err.args else err})", text)
    return str(text)


def network(text: str) -> str:
    """An IP network (``10.0.0.0/8``, ``127.0.0.1``: one address)."""
    import ipaddress

    try:
        ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        _fail("expected an IP network such as 10.0.0.0/8 or 127.0.0.1", text)
    return str(text)


def device(text: str) -> str:
    """'cpu', 'auto', 'cuda', 'cuda:N' or 'mps', available on this machine (torch imported only for GPUs)."""
    value = str(text).strip().lower()
    if value in ("cpu", "auto"):
        return value
    m = re.fullmatch(r"(cuda|mps)(?::(\d+))?", value)
    if not m:
        _fail("expected cpu, auto, cuda, cuda:N or mps", text)
    import torch  # only when a GPU is asked for

    if m[1] == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            _fail("MPS is not available on this machine; use cpu", text)
        return value
    if not torch.cuda.is_available():
        _fail("CUDA is not available on this machine (no GPU or no CUDA build of torch); use cpu", text)
    n = torch.cuda.device_count()
    if m[2] is not None and int(m[2]) >= n:
        _fail(f"this machine has {n} CUDA device(s): cuda:0..cuda:{n - 1}", text)
    return value


#: First bytes of files torch.load reads: a zip archive (torch >= 1.6) or a pickle (legacy).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def looks_like_path(text: str) -> bool:
    """True for a weights argument that names a file rather than a tag (DEFAULT, IMAGENET1K_V2, none)."""
    return os.sep in text or "/" in text or text.endswith((".pth", ".pt", ".bin", ".ckpt", ".tar"))


def weights(text: str) -> str:
    """A weights tag (``DEFAULT``, ``IMAGENET1K_V2``, ``none``) or a torch checkpoint file that exists."""
    if not looks_like_path(str(text)):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        _fail("weights file does not exist" + (" (it is a folder)" if path.is_dir() else ""), text)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(_TORCH_MAGIC):
        _fail("not a torch checkpoint (torch.save writes a zip or pickle file)", text)
    return text


def prog() -> str:
    """The running command's name as its messages show it (``extract_features.py``, ``imsim-extract``)."""
    return os.path.basename(sys.argv[0])


def run(main: Callable[[], int | None]) -> NoReturn:
    """Call a script's `main` and exit with its status; errors that come from the user's input
    (bad values, missing files or stores, a held lock, a missing optional package) print one line
    and exit 2 instead of a traceback (``IMSIM_TRACEBACK=1`` shows it). Ctrl-C exits 130."""
    name = prog()
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        code = 130
    except ImportError as e:
        if os.environ.get(TRACEBACK_ENV):
            raise
        missing = getattr(e, "name", None)
        hint = f" (pip install {missing})" if missing else ""
        print(f"{name}: error: {' '.join(str(e).split())}{hint}", file=sys.stderr)
        code = 2
    except (ValueError, OSError, RuntimeError) as e:  # StoreError, DatasetError, LockError, DownloadError...
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"{name}: error: {' '.join(str(e).split())}", file=sys.stderr)
        code = 2
    sys.exit(code or 0)


def concrete_device(text: str) -> str:
    """Like `device`, without 'auto': cpu, cuda, cuda:N or mps."""
    if str(text).strip().lower() == "auto":
        _fail("expected cpu, cuda, cuda:N or mps", text)
    return device(text)
