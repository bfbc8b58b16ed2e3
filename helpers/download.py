"""Resumable HTTP downloads with progress bars and size checks (used by the SimCLR download scripts).

A file is streamed to `<name>.part`; an interrupted download resumes from there with an HTTP Range
request, and the file only gets its final name once its size is verified: what the server
announced (Content-Length / Content-Range), or, when a response carried no size, what a Range
request for the bytes after the end reports (416 ``bytes */total``); and its sha256 when one is
published (`sha256=`). A download whose size cannot be verified stays ``.part`` and fails
(rerun to resume). A final name on disk therefore always means a complete file.
This is the only module that touches the network, and only when a download script calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from helpers import cli
from helpers.atomic import publish

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
TIMEOUT = (15.0, 60.0)  # connect, read (seconds)
RETRIES = 3  # attempts without progress before giving up
BACKOFF = 1.0  # seconds, doubled after each failed attempt


class DownloadError(RuntimeError):
    """A download failed for good: the message names the URL and what went wrong."""


def _total_from_range(header: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    return start, (int(m.group(2)) if m.group(2) != "*" else None)


def _attempt(session: requests.Session, url: str, part: Path, chunk_size: int, timeout, progress: bool
             ) -> int | None:
    """One GET (with Range when `part` exists) appended to `part`; returns the expected total size."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # raw bytes: sizes and ranges refer to the file itself
    if have:
        headers["Range"] = f"bytes={have}-"
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        if resp.status_code == 416:  # nothing left to send: complete, or the part is larger than the file
            _, total = _total_from_range(resp.headers.get("Content-Range"))
            if total is not None and total == have:
                return total
            log.warning("%s: partial file (%d bytes) does not fit the remote file (%s bytes); restarting",
                        url, have, total)
            part.unlink()
            raise requests.ConnectionError("range not satisfiable; restarting from zero")
        if resp.status_code >= 500:  # server trouble: worth retrying
            raise requests.HTTPError(f"HTTP {resp.status_code} {resp.reason}")
        if resp.status_code >= 400:
            raise DownloadError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        length = resp.headers.get("Content-Length")
        if resp.status_code == 206:
            start, total = _total_from_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise requests.ConnectionError(f"server resumed at byte {start}, not {have}; restarting")
            if total is None and length is not None:
                total = have + int(length)
            mode = "ab"
        else:  # 200: the server sent the whole file (it may ignore Range)
            have, total, mode = 0, (int(length) if length is not None else None), "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=part.name[:-5], disable=not progress) as bar:
            read = getattr(resp.raw, "read1", resp.raw.read)  # read1 (urllib3 2): keeps what came before a cut
            while chunk := read(chunk_size):
                f.write(chunk)
                bar.update(len(chunk))
    return total


def _remote_size(session: requests.Session, url: str, have: int, timeout) -> int | None:
    """The remote file's size, asked with a Range request for the bytes after `have` (None: unknown)."""
    headers = {"Accept-Encoding": "identity", "Range": f"bytes={have}-"}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        if resp.status_code in (206, 416):
            return _total_from_range(resp.headers.get("Content-Range"))[1]
        length = resp.headers.get("Content-Length")
        return int(length) if resp.status_code == 200 and length is not None else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, *, session: requests.Session | None = None,
                  chunk_size: int = CHUNK_SIZE, timeout=TIMEOUT, retries: int | None = None,
                  backoff: float | None = None, progress: bool = True, sha256: str | None = None) -> Path:
    """Download `url` to `dest` (skipped if `dest` exists), resuming cut transfers; returns `dest`.

    `dest` gets its name only once the size is verified (and `sha256`, when given, matches); a
    checksum mismatch discards the partial file and downloads again.

    Raises DownloadError naming the URL when the server answers an HTTP error (404, ...), when it
    cannot be reached (offline), or when the size never matches its Content-Length after `retries`
    attempts without progress (default RETRIES, waiting BACKOFF seconds, doubled each time). The
    partial file is kept, so running again resumes.
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF if backoff is None else backoff
    dest = Path(dest)
    if dest.is_file():
        log.info("%s already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    failures, last_error = 0, None
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            total = _attempt(session, url, part, chunk_size, timeout, progress)
            size = part.stat().st_size if part.exists() else 0
            if total is None:  # no size announced: a cut body looks like a short file; ask for the rest
                total = _remote_size(session, url, size, timeout)
            if total is not None and size == total:
                if sha256 is None or _sha256(part) == sha256.lower():
                    publish(part, dest)
                    return dest
                part.unlink()
                raise requests.ConnectionError(f"sha256 mismatch after {size} bytes; downloading again")
            if total is None and sha256 is not None and size and _sha256(part) == sha256.lower():
                publish(part, dest)  # no size to check, but the published checksum matches
                return dest
            if total is None:
                last_error = f"the server gives no size: {size} bytes received cannot be verified as complete"
            else:
                last_error = f"size mismatch: {size} bytes received, the server announced {total}"
                if size > total:
                    part.unlink()
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            last_error = f"{type(err).__name__}: {err}"
        after = part.stat().st_size if part.exists() else 0
        failures = 0 if after > before else failures + 1
        if failures > retries:
            break
        log.warning("%s: %s; retrying (%d/%d)", url, last_error, failures, retries)
        time.sleep(backoff * 2 ** max(failures - 1, 0))
    kept = f"; {after} bytes kept in {part}, run again to resume" if after else ""
    raise DownloadError(f"could not download {url} ({last_error}){kept}. "
                        "Check the network connection (are you offline?) and the URL.")


def download_files(base_url: str, names: Iterable[str], folder: str | Path, **kwargs) -> list[Path]:
    """Download `base_url + name` into `folder` for each name (see download_file)."""
    return [download_file(base_url + name, Path(folder) / name, **kwargs) for name in names]


def checkpoint_parser(description: str, model: str, models, category: str, categories, keep_tf: bool,
                      root: Path) -> argparse.ArgumentParser:  # fmt: skip
    """The parser both SimCLR download scripts start from: --model, --simclr_category and the checkpoint flags."""
    parser = cli.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=model, choices=models)
    parser.add_argument("--simclr_category", default=category, choices=list(categories))
    add_checkpoint_flags(parser, keep_tf, root)
    return parser


def report_conversion(convert) -> Path:
    """Run a download-and-convert call with INFO logging; print and return the PyTorch checkpoint's path."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path = convert()
    print(f"PyTorch checkpoint: {path}")
    return path


def add_checkpoint_flags(parser: argparse.ArgumentParser, keep_tf: bool, root: Path) -> None:
    """The flags both SimCLR download scripts share: TF files kept or removed, root, force, extras."""
    tf_files = parser.add_mutually_exclusive_group()
    tf_files.add_argument("--keep-tf", dest="keep_tf", action="store_true", default=keep_tf,
                          help="keep the downloaded TensorFlow files (default)")
    tf_files.add_argument("--remove-tf", dest="keep_tf", action="store_false",
                          help="delete the TensorFlow files after a successful conversion")
    parser.add_argument("--root", type=lambda t: Path(cli.folder(t)), default=root, help="folder for tf_checkpoints/ and torch_checkpoints/")
    parser.add_argument("--force", action="store_true", help="convert again even if the .pth exists")
    parser.add_argument("--all-files", action="store_true", help="also fetch graph.pbtxt and the .meta graph")
    parser.add_argument("--ignore-tf", action="append", default=[], metavar="PATTERN",
                        help="fnmatch pattern of extra TF variables to leave out (repeatable)")
