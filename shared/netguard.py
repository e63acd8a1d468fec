"""The only outbound HTTP path: SSRF guard, pinned connections, hard limits.

Every URL a user gives Pressroom (subscriber webhooks, photos to fetch) is a way into the
network Pressroom runs in. `check_url` resolves the host once and refuses any address that
is not globally routable (private, loopback, link-local, CGNAT, multicast, reserved,
unspecified, and the IPv6 forms that embed such an IPv4 address) unless an operator allowed
its network. `fetch` then connects to exactly the address that was checked, so a DNS answer
that changes between check and connect (DNS rebinding) cannot redirect the request; the
`Host` header, TLS SNI and certificate check still use the hostname.

`fetch` never hangs past `total_timeout`, never reads more than `max_bytes`, and does not
follow redirects unless asked (each hop is checked again).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not caught by ipaddress' is_global / is_private in every Python version.
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # CGNAT (RFC 6598)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): the embedded address is not at a fixed place
        "2001::/32",  # Teredo: tunnels to an address we cannot check
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
REDIRECTS = (301, 302, 303, 307, 308)


class BlockedAddress(Exception):
    """The URL's host resolves to an address Pressroom refuses to connect to."""

    def __init__(self, host: str, address: str, reason: str = "not a public address") -> None:
        super().__init__(f"{host} resolves to {address}, which is refused ({reason})")
        self.host = host
        self.address = address


class InvalidURL(ValueError):
    """The URL is not an absolute http(s) URL with a host."""


class FetchError(Exception):
    """The request failed on the network; `transient` says whether trying again may help."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ResponseTooLarge(FetchError):
    """The answer is larger than the caller's `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"response body exceeds {max_bytes} bytes", transient=False)


class DeadlineExceeded(FetchError):
    """The whole request took longer than `total_timeout`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request took longer than {seconds:g}s", transient=True)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    url: str = ""


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to (mapped, 6to4, NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def refusal_reason(addr: IPAddress) -> str | None:
    """Why `addr` must not be reached from Pressroom, or None if it is a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"embeds {embedded}: {inner}" if inner else None
        if addr.scope_id:
            return "scoped address"
    for label, test in (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
    ):
        if test:
            return label
    for net in _ALWAYS_REFUSED:
        if addr.version == net.version and addr in net:
            return f"in {net}"
    if not addr.is_global:
        return "not globally routable"
    return None


def _allowed(addr: IPAddress, allow_networks: Iterable[IPNetwork]) -> bool:
    candidates = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            candidates.append(embedded)
    return any(c.version == net.version and c in net for c in candidates for net in allow_networks)


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # would break a request line or Host header


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an absolute http(s) URL; InvalidURL otherwise,
    also for spaces or control characters, which no request line may carry."""
    if _UNSAFE.search(url):
        raise InvalidURL(f"{url!r} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidURL(f"only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidURL(f"{url!r} has no host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), target


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every A/AAAA address of `host` (a literal resolves to itself); FetchError if none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}", transient=True) from None
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0])
        if addr not in out:
            out.append(addr)
    if not out:
        raise FetchError(f"{host} has no addresses", transient=True)
    return out


def _resolve_within(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """resolve() that gives up after `timeout` seconds: getaddrinfo itself cannot be interrupted,
    so a slow resolver is left to finish in a daemon thread while the caller moves on."""
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if timeout is None or literal:
        return resolve(host, port)
    result: dict = {}

    def run() -> None:
        try:
            result["addresses"] = resolve(host, port)
        except Exception as exc:  # handed to the caller below
            result["error"] = exc

    thread = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise FetchError(f"DNS lookup of {host} took longer than {timeout:g}s", transient=True)
    if "error" in result:
        raise result["error"]
    return result["addresses"]


def check_url(
    url: str, allow_networks: tuple[IPNetwork, ...] = (), dns_timeout: float | None = None
) -> list[IPAddress]:
    """Resolve the URL's host and return its addresses if every one may be reached.

    Raises InvalidURL (not http(s), no host), FetchError (does not resolve, or not within
    `dns_timeout` seconds) or BlockedAddress (some address is refused and not inside
    `allow_networks`). One bad address refuses the whole name: the connection must not
    depend on which one is tried.
    """
    _scheme, host, port, _target = split_url(url)
    addresses = _resolve_within(host, port, dns_timeout)
    for addr in addresses:
        reason = refusal_reason(addr)
        if reason and not _allowed(addr, allow_networks):
            raise BlockedAddress(host, str(addr), reason)
    return addresses


class _DeadlineReader(io.RawIOBase):
    """A socket reader whose every recv waits at most until the request's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, total: float) -> None:
        self._sock, self._deadline, self._total = sock, deadline, total

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(self._total)
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise DeadlineExceeded(self._total) from None


class _DeadlineSocket:
    """What HTTPResponse needs of a socket (makefile, close), reading under a deadline.

    close() does nothing: http.client closes the connection's socket as soon as it knows
    the server will close (HTTP/1.0, `Connection: close`) while the body is still to be
    read; the real socket is closed by `_exchange` when it is done.
    """

    def __init__(self, sock: socket.socket, deadline: float, total: float) -> None:
        self._sock, self._deadline, self._total = sock, deadline, total

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, self._total))

    def close(self) -> None:
        pass


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked address while speaking HTTP to the hostname."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def _open(self) -> socket.socket:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, address, timeout)
        self.context = context

    def connect(self) -> None:
        self.sock = self.context.wrap_socket(self._open(), server_hostname=self.host)


_TLS: ssl.SSLContext | None = None


def default_tls_context() -> ssl.SSLContext:
    """The process's default verifying context (made once: loading the CA store is slow)."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    allow_networks: tuple[IPNetwork, ...] = (),
    connect_timeout: float = 5.0,
    total_timeout: float = 15.0,
    max_bytes: int = 10 * 1024 * 1024,
    follow_redirects: int = 0,
    tls_context: ssl.SSLContext | None = None,
    truncate: bool = False,
) -> Response:
    """Send one request to a checked address and read the whole answer.

    Any status is returned as a Response (redirects too, unless `follow_redirects` > 0).
    With `truncate`, an answer longer than `max_bytes` is cut there instead of refused
    (for callers that only keep the first bytes of an answer).
    Raises InvalidURL, BlockedAddress, ResponseTooLarge, DeadlineExceeded, or FetchError
    for network failures (`transient` False when retrying cannot help).
    """
    started = time.monotonic()
    deadline = started + total_timeout
    hops = 0
    while True:
        response = _fetch_once(
            url, method, body, headers or {}, allow_networks, connect_timeout, total_timeout, deadline,
            max_bytes, tls_context, truncate,
        )
        location = response.headers.get("location")
        if response.status not in REDIRECTS or not location or hops >= follow_redirects:
            return Response(response.status, response.headers, response.body, time.monotonic() - started, url)
        hops += 1
        url = urljoin(url, location)
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None


def _fetch_once(
    url: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    allow_networks: tuple[IPNetwork, ...],
    connect_timeout: float,
    total_timeout: float,
    deadline: float,
    max_bytes: int,
    tls_context: ssl.SSLContext | None,
    truncate: bool,
) -> Response:
    scheme, host, port, target = split_url(url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded(total_timeout)
    context = (tls_context or default_tls_context()) if scheme == "https" else None
    addresses = check_url(url, allow_networks, dns_timeout=min(connect_timeout, deadline - time.monotonic()))
    last_error: Exception | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(total_timeout)
        timeout = min(connect_timeout, remaining)
        if context is not None:
            conn: _PinnedHTTPConnection = _PinnedHTTPSConnection(host, port, address, timeout, context)
        else:
            conn = _PinnedHTTPConnection(host, port, address, timeout)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise FetchError(f"TLS certificate of {host} is not valid: {exc.verify_message}", transient=False) from None
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            last_error = exc
            continue
        try:
            return _exchange(conn, method, target, body, headers, deadline, total_timeout, max_bytes, url, truncate)
        finally:
            conn.close()
    kind = "timed out" if isinstance(last_error, TimeoutError) else "failed"
    raise FetchError(f"connection to {host}:{port} {kind}: {last_error}", transient=True)


def _exchange(
    conn: _PinnedHTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
    total_timeout: float,
    max_bytes: int,
    url: str,
    truncate: bool = False,
) -> Response:
    """Send the request and read the answer under the deadline; the socket is closed after."""
    sock = conn.sock
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(total_timeout)
        sock.settimeout(remaining)
        conn.request(method, target, body=body, headers=headers)
        conn.sock = _DeadlineSocket(sock, deadline, total_timeout)
        raw = conn.getresponse()
        answer_headers = {k.lower(): v for k, v in raw.getheaders()}
        declared = answer_headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and not truncate:
            raise ResponseTooLarge(max_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = raw.read(min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                if truncate:
                    return Response(raw.status, answer_headers, b"".join(chunks)[:max_bytes], 0.0, url)
                raise ResponseTooLarge(max_bytes)
        return Response(raw.status, answer_headers, b"".join(chunks), 0.0, url)
    except FetchError:
        raise
    except TimeoutError:
        raise DeadlineExceeded(total_timeout) from None
    except (http.client.HTTPException, OSError) as exc:
        raise FetchError(f"{type(exc).__name__} talking to {conn.host}: {exc}", transient=True) from None
    finally:
        sock.close()
