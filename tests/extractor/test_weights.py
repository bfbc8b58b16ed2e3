"""Pretrained weights on first use: a tiny timm model downloaded through a Hugging Face hub server on 127.0.0.1
into an empty cache (verified, resumable), then found offline; offline with an empty cache: the clear error."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from extractor import weights

ROOT = Path(__file__).resolve().parents[2]
MODEL = "test_efficientnet.r160_in1k"  # timm's own test model: 356k parameters, hf_hub_id timm/<name>
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _safetensors_bytes() -> bytes:
    """The tiny model's weights, randomly initialised (seeded), as a model.safetensors file."""
    import timm
    import torch
    from safetensors.torch import save

    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


class _Hub(http.server.BaseHTTPRequestHandler):
    """Just enough of the hub's `resolve` endpoint: HEAD (commit, ETag = sha256, size) and GET with Range."""

    files: dict[str, bytes] = {}
    etags: dict[str, str] = {}
    log: list[str] = []
    cut_after: int | None = None  # a first GET that stops after this many bytes (a dropped connection)

    def _file(self) -> tuple[bytes, str] | None:
        path = self.path.split("?")[0]
        if path in self.files:
            return self.files[path], self.etags.get(path) or hashlib.sha256(self.files[path]).hexdigest()
        return None

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.log.append(f"{self.command} {self.path} {self.headers.get('Range', '')}")
        found = self._file()
        if found is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, etag = found
        start = 0
        if body and self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
        part = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", str(len(part)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if body:
            if _Hub.cut_after is not None and not start:
                self.wfile.write(part[:_Hub.cut_after])
                _Hub.cut_after = None
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(part)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def hub():
    """A hub server on 127.0.0.1 holding timm/<MODEL>/model.safetensors; yields (endpoint, file bytes)."""
    data = _safetensors_bytes()
    _Hub.files = {f"/timm/{MODEL}/resolve/main/model.safetensors": data}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", data
    server.shutdown()
    server.server_close()


_CREATE = """
import json, sys
from extractor import create_extractor
try:
    ext = create_extractor(sys.argv[1], precision="fp32")
except FileNotFoundError as e:
    print(json.dumps({"error": str(e)}))
else:
    print(json.dumps({"weights": ext.params["weights"], "dim": ext.dim}))
"""


def _create(tmp: Path, endpoint: str | None, offline: bool, name: str = f"timm:{MODEL}") -> dict:
    """create_extractor(name) in a fresh interpreter (huggingface_hub reads HF_ENDPOINT at import)."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMSIM_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_CACHE=str(tmp / "hub"), HF_HOME=str(tmp / "hf"),
               TORCH_HOME=str(tmp / "torch"), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="10", HF_HUB_DOWNLOAD_TIMEOUT="10")
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    else:
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: no network
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", _CREATE, name], env=env, cwd=tmp, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_timm_weights_download_on_first_use_then_found_offline(hub, tmp_path):
    endpoint, data = hub
    _Hub.log.clear()
    _Hub.cut_after = len(data) // 3  # the first transfer is cut: the hub client resumes with a Range request
    first = _create(tmp_path, endpoint, offline=False)
    assert "weights" in first, first
    path = Path(first["weights"])
    assert path.is_file() and str(tmp_path / "hub") in str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert any(line.startswith("GET") for line in _Hub.log)
    assert not list((tmp_path / "hub").rglob("*.incomplete"))  # nothing half-written left behind

    _Hub.log.clear()
    again = _create(tmp_path, None, offline=True)  # server unreachable and HF_HUB_OFFLINE=1: the cache serves
    assert again == first and _Hub.log == []


@pytest.mark.slow
def test_offline_with_an_empty_cache_names_the_file_and_the_command(tmp_path):
    report = _create(tmp_path, None, offline=True)
    message = report["error"]
    assert f"timm:{MODEL}" in message and f"timm/{MODEL}" in message and "offline" in message
    assert f"timm.create_model('{MODEL}', pretrained=True)" in message and "--weights PATH" in message


@pytest.mark.slow
def test_no_network_is_the_same_clear_error(tmp_path):
    report = _create(tmp_path, None, offline=False)  # the endpoint refuses connections
    assert "no network: 127.0.0.1:9 cannot be reached" in report["error"] and f"timm/{MODEL}" in report["error"]


def test_fetch_respects_the_offline_switches(monkeypatch):
    calls = []
    for name in ("IMSIM_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv("IMSIM_OFFLINE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv(name, "1")
        with pytest.raises(FileNotFoundError, match="offline"):
            weights.fetch(lambda: calls.append(1), FileNotFoundError)
    assert calls == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert weights.fetch(lambda: 7, FileNotFoundError) == 7
    with pytest.raises(FileNotFoundError, match="download failed: OSError: refused"):
        weights.fetch(lambda: (_ for _ in ()).throw(OSError("refused")), FileNotFoundError)


def test_a_cached_file_that_does_not_match_its_published_sha256_is_removed(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    good = b"weights"
    (blobs / hashlib.sha256(good).hexdigest()).write_bytes(good)
    link = tmp_path / "model.safetensors"
    link.symlink_to(blobs / hashlib.sha256(good).hexdigest())
    assert weights.verify_hf_file(link) == link
    bad = blobs / hashlib.sha256(b"other").hexdigest()
    bad.write_bytes(b"tampered")
    link.unlink()
    link.symlink_to(bad)
    with pytest.raises(ValueError, match="sha256"):
        weights.verify_hf_file(link)
    assert not bad.exists() and not link.exists()


def test_demo_never_downloads(monkeypatch):
    """The demo uses only the neural models already on disk: `offline()` holds during its look-ups."""
    monkeypatch.delenv("IMSIM_OFFLINE", raising=False)
    assert not weights.is_offline()
    with weights.offline():
        assert weights.is_offline()
    assert not weights.is_offline()



_HUBCONF = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.conv(x)), 1))


def dino_vits16(pretrained=False):
    return Tiny()
'''


@pytest.fixture
def file_server():
    """A plain HTTP server on 127.0.0.1 serving `_Hub.files` (torch.hub's downloader: one GET)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hub_weights_download_on_first_use_from_a_loopback_url(tmp_path, monkeypatch, file_server):
    """`hub:` DEFAULT weights come through torch.hub's downloader into its checkpoint cache, then offline."""
    import torch

    from extractor import create_extractor, hub_models

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "hubconf.py").write_text(_HUBCONF)
    torch.manual_seed(1)
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.randn(8, 3, 3, 3), "conv.bias": torch.randn(8)}, buffer)
    _Hub.files = {"/dino/dino_deitsmall16_pretrain.pth": buffer.getvalue()}
    monkeypatch.setitem(hub_models.WEIGHTS_URLS, "dino_", f"{file_server}/dino/")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    monkeypatch.delenv("IMSIM_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    ext = create_extractor("hub:dino_vits16", hub_dir=tmp_path / "repo", precision="fp32")
    cached = tmp_path / "torch_hub" / "checkpoints" / "dino_deitsmall16_pretrain.pth"
    assert ext.params["weights"] == str(cached) and cached.read_bytes() == buffer.getvalue()
    assert ext.dim == 8

    _Hub.files = {}  # the server forgets the file: the cache serves it, offline too
    monkeypatch.setenv("IMSIM_OFFLINE", "1")
    again = create_extractor("hub:dino_vits16", hub_dir=tmp_path / "repo", precision="fp32")
    assert again.params["weights"] == str(cached)
    cached.unlink()
    with pytest.raises(FileNotFoundError, match="dino_deitsmall16_pretrain.pth.*offline"):
        create_extractor("hub:dino_vits16", hub_dir=tmp_path / "repo")
