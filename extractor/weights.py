"""Pretrained weights on first use, each through its framework's own cache and downloader.

- timm and open_clip: the Hugging Face hub cache (``$HF_HUB_CACHE``, ``~/.cache/huggingface/hub``),
  filled by ``huggingface_hub.hf_hub_download`` (``$HF_ENDPOINT`` names the server); open_clip's
  URL-only tags go through open_clip's own downloader (sha256-checked, ``~/.cache/clip``);
- torchvision and ``hub:`` entries: torch.hub's cache (``$TORCH_HOME/hub``), filled by
  ``torch.hub.download_url_to_file`` (torchvision checks the hash prefix its file names carry);
- SimCLR: ``SimCLRv*/download.py``'s resumable, size-checked download and conversion (needs the
  ``convert`` extra, TensorFlow).

Every downloader writes a temporary file and renames it once complete (a cut download never looks
finished) and resumes or restarts on the next call. Sizes are checked where the server announces them,
and hashes where they are published (the sha256 a Hugging Face LFS file is named by, the hash prefix
in torchvision's file names, open_clip's table). Offline (``--offline``, ``IMSIM_OFFLINE=1``,
``HF_HUB_OFFLINE=1``, or no network) nothing is fetched: the error names the file and the command
that gets it. This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Set to 1 (``--offline``) to read local caches only; Hugging Face's own switch counts too.
OFFLINE_ENV = "IMSIM_OFFLINE"
_TRUE = ("1", "true", "yes", "on")


def is_offline() -> bool:
    """True when downloads are switched off (``IMSIM_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


def set_offline() -> None:
    """Switch downloads off for this process and its children (what ``--offline`` does)."""
    os.environ[OFFLINE_ENV] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Within the block, weights come from local caches only (the demo: no download behind its back)."""
    before = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = before


def unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why `url`'s server cannot be reached (no network, refused), or None: one TCP connect, a few seconds at
    most, so a machine without network gets its clear error at once instead of after the clients' retries."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as e:
        return f"no network: {parts.hostname}:{port} cannot be reached ({type(e).__name__}: {e})"


def hf_endpoint() -> str:
    """The Hugging Face hub server downloads go to (``$HF_ENDPOINT``, default https://huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def fetch(download: Callable[[], Any], missing: Callable[[str], Exception], server: str | None = None) -> Any:
    """Run `download` unless offline; any failure becomes ``missing(why)`` (the framework's clear error).

    `missing` builds the error that names the expected file and the command that gets it; `why` says
    why nothing came (offline switch, no network, HTTP error, checksum mismatch). `server` (a URL) is
    checked first: unreachable, the error comes at once.
    """
    if is_offline():
        raise missing(f"offline ({OFFLINE_ENV} or HF_HUB_OFFLINE is set)")
    why = unreachable(server) if server else None
    if why:
        raise missing(why)
    try:
        return download()
    except ImportError:
        raise
    except Exception as e:  # no network, HTTP errors, bad checksums: one clear error, nothing half-written
        raise missing(f"the download failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def verify_hf_file(path: str | os.PathLike) -> Path:
    """Check a file of the Hugging Face cache against the sha256 its blob is named by (LFS files).

    The hub names each cached blob by its ETag, which for LFS files (weights) is the file's sha256;
    a mismatch deletes the blob and its link (the next call downloads it again) and raises ValueError.
    """
    link = Path(path)
    blob = link.resolve()
    if _SHA256.fullmatch(blob.name):
        got = sha256_file(blob)
        if got != blob.name:
            blob.unlink(missing_ok=True)
            if link.is_symlink():
                link.unlink()
            raise ValueError(f"{link}: sha256 {got} differs from the published {blob.name}; removed, retry")
    return link


def hf_download(repo: str, filenames: list[str], revision: str | None = None) -> Path:
    """The first of `filenames` the hub repository has, downloaded into the Hugging Face cache and verified."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    last: Exception | None = None
    for filename in dict.fromkeys(filenames):
        try:
            return verify_hf_file(hf_hub_download(repo, filename, revision=revision))
        except EntryNotFoundError as e:  # the repository stores its weights under another name
            if isinstance(e, LocalEntryNotFoundError):  # the hub could not be asked: no other name will do
                raise
            last = e
    raise FileNotFoundError(f"{repo} has none of {filenames}") from last


def url_download(url: str, dest: str | os.PathLike, hash_prefix: str | None = None) -> Path:
    """`url` to `dest` with torch.hub's downloader (temporary file, renamed when complete; sha256 prefix checked)."""
    import torch

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=True)
    return dest
