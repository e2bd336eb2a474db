"""Opt-in image URL fetching with an SSRF guard, hard byte/time limits and a content cache.

Every hop (the first request and each redirect) is checked the same way: http/https only, no
userinfo, and every address the host resolves to must be publicly routable. The connection then
goes to the vetted IP itself (Host header and TLS SNI/certificate still use the hostname), so a
DNS answer cannot change between the check and the connect (DNS rebinding). Bodies are streamed
against a byte cap and an overall deadline enforced by a watchdog that shuts the socket down.
Results are cached by content sha256 under ``cache_dir()/images``.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from ecomvlm.config import cache_dir
from ecomvlm.images import BlockedURL, FetchError, FetchTimeout, FetchTooLarge, image_sha256

__all__ = [
    "DEFAULT_MAX_BYTES", "DEFAULT_MAX_REDIRECTS", "DEFAULT_TIMEOUT", "BlockedURL", "FetchError",
    "FetchTimeout", "FetchTooLarge", "check_address", "check_url", "classify_address", "fetch_url",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, not "private"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # translated to the embedded IPv4 by gateways
_SAFE_PATH_CHARS = "/?&=%:@!$'()*+,;~-._[]"
# allow_private relaxes only intranet ranges; loopback/link-local (cloud metadata) need an
# explicit allow_networks entry.
_PRIVATE_REASONS = frozenset({"private", "shared"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def classify_address(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused by default ("loopback", "link_local", ...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1 on dual-stack
            return classify_address(ip.ipv4_mapped)
        if ip in _NAT64:
            embedded = classify_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            if embedded:
                return embedded
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("shared", ip.version == 4 and ip in _SHARED),
        ("private", ip.is_private),
        ("non_global", not ip.is_global),  # catch-all for special ranges Python knows about
    )
    return next((name for name, hit in checks if hit), None)


def _in_networks(ip: IPAddress, networks: tuple[Network, ...]) -> bool:
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c.version == n.version and c in n for c in candidates for n in networks)


def check_address(
    ip: IPAddress, *, allow_private: bool = False, allow_networks: tuple[Network, ...] = ()
) -> str | None:
    """Refusal reason for connecting to ``ip`` under the given policy, or None if allowed."""
    if _in_networks(ip, allow_networks):
        return None
    reason = classify_address(ip)
    if allow_private and reason in _PRIVATE_REASONS:
        return None
    return reason


def check_url(url: str, source: str | None = None) -> tuple[str, str, int, str]:
    """Static URL checks; returns (scheme, ascii host, port, request target) or BlockedURL."""
    src = source or url
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise BlockedURL(src, f"control or space characters in URL {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURL(src, f"scheme {scheme or '(none)'!r} is not allowed in {url!r}")
    if "@" in parts.netloc:
        raise BlockedURL(src, f"credentials (userinfo) are not allowed in {url!r}")
    if not parts.hostname:
        raise BlockedURL(src, f"no host in {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise BlockedURL(src, f"invalid host or port in {url!r}: {exc}") from exc
    target = quote(parts.path or "/", safe=_SAFE_PATH_CHARS)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_PATH_CHARS)
    return scheme, host, port, target


def _resolve(host: str, port: int, url: str, src: str, policy: dict) -> list[tuple]:
    """Resolve ``host`` and vet EVERY address; one bad answer refuses the whole host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise FetchError(src, f"cannot resolve {host!r}: {exc}") from exc
    addrs: list[tuple] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = check_address(ip, **policy)
        if reason:
            raise BlockedURL(src, f"{url!r}: host {host!r} resolves to {ip} ({reason})")
        if (family, sockaddr) not in addrs:
            addrs.append((family, sockaddr))
    if not addrs:
        raise FetchError(src, f"no addresses for {host!r}")
    return addrs


def _connect_pinned(family: int, sockaddr: tuple, timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection whose Host header names ``host`` but whose socket goes to a vetted IP."""

    def __init__(self, host: str, port: int, addr: tuple, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addr = addr
        self.pinned: socket.socket | None = None  # survives http.client's early close()

    def connect(self) -> None:
        self.sock = self.pinned = _connect_pinned(*self._addr, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Same pinning for TLS; SNI and certificate verification still use the hostname."""

    def __init__(self, host: str, port: int, addr: tuple, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._addr = addr
        self.pinned: socket.socket | None = None

    def connect(self) -> None:
        raw = _connect_pinned(*self._addr, self.timeout)
        try:
            self.sock = self.pinned = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


_Pinned = _PinnedHTTPConnection | _PinnedHTTPSConnection


class _Watchdog:
    """Overall deadline: a timer shuts the socket down so no slow-drip server can outlast it."""

    def __init__(self, timeout: float) -> None:
        self.end = time.monotonic() + timeout
        self.fired = threading.Event()
        self._timer: threading.Timer | None = None

    def remaining(self, src: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0 or self.fired.is_set():
            raise FetchTimeout(src, "overall deadline exceeded")
        return left

    def arm(self, conn: _Pinned, src: str) -> None:
        self._timer = threading.Timer(self.remaining(src), self._fire, args=(conn,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, conn: _Pinned) -> None:
        self.fired.set()
        sock = conn.pinned
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to interrupt

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _one_hop(url: str, src: str, max_bytes: int, dog: _Watchdog, policy: dict) -> bytes | str:
    """Fetch one URL: returns the body, or the absolute redirect target as a str."""
    scheme, host, port, target = check_url(url, src)
    addrs = _resolve(host, port, url, src, policy)
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addrs[0], timeout=dog.remaining(src))
    dog.arm(conn, src)
    try:
        conn.request("GET", target, headers={
            "User-Agent": "ecomvlm-fetch/1", "Accept": "image/*",
            "Accept-Encoding": "identity",  # never let a server hand us a compression bomb
            "Connection": "close",
        })
        resp = conn.getresponse()
        if resp.status in _REDIRECT_CODES:
            location = resp.getheader("Location")
            if not location:
                raise FetchError(src, f"HTTP {resp.status} without Location from {url!r}")
            return urljoin(url, location.strip())
        if resp.status != 200:
            raise FetchError(src, f"HTTP {resp.status} from {url!r}")
        length = (resp.getheader("Content-Length") or "").strip()
        if length.isdigit() and int(length) > max_bytes:
            raise FetchTooLarge(src, f"Content-Length {length} exceeds {max_bytes} bytes")
        body = bytearray()
        while True:
            # getresponse() may already have dropped conn.sock (Connection: close); the
            # response still reads from the same socket, which we keep as conn.pinned.
            if conn.pinned is not None:
                conn.pinned.settimeout(dog.remaining(src))
            chunk = resp.read1(_CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise FetchTooLarge(src, f"body exceeds {max_bytes} bytes")
        if dog.fired.is_set():
            raise FetchTimeout(src, "overall deadline exceeded")
        if resp.length:  # read1 reports a short body as EOF, not IncompleteRead
            raise FetchError(src, f"connection closed {resp.length} bytes early")
        return bytes(body)
    except TimeoutError as exc:
        raise FetchTimeout(src, f"timed out reading {url!r}") from exc
    except (OSError, http.client.HTTPException) as exc:
        if dog.fired.is_set():
            raise FetchTimeout(src, "overall deadline exceeded") from exc
        raise FetchError(src, f"{type(exc).__name__} fetching {url!r}: {exc}") from exc
    finally:
        dog.disarm()
        conn.close()


# --- content-addressed cache ------------------------------------------------------------------


def _cache_root() -> Path:
    return cache_dir() / "images"


def blob_path(sha: str) -> Path:
    """Where the bytes with this sha256 live in the cache."""
    return _cache_root() / sha[:2] / sha


def _index_path(url: str, policy_tag: str) -> Path:
    # The policy is part of the key: bytes fetched under a relaxed guard (tests, intranet) are
    # never served to a caller using the default guard.
    key = hashlib.sha256(f"{policy_tag}\n{url}".encode()).hexdigest()
    return _cache_root() / "urls" / key[:2] / key


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cache_get(index: Path) -> bytes | None:
    try:
        sha = index.read_text().strip()
        data = blob_path(sha).read_bytes() if len(sha) == 64 else None
    except OSError:
        return None
    # Verify on read: a damaged blob is treated as a miss and refetched.
    return data if data is not None and image_sha256(data) == sha else None


def _cache_put(index: Path, data: bytes) -> None:
    sha = image_sha256(data)
    try:
        if not blob_path(sha).exists():
            _atomic_write(blob_path(sha), data)
        _atomic_write(index, sha.encode())
    except OSError as exc:  # a read-only cache must not fail the fetch itself
        log.warning("could not cache %s: %s", sha, exc)


def fetch_url(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    cache: bool = True,
    allow_private: bool = False,
    allow_networks: Iterable[str | Network] = (),
) -> bytes:
    """GET an http(s) URL under the SSRF guard and return its body bytes.

    ``allow_private`` admits RFC 1918/ULA/CGNAT hosts (intranet CDNs); loopback, link-local and
    anything else refused is reachable only through an explicit ``allow_networks`` CIDR list.
    ``timeout`` bounds the whole fetch, redirects included (DNS lookups excepted).
    """
    nets = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)
    policy = {"allow_private": allow_private, "allow_networks": nets}
    check_url(url)  # refuse bad schemes/userinfo before even consulting the cache
    relaxed = allow_private or nets
    tag = f"private={allow_private};nets={sorted(map(str, nets))}" if relaxed else ""
    index = _index_path(url, tag)
    if cache and (hit := _cache_get(index)) is not None:
        if len(hit) > max_bytes:
            raise FetchTooLarge(url, f"cached body exceeds {max_bytes} bytes")
        return hit
    dog = _Watchdog(timeout)
    current = url
    for _hop in range(max_redirects + 1):
        result = _one_hop(current, url, max_bytes, dog, policy)
        if isinstance(result, bytes):
            if cache:
                _cache_put(index, result)
            return result
        current = result  # re-checked from scratch on the next hop
    raise FetchError(url, f"more than {max_redirects} redirects")
