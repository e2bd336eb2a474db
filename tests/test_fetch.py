"""URL fetching against a REAL local HTTP server; traffic never leaves loopback.

Refused targets (private, link-local, ...) are rejected by the resolution check before any
connect, so they are safe to name here. Loopback is reachable only via an explicit allowlist.
"""

from __future__ import annotations

import io
import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from PIL import Image

from ecomvlm.fetch import check_address, classify_address, fetch_url
from ecomvlm.images import (
    BlockedURL,
    FetchError,
    FetchTimeout,
    FetchTooLarge,
    ImageError,
    image_sha256,
    load_image,
)

LOOPBACK = ["127.0.0.0/8"]  # the explicit opt-in every "allowed" test uses


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(buf, "PNG")
    return buf.getvalue()


PNG = png_bytes()
BIG = b"x" * 5000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict] = {}

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def body(self, data: bytes, *, length: bool = True, ctype: str = "image/png") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, where: str, code: int = 302) -> None:
        self.send_response(code)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _nolen(h: Handler) -> None:
    h.close_connection = True
    h.body(BIG, length=False)  # body delimited only by connection close


def _slow(h: Handler) -> None:
    time.sleep(1.0)
    h.body(PNG)


def _drip(h: Handler) -> None:
    # Each byte arrives well inside any per-read timeout; only the overall deadline stops it.
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    for _ in range(100):
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(0.05)


def _drip_headers(h: Handler) -> None:
    # Slow headers stall inside http.client's getresponse(): only the watchdog can cut them.
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for i in range(40):
        h.wfile.write(f"X-Pad-{i}: 1\r\n".encode())
        h.wfile.flush()
        time.sleep(0.05)


Handler.routes = {
    "/img.png": lambda h: h.body(PNG),
    "/big": lambda h: h.body(BIG),
    "/big-nolen": _nolen,
    "/slow": _slow,
    "/drip": _drip,
    "/drip-headers": _drip_headers,
    "/r1": lambda h: h.redirect("/r2", 301),
    "/r2": lambda h: h.redirect(f"http://127.0.0.1:{h.server.server_port}/r3", 307),
    "/r3": lambda h: h.redirect("img.png", 303),
    "/loop": lambda h: h.redirect("/loop"),
    "/to-metadata": lambda h: h.redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-ftp": lambda h: h.redirect("ftp://127.0.0.1/img.png"),
    "/to-v6-loopback": lambda h: h.redirect(f"http://[::1]:{h.server.server_port}/img.png"),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # client hung up: expected here
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMVLM_CACHE", str(tmp_path / "cache"))
    srv = Server(("127.0.0.1", 0), Handler)
    srv.hits = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_port}{path}"


# --- default guard: everything local is refused and never contacted ---------------------------


def refused_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/x",
        f"http://localhost:{port}/x",
        f"http://[::1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://2130706433:{port}/",  # decimal spelling of 127.0.0.1
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        f"ftp://127.0.0.1:{port}/x",
        "file:///etc/passwd",
        f"http://user:pw@127.0.0.1:{port}/x",
        "http://user@example.com/img.png",
        "gopher://127.0.0.1/",
        f"http://127.0.0.1:{port}/a b",
    ]


def test_default_guard_refuses_without_contact(server):
    for target in refused_urls(server.server_port):
        with pytest.raises(BlockedURL) as info:
            fetch_url(target)
        assert info.value.reason == "blocked_url" and target in str(info.value)
        with pytest.raises(BlockedURL):
            load_image(target, allow_url_fetch=True)
    assert server.hits == []


def test_allow_private_still_refuses_loopback_and_link_local(server):
    for target in (url(server, "/img.png"), "http://169.254.169.254/"):
        with pytest.raises(BlockedURL):
            fetch_url(target, allow_private=True)
    assert server.hits == []


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("0.0.0.0", "unspecified"),
        ("::", "unspecified"), ("169.254.169.254", "link_local"), ("fe80::1", "link_local"),
        ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("fd00::1", "private"),
        ("100.64.0.1", "shared"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"), ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link_local"), ("64:ff9b::a9fe:a9fe", "link_local"),
        ("8.8.8.8", None), ("::ffff:8.8.8.8", None), ("2606:4700:4700::1111", None),
    ],
)
def test_classify_address(addr, reason):
    assert classify_address(ipaddress.ip_address(addr)) == reason


def test_check_address_policy():
    ip = ipaddress.ip_address
    assert check_address(ip("10.0.0.1"), allow_private=True) is None
    assert check_address(ip("127.0.0.1"), allow_private=True) == "loopback"
    nets = (ipaddress.ip_network("127.0.0.0/8"),)
    assert check_address(ip("127.0.0.1"), allow_networks=nets) is None
    assert check_address(ip("::ffff:127.0.0.1"), allow_networks=nets) is None
    assert check_address(ip("::1"), allow_networks=nets) == "loopback"


# --- loopback explicitly allowed: the real network paths ---------------------------------------


def test_download_and_cache(server, tmp_path):
    data = fetch_url(url(server, "/img.png"), allow_networks=LOOPBACK)
    assert data == PNG and server.hits == ["/img.png"]
    sha = image_sha256(PNG)
    assert (tmp_path / "cache" / "images" / sha[:2] / sha).read_bytes() == PNG
    assert fetch_url(url(server, "/img.png"), allow_networks=LOOPBACK) == PNG
    img = load_image(url(server, "/img.png"), allow_url_fetch=True, allow_networks=LOOPBACK)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (0, 128, 255)
    assert server.hits == ["/img.png"]  # both later calls were cache hits
    # Bytes cached under a relaxed policy are never served to the default guard.
    with pytest.raises(BlockedURL):
        fetch_url(url(server, "/img.png"))
    fetch_url(url(server, "/img.png"), allow_networks=LOOPBACK, cache=False)
    assert server.hits == ["/img.png", "/img.png"]


def test_byte_cap_with_and_without_content_length(server):
    for path in ("/big", "/big-nolen"):
        with pytest.raises(FetchTooLarge) as info:
            fetch_url(url(server, path), max_bytes=1000, allow_networks=LOOPBACK)
        assert info.value.reason == "fetch_too_large"
    assert fetch_url(url(server, "/big-nolen"), max_bytes=5000, allow_networks=LOOPBACK) == BIG
    assert server.hits == ["/big", "/big-nolen", "/big-nolen"]


@pytest.mark.parametrize("path", ["/slow", "/drip", "/drip-headers"])
def test_timeout(server, path):
    start = time.monotonic()
    with pytest.raises(FetchTimeout) as info:
        fetch_url(url(server, path), timeout=0.5, allow_networks=LOOPBACK)
    assert time.monotonic() - start < 1.5
    assert info.value.reason == "fetch_timeout" and server.hits == [path]


def test_redirect_chain_followed(server):
    assert fetch_url(url(server, "/r1"), allow_networks=LOOPBACK) == PNG
    assert server.hits == ["/r1", "/r2", "/r3", "/img.png"]


def test_redirect_limit(server):
    with pytest.raises(FetchError, match="redirects") as info:
        fetch_url(url(server, "/loop"), max_redirects=3, allow_networks=LOOPBACK)
    assert info.value.reason == "fetch_failed" and server.hits == ["/loop"] * 4


@pytest.mark.parametrize("path", ["/to-metadata", "/to-ftp", "/to-v6-loopback"])
def test_redirect_to_refused_target_blocked_on_that_hop(server, path):
    with pytest.raises(BlockedURL):
        fetch_url(url(server, path), allow_networks=LOOPBACK)
    assert server.hits == [path]  # the refused hop itself was never contacted


def test_http_error_status(server):
    with pytest.raises(FetchError, match="404") as info:
        fetch_url(url(server, "/missing"), allow_networks=LOOPBACK)
    assert isinstance(info.value, ImageError) and not isinstance(info.value, BlockedURL)
