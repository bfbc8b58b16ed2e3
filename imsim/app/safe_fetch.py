"""What the app takes in from the network and from uploads, checked before any pixel is decoded.

`fetch_image(url)` follows safehttpx's pattern and goes further: http(s) only; the host is resolved
and *every* A/AAAA record must be a public address (loopback, private, link-local, CGNAT, multicast,
reserved, cloud-metadata and their IPv4-mapped / 6to4 / NAT64 IPv6 forms are refused), unless it
falls in an explicit allow-list of networks; the connection goes to the checked address (no second
DNS lookup, TLS still verified against the host name); redirects are followed by hand, each hop
checked again (at most 5); the body is streamed and cut at `max_bytes` (counted after decompression,
as it is produced: a gzip bomb never inflates past the cap), the whole fetch at `timeout` seconds (a
watchdog shuts the socket at the deadline, so a body dripping a byte at a time cannot stretch it);
the bytes must decode as an image of at most `max_pixels`. `check_upload` applies the same
size, pixel and format rules to uploaded files.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin

import httpx
from PIL import Image

MAX_BYTES = 20 * 1024 * 1024
TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
MAX_PIXELS = 40_000_000
#: PIL formats the extractors accept (helpers.images.IMAGE_EXTENSIONS); anything else is refused by name.
#: MPO is a phone's multi-picture JPEG: its first frame is a plain JPEG, and that frame is what is read.
FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp", "PPM": ".ppm"}
#: Networks refused on top of what `ipaddress` calls non-global (explicit, so the rule is readable).
BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(ValueError):
    """A URL or upload the app refuses; the message says why, for the person who gave it."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (IPv6 forms of IPv4 addresses judged by the IPv4)."""
    ip = ipaddress.ip_address(str(address).split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return is_public(inner)
    if any(ip in net for net in BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def _allowed(ip: str, allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    return any(addr.version == net.version and addr in net for net in allow)


def resolve_checked(host: str, port: int, allow: Iterable[str] = ()) -> str:
    """Resolve `host` and return the address to connect to; refuse if ANY of its records is not public.

    `allow` lists networks (``"127.0.0.1/32"``) accepted even though they are not public (tests,
    an intranet the operator trusts). The first address of the answer is used.
    """
    try:
        networks = [ipaddress.ip_network(a, strict=False) for a in allow]
    except ValueError as err:
        raise FetchError(f"the allow-list of networks is invalid ({err})") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise FetchError(f"cannot resolve host {host!r} ({err})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise FetchError(f"host {host!r} has no IPv4 or IPv6 address")
    bad = [a for a in addresses if not is_public(a) and not _allowed(a, networks)]
    if bad:
        raise FetchError(
            f"refused: {host!r} resolves to non-public address {bad[0]} (loopback, private, link-local, "
            "CGNAT, multicast or metadata addresses are never fetched)"
        )
    return addresses[0]


class _PinnedTransport(httpx.HTTPTransport):
    """Sends the request to an already-checked address; Host header and TLS name stay the URL's host."""

    def __init__(self, address: str, host: str) -> None:
        super().__init__(trust_env=False, retries=0)
        self.address, self.host = address, host

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(host=self.address)
        request.headers["Host"] = self.host if request.url.port is None else f"{self.host}:{request.url.port}"
        request.extensions = {**request.extensions, "sni_hostname": self.host}
        return super().handle_request(request)


@dataclass
class Fetched:
    """A fetched image: its bytes, the format PIL found, the final URL after redirects."""

    content: bytes
    format: str
    url: str

    @property
    def suffix(self) -> str:
        return FORMATS[self.format]


def fetch_image(
    url: str,
    *,
    allow: Iterable[str] = (),
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_S,
    max_redirects: int = MAX_REDIRECTS,
    max_pixels: int = MAX_PIXELS,
) -> Fetched:
    """GET an image from a public URL under the rules of the module docstring; FetchError otherwise."""
    allow = list(allow)
    deadline = time.monotonic() + timeout
    current = url.strip()
    for _hop in range(max_redirects + 1):
        try:
            parsed = httpx.URL(current)
        except (httpx.InvalidURL, TypeError) as err:
            raise FetchError(f"not a valid URL: {current!r} ({err})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise FetchError(f"only http:// and https:// URLs with a host are fetched, not {current!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        address = resolve_checked(parsed.host, port, allow)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"timed out after {timeout:g} s")
        with httpx.Client(
            transport=_PinnedTransport(address, parsed.host),
            timeout=httpx.Timeout(remaining),
            follow_redirects=False,
            trust_env=False,
        ) as client:
            try:
                headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
                with client.stream("GET", parsed, headers=headers) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"redirect without a Location from {current}")
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"{current} answered HTTP {response.status_code}")
                    content = _read_capped(response, max_bytes, deadline, timeout)
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {timeout:g} s") from None
            except httpx.HTTPError as err:
                raise FetchError(f"cannot fetch {current}: {type(err).__name__}: {err}") from None
        fmt = image_format(BytesIO(content), max_pixels, what=current)
        return Fetched(content, fmt, current)
    raise FetchError(f"more than {max_redirects} redirects from {url}")


def _decoder(encoding: str):
    """A zlib decompressor for a Content-Encoding we decode ourselves (capped), or None for identity."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, as servers send either
    raise FetchError(f"refused: the body is {encoding!r}-encoded (accepted: none, gzip, deflate)")


def _watchdog(response: httpx.Response, deadline: float) -> threading.Timer | None:
    """Shut the response's socket at `deadline`: a read blocked on a body that drips a byte at a time
    then returns at once (httpx's timeouts are per read, so they cannot bound the whole transfer)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return None

    def shut() -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), shut)
    timer.daemon = True
    timer.start()
    return timer


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"refused: the body is {int(declared):,} bytes, over the {max_bytes:,} byte limit")
    decoders = [_decoder(e) for e in reversed(response.headers.get("content-encoding", "").split(",")) if e.strip()]
    decoders = [d for d in decoders if d is not None]
    if len(decoders) > 1:
        raise FetchError("refused: the body is encoded more than once")
    too_big = f"refused: the body is larger than the {max_bytes:,} byte limit (cut off)"
    buf = bytearray()
    watchdog = _watchdog(response, deadline)
    try:
        for chunk in response.iter_raw():  # as data arrives, undecoded: decompressed below, capped
            if decoders:
                data, d = chunk, decoders[0]
                while data:
                    out = d.decompress(data, max_bytes + 1 - len(buf))  # never more than the cap allows
                    buf += out
                    if len(buf) > max_bytes:
                        raise FetchError(too_big)
                    data = d.unconsumed_tail
                    if not out:
                        break
            else:
                buf += chunk
            if len(buf) > max_bytes:
                raise FetchError(too_big)
            if time.monotonic() > deadline:
                raise FetchError(f"timed out after {timeout:g} s")
    except (httpx.HTTPError, zlib.error) as err:
        if time.monotonic() >= deadline:
            raise FetchError(f"timed out after {timeout:g} s") from None
        if isinstance(err, zlib.error):
            raise FetchError(f"the body's compression is broken ({err})") from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if time.monotonic() >= deadline:  # the watchdog shut the socket: what came is not the whole body
        raise FetchError(f"timed out after {timeout:g} s")
    if decoders:
        tail = decoders[0].flush()
        if len(buf) + len(tail) > max_bytes:
            raise FetchError(too_big)
        buf += tail
    return bytes(buf)


def image_format(source, max_pixels: int = MAX_PIXELS, what: str = "the file") -> str:
    """The PIL format of an image file or stream, after checking it decodes fully and is not too large."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                fmt = img.format
                if fmt not in FORMATS:
                    raise FetchError(
                        f"{what} is a {fmt} image; accepted formats: {', '.join(sorted(set(FORMATS) - {'MPO'}))}"
                    )
                if img.width * img.height > max_pixels:
                    raise FetchError(
                        f"refused: {what} is {img.width}x{img.height}, over the {max_pixels:,} pixel limit"
                    )
                img.load()
    except FetchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise FetchError(f"refused: {what} is a decompression bomb ({err})") from None
    except Exception as err:  # PIL raises many kinds: the body is not a usable image
        raise FetchError(f"{what} is not an image PIL can decode ({type(err).__name__})") from None
    return fmt


def check_upload(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> str:
    """Refuse an uploaded file that is too large, not an image, of another format, or a bomb; returns its format."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise FetchError(f"cannot read the upload ({err.strerror})") from None
    if size > max_bytes:
        raise FetchError(f"refused: the file is {size:,} bytes, over the {max_bytes:,} byte limit")
    if size == 0:
        raise FetchError("the file is empty")
    return image_format(path, max_pixels, what=f"'{path.name}'")
