"""URL fetching and uploads against a loopback HTTP server the test starts: refused by default,
accepted with an explicit allow-list, redirects re-checked, bodies capped in size and time, images only."""

from __future__ import annotations

import gzip
import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from imsim.app.safe_fetch import FetchError, check_upload, fetch_image, is_public, resolve_checked

LOOPBACK = ["127.0.0.1/32"]
#: 50 MB of zeros, gzipped (~50 KB): made once here, outside the memory the fetch test measures.
GZIP_BOMB = gzip.compress(bytes(50 << 20), compresslevel=9)


def png_bytes(size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.hosts.append(self.headers.get("Host", ""))
        port = self.server.server_address[1]
        path = self.path
        if path == "/img.png":
            body = png_bytes()
            self.send(200, body, [("Content-Type", "image/png"), ("Content-Length", str(len(body)))])
        elif path == "/text":
            self.send(200, b"<html>not an image</html>", [("Content-Type", "image/png")])
        elif path == "/big":  # no Content-Length: the reader must cut it
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 4096)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/declared":
            self.send(200, b"", [("Content-Length", str(10**9))])
        elif path == "/slow":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path.startswith("/drip"):  # a byte every 0.6 s: each read is quick, the whole body is not
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.6)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path in ("/gzip-bomb", "/gzip-image"):
            body = GZIP_BOMB if path == "/gzip-bomb" else gzip.compress(png_bytes())
            self.send(200, body, [("Content-Type", "image/png"), ("Content-Encoding", "gzip"),
                                  ("Content-Length", str(len(body)))])
        elif path == "/to-image":
            self.send(302, headers=[("Location", "/img.png")])
        elif path == "/to-metadata":
            self.send(302, headers=[("Location", "http://169.254.169.254/latest/meta-data/")])
        elif path == "/to-private":
            self.send(301, headers=[("Location", "http://10.0.0.1/img.png")])
        elif path == "/to-other-loopback":
            self.send(307, headers=[("Location", f"http://127.0.0.2:{port}/img.png")])
        elif path.startswith("/loop"):
            self.send(302, headers=[("Location", f"/loop{len(path)}")])
        else:
            self.send(404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_loopback_refused_by_default(server):
    with pytest.raises(FetchError, match="non-public address 127.0.0.1"):
        fetch_image(f"{server}/img.png")


def test_accepted_with_an_explicit_allow_list(server):
    got = fetch_image(f"{server}/img.png", allow=LOOPBACK)
    assert got.format == "PNG" and got.content == png_bytes()
    with pytest.raises(FetchError, match="allow-list of networks is invalid"):  # not a bare ValueError
        fetch_image(f"{server}/img.png", allow=["notanetwork"])


def test_redirects_are_followed_and_each_hop_checked(server):
    assert fetch_image(f"{server}/to-image", allow=LOOPBACK).url.endswith("/img.png")
    for path, address in [("/to-metadata", "169.254.169.254"), ("/to-private", "10.0.0.1"),
                          ("/to-other-loopback", "127.0.0.2")]:
        with pytest.raises(FetchError, match=f"non-public address {address}"):
            fetch_image(f"{server}{path}", allow=LOOPBACK)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch_image(f"{server}/loop", allow=LOOPBACK)


def test_oversized_body_is_cut_off(server):
    with pytest.raises(FetchError, match="larger than the 10,000 byte limit"):
        fetch_image(f"{server}/big", allow=LOOPBACK, max_bytes=10_000)
    with pytest.raises(FetchError, match="over the 10,000 byte limit"):
        fetch_image(f"{server}/declared", allow=LOOPBACK, max_bytes=10_000)


def test_slow_body_hits_the_time_cap(server):
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch_image(f"{server}/slow", allow=LOOPBACK, timeout=1.0)
    assert time.monotonic() - start < 5


def test_non_image_and_bad_urls_refused(server):
    with pytest.raises(FetchError, match="not an image"):
        fetch_image(f"{server}/text", allow=LOOPBACK)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_image(f"{server}/missing", allow=LOOPBACK)
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "gopher://x", "http://"):
        with pytest.raises(FetchError, match="only http"):
            fetch_image(url)


def test_connects_to_the_checked_address_with_one_lookup(server, monkeypatch):
    """A name that resolves once to the allowed address: no second lookup, the Host header kept."""
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    calls = []

    def fake(host, *args, **kwargs):
        if host == "images.example.test":
            calls.append(host)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    Handler.hosts.clear()
    got = fetch_image(f"http://images.example.test:{port}/img.png", allow=LOOPBACK)
    assert got.format == "PNG" and calls == ["images.example.test"]
    assert Handler.hosts == [f"images.example.test:{port}"]


def test_every_record_must_be_public(monkeypatch):
    records = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80)),
               (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.1.2.3", 80, 0, 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: records)
    with pytest.raises(FetchError, match="::ffff:10.1.2.3"):
        resolve_checked("mixed.example.test", 80)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: records[:1])
    assert resolve_checked("public.example.test", 80) == "8.8.8.8"


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("1.1.1.1", True),
    ("127.0.0.1", False), ("127.8.9.1", False), ("::1", False), ("10.1.1.1", False), ("172.16.5.4", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.251", False), ("255.255.255.255", False), ("fc00::1", False), ("fd00:ec2::254", False),
    ("fe80::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
    ("::ffff:8.8.8.8", True), ("2002:7f00:1::1", False), ("64:ff9b::a00:1", False), ("::", False),
    ("198.18.0.1", False), ("fe80::1%eth0", False),
])
def test_address_classes(address, public):
    assert is_public(address) is public


def test_uploads(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes())
    assert check_upload(good) == "PNG"
    with pytest.raises(FetchError, match="over the 100 byte limit"):
        check_upload(good, max_bytes=100)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(FetchError, match="empty"):
        check_upload(tmp_path / "empty.png")
    (tmp_path / "page.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(FetchError, match="not an image"):
        check_upload(tmp_path / "page.svg")
    Image.new("RGB", (16, 16)).save(tmp_path / "icon.ico")
    with pytest.raises(FetchError, match="ICO image; accepted formats: BMP, GIF, JPEG, PNG"):
        check_upload(tmp_path / "icon.ico")
    Image.new("L", (9000, 9000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(FetchError, match="pixel limit"):
        check_upload(tmp_path / "bomb.png", max_pixels=40_000_000)


def test_the_deadline_bounds_the_whole_transfer(server):
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 2 s"):
        fetch_image(f"{server}/drip", allow=LOOPBACK, timeout=2.0)
    assert time.monotonic() - start < 2.5  # before: each 0.6 s read within the limit, cut at the next check


def test_decompressed_bytes_are_capped_as_they_are_produced(server):
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="larger than the 1,000,000 byte limit"):
            fetch_image(f"{server}/gzip-bomb", allow=LOOPBACK, max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak  # 50 MB of zeros never inflated (the whole body arrives in one read)
    assert fetch_image(f"{server}/gzip-image", allow=LOOPBACK).format == "PNG"
