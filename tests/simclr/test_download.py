"""Resumable downloads against a loopback HTTP server serving fake files; download.py flags and flow."""

from __future__ import annotations

import re
import runpy
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from helpers.download import DownloadError, download_file, download_files
from SimCLRv1 import download as v1
from SimCLRv2 import download as v2
from SimCLRv2.tf_checkpoint import fetch_and_convert, tf_file_names

PAYLOAD = bytes(range(256)) * 40  # 10 KB


class Handler(BaseHTTPRequestHandler):
    """/good.bin honours Range; /cut.bin cuts its first full response halfway; /liar.bin announces
    10 bytes more than it has; /flaky.bin answers 503 first; anything else is 404. Requests are logged."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        name = self.path.rsplit("/", 1)[-1]
        if name == "flaky.bin" and len(self.server.requests) == 1:
            self.send_error(503, "Service Unavailable")
            return
        name = "good.bin" if name == "flaky.bin" else name
        if name in ("nolen.bin", "nosize.bin") and (name == "nosize.bin" or not self.headers.get("Range")):
            self.send_response(200)  # no Content-Length: the body ends when the connection closes
            self.end_headers()
            self.wfile.write(PAYLOAD if name == "nosize.bin" else PAYLOAD[: len(PAYLOAD) // 2])  # nolen: cut
            return
        name = "good.bin" if name == "nolen.bin" else name
        if name not in ("good.bin", "cut.bin", "liar.bin") and not name.startswith(("checkpoint", "model.ckpt")):
            self.send_error(404, "Not Found")
            return
        body, extra = PAYLOAD, 10 if name == "liar.bin" else 0
        total = len(body) + extra
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(m.group(1)) if m else 0
        if start >= total:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{total}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if m else 200)
        if m:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.send_header("Content-Length", str(total - start))
        self.end_headers()
        chunk = body[start:]
        if name == "cut.bin" and not m:
            chunk = chunk[: len(chunk) // 2]  # the connection drops halfway
        self.wfile.write(chunk)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


FAST = {"backoff": 0.0, "progress": False, "retries": 2}


def test_plain_download_and_skip_when_present(server, tmp_path):
    httpd, url = server
    dest = download_file(url + "good.bin", tmp_path / "good.bin", **FAST)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "good.bin.part").exists()
    n = len(httpd.requests)
    download_file(url + "good.bin", dest, **FAST)  # complete file: no request at all
    assert len(httpd.requests) == n


def test_resume_after_cut_connection(server, tmp_path):
    httpd, url = server
    dest = download_file(url + "cut.bin", tmp_path / "cut.bin", **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert httpd.requests == [("/cut.bin", None), ("/cut.bin", f"bytes={len(PAYLOAD) // 2}-")]


def test_resume_from_existing_partial_file(server, tmp_path):
    httpd, url = server
    (tmp_path / "good.bin.part").write_bytes(PAYLOAD[:1000])
    assert download_file(url + "good.bin", tmp_path / "good.bin", **FAST).read_bytes() == PAYLOAD
    assert httpd.requests == [("/good.bin", "bytes=1000-")]


def test_partial_file_larger_than_remote_restarts(server, tmp_path):
    _, url = server
    (tmp_path / "good.bin.part").write_bytes(PAYLOAD + b"junk")
    assert download_file(url + "good.bin", tmp_path / "good.bin", **FAST).read_bytes() == PAYLOAD


def test_size_mismatch_is_an_error_and_keeps_the_partial_file(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match=r"liar\.bin.*(size mismatch|Content-Length|announced|Incomplete)"):
        download_file(url + "liar.bin", tmp_path / "liar.bin", **FAST)
    assert not (tmp_path / "liar.bin").exists()
    assert (tmp_path / "liar.bin.part").read_bytes() == PAYLOAD


def test_server_error_is_retried(server, tmp_path):
    httpd, url = server
    assert download_file(url + "flaky.bin", tmp_path / "f.bin", **FAST).read_bytes() == PAYLOAD
    assert len(httpd.requests) == 2


def test_404_names_the_url(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match=re.escape(url + "nothere.bin") + ".*404"):
        download_file(url + "nothere.bin", tmp_path / "x", **FAST)
    assert not (tmp_path / "x").exists()


def test_offline_names_the_url(tmp_path):
    with socket.socket() as s:  # a free port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/simclr/model.ckpt-1.index"
    with pytest.raises(DownloadError, match=re.escape(url) + ".*offline"):
        download_file(url, tmp_path / "x", timeout=2, **FAST)


def test_fetch_and_convert_removes_tf_files_on_request(server, tmp_path):
    _, url = server
    out = tmp_path / "torch_checkpoints" / "x.pth"
    seen = []

    def convert(prefix: Path):
        seen.append(sorted(p.name for p in prefix.parent.iterdir()))
        return {"encoder": {"w": torch.ones(3)}}

    tf_folder = tmp_path / "tf_checkpoints" / "m"
    fetch_and_convert(url, 5, tf_folder, out, convert, keep_tf=False, **{})
    assert seen == [sorted(tf_file_names(5))] and not tf_folder.exists()
    assert torch.load(out, weights_only=True)["encoder"]["w"].tolist() == [1, 1, 1]
    fetch_and_convert(url, 5, tf_folder, out, convert, keep_tf=True)  # output exists: nothing to do
    assert len(seen) == 1
    fetch_and_convert(url, 5, tf_folder, out, convert, keep_tf=True, force=True)
    assert len(seen) == 2 and (tf_folder / "model.ckpt-5.index").is_file()


def test_download_files_stops_at_the_first_missing_file(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="missing.bin"):
        download_files(url, ["good.bin", "missing.bin"], tmp_path, **FAST)
    assert (tmp_path / "good.bin").is_file()


def test_download_scripts_paths_and_flags(tmp_path):
    args = v2.parse_args(["--model", "r101_1x_sk0", "--simclr_category", "finetuned_10pct", "--no-ema", "--remove-tf"])
    assert (args.model, args.simclr_category, args.ema, args.keep_tf, args.supervised) == (
        "r101_1x_sk0", "finetuned_10pct", False, False, None)
    assert v2.parse_args([]).keep_tf is True and v2.parse_args(["--supervised"]).supervised is True
    assert v2.torch_checkpoint_path("r50_2x_sk1", "pretrained", True, tmp_path) == (
        tmp_path / "torch_checkpoints" / "Pretrained" / "r50_2x_sk1_ema.pth")
    assert v1.torch_checkpoint_path("4x", "finetune_10pct", tmp_path) == (
        tmp_path / "torch_checkpoints" / "Finetuned_10pct" / "resnet50-4x.pth")
    with pytest.raises(ValueError, match="r50_2x_sk1"):
        v2.torch_checkpoint_path("r50_3x_sk1")
    with pytest.raises(SystemExit):
        v1.parse_args(["--model", "3x"])


def test_download_script_offline_error_names_the_url(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(v1, "BASE_URL", f"http://127.0.0.1:{port}/simclrv1/{{category}}/{{model}}/")
    monkeypatch.setattr("helpers.download.BACKOFF", 0.0)
    with pytest.raises(DownloadError, match=rf"127\.0\.0\.1:{port}/simclrv1/pretrain/1x/checkpoint"):
        v1.main(["--model", "1x", "--root", str(tmp_path)])


@pytest.mark.slow
def test_download_py_runs_as_a_script_from_its_folder(monkeypatch, capsys):
    """`cd SimCLRv1 && python3 download.py` in a fresh interpreter; v2's script in-process (same mechanism)."""
    result = subprocess.run([sys.executable, "download.py", "--help"], cwd=Path(v1.__file__).parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--simclr_category" in result.stdout and "--remove-tf" in result.stdout
    monkeypatch.chdir(Path(v2.__file__).parent)
    monkeypatch.setattr(sys, "argv", ["download.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path("download.py", run_name="__main__")
    assert exit_info.value.code == 0 and "--no-ema" in capsys.readouterr().out


def test_cut_body_without_content_length_is_not_taken_as_complete(server, tmp_path):
    """Issue 12: a server that sends no Content-Length and cuts the body; the rest is fetched by Range."""
    httpd, url = server
    dest = download_file(url + "nolen.bin", tmp_path / "nolen.bin", **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert any(r == f"bytes={len(PAYLOAD) // 2}-" for _, r in httpd.requests)


def test_unverifiable_size_stays_partial(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="cannot be verified"):
        download_file(url + "nosize.bin", tmp_path / "nosize.bin", **FAST)
    assert not (tmp_path / "nosize.bin").exists() and (tmp_path / "nosize.bin.part").exists()


def test_published_checksum_is_verified(server, tmp_path):
    import hashlib

    _, url = server
    good = hashlib.sha256(PAYLOAD).hexdigest()
    assert download_file(url + "nosize.bin", tmp_path / "a.bin", sha256=good, **FAST).read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_file(url + "good.bin", tmp_path / "b.bin", sha256="0" * 64, **FAST)
    assert not (tmp_path / "b.bin").exists()
