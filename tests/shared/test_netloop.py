"""netloop.Client against real local servers: netguard's guard, limits and kept connections, from one loop thread.

Every server here listens on 127.0.0.1 or ::1; names (*.invalid, which never resolve) reach them only
through a monkeypatched `netguard.resolve`, so a test that connected by name instead of by the
checked address would fail to connect at all.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import resource
import socket
import socketserver
import ssl
import struct
import threading
import time

import pytest

from shared import netguard, netloop
from shared.netguard import BlockedAddress, DeadlineExceeded, FetchError, InvalidURL, ResponseTooLarge
from tests.shared.test_netguard import LOOPBACK, ClosingHandler, Handler, QuietServer, _tls_pair

LOOP_THREAD = "pressroom-http"
V4, V6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")


# -- servers ------------------------------------------------------------------------------------


class EchoHandler(Handler):
    """HTTP/1.1 with keep-alive. Records every request on its server; answers by path."""

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        port = str(self.client_address[1]).encode()
        self.server.seen.append((self.command, self.path, self.headers, body, self.client_address[1]))
        route = self.path.split("?", 1)[0]
        if route == "/port":
            self._send(200, port)
        elif route == "/close":
            self._send(200, port, {"Connection": "close"})
            self.close_connection = True
        elif route == "/drop-after":
            self._send(200, port)
            self.close_connection = True  # closes without saying so, as an idle timeout would
        elif route == "/slow":
            time.sleep(0.3)
            self._send(200, port)
        elif route == "/redirect":
            self._send(302 if self.command == "GET" else 307, b"", {"Location": "/echo"})
        elif route == "/big":
            self._send(200, b"x" * 100_000)
        elif route == "/big-chunked":
            self._chunked()
        elif route == "/declared":  # promises far more than it sends
            self.send_response(200)
            self.send_header("Content-Length", "10000000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.server.release.wait(10)
        elif route == "/hang":
            self.server.release.wait(10)
            self._send(200, b"late")
        elif route == "/trickle":
            self._trickle()
        else:
            echo = {
                "method": self.command, "path": self.path, "host": self.headers.get("Host"),
                "headers": {k.lower(): self.headers.get_all(k) for k in self.headers},
                "length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "port": self.client_address[1],
            }
            self._send(201 if self.command == "POST" else 200, json.dumps(echo).encode(),
                        {"Content-Type": "application/json", "X-Thing": "1"})

    do_GET = do_POST = do_PUT = _handle

    def do_HEAD(self):
        self.server.seen.append((self.command, self.path, self.headers, b"", self.client_address[1]))
        self.send_response(200)
        self.send_header("Content-Length", "5")  # what a GET would get: no body follows
        self.end_headers()


class LocalServer(QuietServer):
    request_queue_size = 512  # many connections at once must not overflow the accept queue

    def __init__(self, address, handler, family):
        self.address_family = family
        super().__init__(address, handler)
        self.seen: list = []
        self.release = threading.Event()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url(httpd, path: str = "", scheme: str = "http", host: str | None = None) -> str:
    address, port = httpd.server_address[:2]
    host = host or (f"[{address}]" if ":" in address else address)
    return f"{scheme}://{host}:{port}{path}"


@pytest.fixture
def serve():
    """Starts LocalServers (HTTP, or HTTPS with a server SSLContext) and stops them after the test."""
    started = []

    def start(handler=EchoHandler, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        httpd = LocalServer((host, port), handler, _family(host))
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(serve):
    return serve()


class RawServer(socketserver.ThreadingTCPServer):
    """A TCP server that runs `script(server, sock, index)` for each connection (index counts from 1)."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, script):
        self.script, self.connections, self.log = script, 0, []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RawHandler)

    def handle_error(self, request, client_address):
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RawHandler(socketserver.BaseRequestHandler):
    def handle(self):
        with self.server._lock:
            self.server.connections += 1
            index = self.server.connections
        self.request.settimeout(10)
        self.server.script(self.server, self.request, index)


@pytest.fixture
def raw():
    started = []

    def start(script):
        srv = RawServer(script)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def _read_request(sock: socket.socket) -> bytes:
    """One bodiless request (the raw tests only GET), or b"" at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def _answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a server does that drops a connection with a request unread."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _v6_server_and_v4_probe(serve, **kwargs):
    """A server on ::1 and a socket bound (not listening) to 127.0.0.1 on the same port: connecting
    to 127.0.0.1 there is refused, unless the test makes the probe listen."""
    for _ in range(50):
        httpd = serve(host="::1", **kwargs)
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", httpd.server_address[1]))
        except OSError:
            probe.close()
            continue
        return httpd, probe
    pytest.fail("no port free on both 127.0.0.1 and ::1")


def _full_listener(sock: socket.socket) -> list[socket.socket]:
    """Make `sock` a listener whose accept queue is full: the kernel drops further SYNs, so a
    connect to it hangs (a loopback stand-in for an unreachable host)."""
    sock.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket(sock.family)
        filler.setblocking(False)
        filler.connect_ex(sock.getsockname()[:2])
        fillers.append(filler)
    time.sleep(0.05)
    return fillers


# -- the client ---------------------------------------------------------------------------------


@pytest.fixture
def client():
    return netloop.Client()


def _fetch(client: netloop.Client, url: str, **kwargs):
    kwargs.setdefault("allow_networks", LOOPBACK)
    return client.fetch(url, **kwargs)


def _outcome(client: netloop.Client, url: str, wait: float = 20.0, **kwargs):
    """request() with a callback: (what `done` got, the name of the thread that called it)."""
    kwargs.setdefault("allow_networks", LOOPBACK)
    got = []
    ready = threading.Event()

    def done(result):
        got.append((result, threading.current_thread().name))
        ready.set()

    client.request(url, done, **kwargs)
    assert ready.wait(wait), "done was never called"
    return got[0]


def _eventually(predicate, wait: float = 10.0) -> bool:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _fake_dns(monkeypatch, table: dict[str, list], calls: list | None = None):
    """netguard.resolve answering from `table` (literals resolve to themselves, other names not at all)."""

    def resolve(host, port):
        if calls is not None:
            calls.append((host, threading.current_thread().name))
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(host)]
        if host not in table:
            raise FetchError(f"cannot resolve {host}", transient=True)
        return list(table[host])

    monkeypatch.setattr(netguard, "resolve", resolve)


def _all_answers(client: netloop.Client, urls: list[str], wait: float = 30.0, **kwargs) -> list:
    """request() every URL at once; the results in the order of `urls`."""
    kwargs.setdefault("allow_networks", LOOPBACK)
    results: dict[int, object] = {}
    lock, all_done = threading.Lock(), threading.Event()

    def done(i, result):
        with lock:
            assert i not in results, "a request was answered twice"
            results[i] = result
            if len(results) == len(urls):
                all_done.set()

    for i, url in enumerate(urls):
        client.request(url, lambda result, i=i: done(i, result), **kwargs)
    assert all_done.wait(wait), f"{len(results)} of {len(urls)} answered"
    return [results[i] for i in range(len(urls))]


# -- requests and answers -----------------------------------------------------------------------


def test_get_sends_the_path_query_host_with_port_and_headers(client, server):
    response = _fetch(client, _url(server, "/echo?a=1&b=two%20words"), headers={"X-Test": "yes"})
    echo = json.loads(response.body)
    assert response.status == 200 and response.url == _url(server, "/echo?a=1&b=two%20words")
    assert echo["method"] == "GET" and echo["path"] == "/echo?a=1&b=two%20words"
    assert echo["host"] == f"127.0.0.1:{server.server_address[1]}"
    assert echo["headers"]["x-test"] == ["yes"] and echo["headers"]["accept-encoding"] == ["identity"]
    assert response.headers["x-thing"] == "1" and response.headers["content-type"] == "application/json"
    assert response.elapsed > 0
    assert json.loads(_fetch(client, _url(server)).body)["path"] == "/"  # no path at all: "/"


def test_post_and_put_send_the_body_with_its_length(client, server):
    posted = _fetch(client, _url(server, "/echo"), method="POST", body=b'{"a":1}',
                    headers={"Content-Type": "application/json"})
    echo = json.loads(posted.body)
    assert posted.status == 201 and echo["method"] == "POST" and echo["length"] == 7
    assert echo["headers"]["content-type"] == ["application/json"] and echo["headers"]["content-length"] == ["7"]
    assert server.seen[-1][3] == b'{"a":1}'
    big = bytes(range(256)) * 8192  # 2 MiB: more than one send() can take
    echo = json.loads(_fetch(client, _url(server, "/echo"), method="POST", body=big).body)
    assert echo["length"] == len(big) and echo["sha256"] == hashlib.sha256(big).hexdigest()
    echo = json.loads(_fetch(client, _url(server, "/echo"), method="PUT", body=b"").body)
    assert echo["method"] == "PUT" and echo["headers"]["content-length"] == ["0"]


def test_refused_addresses_and_bad_urls_go_to_the_callback_and_are_raised_by_fetch(client, server):
    url = _url(server, "/echo")
    result, thread = _outcome(client, url, allow_networks=())
    assert isinstance(result, BlockedAddress) and result.address == "127.0.0.1" and thread == LOOP_THREAD
    with pytest.raises(BlockedAddress):
        client.fetch(url)
    result, _ = _outcome(client, f"http://localhost:{server.server_address[1]}/echo", allow_networks=())
    assert isinstance(result, BlockedAddress) and result.host == "localhost"
    with pytest.raises(BlockedAddress):  # ::1 is not inside 127.0.0.0/8
        client.fetch(_url(server, host="[::1]"), allow_networks=LOOPBACK[:1])
    for bad in ("ftp://127.0.0.1/", "file:///etc/passwd", "http:///nohost", "127.0.0.1:80", "http://127.0.0.1:99999/"):
        result, thread = _outcome(client, bad)
        assert isinstance(result, InvalidURL) and thread == LOOP_THREAD, bad
        with pytest.raises(InvalidURL):
            _fetch(client, bad)
    assert server.seen == [] and client.opened == 0


@pytest.mark.parametrize(
    "path, headers",
    [("/a b", {}), ("/a\x00b", {}), ("/ok HTTP/1.1\r\nX-Smuggled: 1", {}), ("/", {"X-Split": "a\r\nX-Smuggled: 1"}),
     ("/", {"Bad Name": "1"}), ("/", {"X-Nul": "a\x00b"})],
    ids=["space", "nul", "crlf-in-url", "crlf-in-value", "space-in-name", "nul-in-value"],
)
def test_what_would_break_the_request_framing_is_refused_before_anything_is_sent(client, server, path, headers):
    url = _url(server) + path
    result, thread = _outcome(client, url, headers=headers)
    assert isinstance(result, ValueError) and thread == LOOP_THREAD  # InvalidURL is a ValueError too
    with pytest.raises(ValueError):
        _fetch(client, url, headers=headers)
    assert server.seen == [] and client.opened == 0


def test_a_head_answer_has_no_body_whatever_its_length_says(client, server):
    head = _fetch(client, _url(server, "/port"), method="HEAD", total_timeout=5)
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "5"
    assert _fetch(client, _url(server, "/port")).status == 200 and client.opened == 1
    assert [method for method, *_ in server.seen] == ["HEAD", "GET"]


def test_informational_answers_are_skipped_for_the_final_one(client, raw):
    def script(srv, sock, index):
        while _read_request(sock):
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok")

    srv = raw(script)
    response = _fetch(client, srv.url + "/")
    assert response.status == 200 and response.body == b"ok"
    assert response.headers.get("x-final") == "1" and "link" not in response.headers
    assert _fetch(client, srv.url + "/").body == b"ok" and client.opened == 1


def test_a_name_is_resolved_off_the_loop_once_and_its_connection_pinned(client, server, monkeypatch):
    calls = []
    _fake_dns(monkeypatch, {"pinned.invalid": [V4]}, calls)
    port = server.server_address[1]
    bodies = [_fetch(client, f"http://pinned.invalid:{port}/echo?n={n}") for n in range(5)]
    assert [json.loads(b.body)["host"] for b in bodies] == [f"pinned.invalid:{port}"] * 5
    assert len({json.loads(b.body)["port"] for b in bodies}) == 1 and client.opened == 1
    assert [host for host, _ in calls] == ["pinned.invalid"]  # checked once, when the connection was opened
    assert calls[0][1] != LOOP_THREAD
    assert client.idle_count("pinned.invalid") == 1 and client.idle_count("127.0.0.1") == 0


def test_every_new_connection_is_checked_even_with_one_kept(client, server, monkeypatch):
    _fake_dns(monkeypatch, {"both.invalid": [V4, V6]})
    url = _url(server, "/port")
    assert _fetch(client, url).status == 200
    with pytest.raises(BlockedAddress):  # the kept connection was allowed by other networks: not reused
        client.fetch(url, allow_networks=())
    with pytest.raises(BlockedAddress) as info:  # one refused address refuses the name
        client.fetch(f"http://both.invalid:{server.server_address[1]}/", allow_networks=LOOPBACK[:1])
    assert info.value.address == "::1"
    assert client.opened == 1 and client.idle_count() == 1 and len(server.seen) == 1


def test_a_kept_connection_is_reused_for_equal_allowed_networks_given_anew(client, server):
    url = _url(server, "/port")
    first = _fetch(client, url, allow_networks=LOOPBACK).body
    again = _fetch(client, url, allow_networks=tuple(list(LOOPBACK))).body  # equal, not the same tuple
    assert again == first and client.opened == 1
    assert _fetch(client, url, allow_networks=tuple(reversed(LOOPBACK))).status == 200  # another list: checked anew
    assert client.opened == 2


def test_a_slow_dns_lookup_does_not_hold_up_other_requests(client, server, monkeypatch):
    answer = threading.Event()
    real = netguard.resolve

    def resolve(host, port):
        if host == "slow.invalid":
            answer.wait(10)
            return [V4]
        return real(host, port)

    monkeypatch.setattr(netguard, "resolve", resolve)
    slow = []
    slow_done = threading.Event()
    client.request(f"http://slow.invalid:{server.server_address[1]}/port",
                   lambda result: (slow.append(result), slow_done.set()), allow_networks=LOOPBACK)
    assert _fetch(client, _url(server, "/port")).status == 200  # a literal: no DNS
    assert slow == []
    answer.set()
    assert slow_done.wait(10) and slow[0].status == 200


def test_a_slow_or_failing_dns_lookup_is_a_transient_fetch_error(client, monkeypatch):
    def resolve(host, port):
        if host == "gone.invalid":
            raise FetchError("cannot resolve gone.invalid", transient=True)
        time.sleep(2)
        return [V4]

    monkeypatch.setattr(netguard, "resolve", resolve)
    result, thread = _outcome(client, "http://slow-dns.invalid:9/", connect_timeout=0.2)
    assert isinstance(result, FetchError) and result.transient and thread == LOOP_THREAD
    assert "DNS lookup of slow-dns.invalid took longer than 0.2s" in str(result)
    with pytest.raises(FetchError) as info:
        _fetch(client, "http://gone.invalid/")
    assert info.value.transient and "cannot resolve" in str(info.value)


def test_a_closed_port_is_a_transient_fetch_error(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result, _ = _outcome(client, f"http://127.0.0.1:{port}/")  # bound, not listening: refused
    assert type(result) is FetchError and result.transient and "failed" in str(result)
    assert client.opened == 0


def test_the_next_address_is_tried_when_the_first_refuses(client, serve, monkeypatch):
    httpd, probe = _v6_server_and_v4_probe(serve)
    port = httpd.server_address[1]
    with probe:
        _fake_dns(monkeypatch, {"dual.invalid": [V4, V6], "down.invalid": [V4]})
        response = _fetch(client, f"http://dual.invalid:{port}/echo")
        assert response.status == 200 and json.loads(response.body)["host"] == f"dual.invalid:{port}"
        assert client.opened == 1
        with pytest.raises(FetchError) as info:
            _fetch(client, f"http://down.invalid:{port}/")
    assert info.value.transient and f"connection to down.invalid:{port} failed" in str(info.value)


def test_a_connect_that_hangs_moves_on_after_connect_timeout(client, serve, monkeypatch):
    httpd, probe = _v6_server_and_v4_probe(serve)
    port = httpd.server_address[1]
    fillers = _full_listener(probe)
    try:
        _fake_dns(monkeypatch, {"dual.invalid": [V4, V6], "stuck.invalid": [V4]})
        started = time.monotonic()
        response = _fetch(client, f"http://dual.invalid:{port}/port", connect_timeout=0.3, total_timeout=10)
        assert response.status == 200 and time.monotonic() - started < 5
        started = time.monotonic()
        result, _ = _outcome(client, f"http://stuck.invalid:{port}/", connect_timeout=0.3, total_timeout=10)
        assert type(result) is FetchError and "timed out" in str(result) and time.monotonic() - started < 5
        result, _ = _outcome(client, f"http://stuck.invalid:{port}/", connect_timeout=5, total_timeout=0.5)
        assert isinstance(result, DeadlineExceeded)  # the total deadline bounds the connect too
    finally:
        for s in [probe, *fillers]:
            s.close()


# -- HTTPS --------------------------------------------------------------------------------------


def _tls_contexts(tmp_path, hostname: str, names: list):
    ca, cert, key = _tls_pair(tmp_path, hostname)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)
    return server_ctx, ssl.create_default_context(cafile=str(ca))


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_hostname(client, serve, tmp_path, monkeypatch):
    names: list = []
    server_ctx, client_ctx = _tls_contexts(tmp_path, "hooks.invalid", names)
    httpd = serve(tls=server_ctx)
    port = httpd.server_address[1]
    _fake_dns(monkeypatch, {"hooks.invalid": [V4], "other.invalid": [V4]})
    url = f"https://hooks.invalid:{port}/echo"
    ok = _fetch(client, url, tls_context=client_ctx)
    assert ok.status == 200 and json.loads(ok.body)["host"] == f"hooks.invalid:{port}"
    assert names == ["hooks.invalid"]  # SNI names the host, though the connection went to 127.0.0.1
    big = b"p" * 1_000_000
    posted = json.loads(_fetch(client, url, method="POST", body=big, tls_context=client_ctx).body)
    assert posted["length"] == len(big) and posted["sha256"] == hashlib.sha256(big).hexdigest()
    assert _fetch(client, url, tls_context=client_ctx).status == 200
    assert client.opened == 1 and client.idle_count("hooks.invalid") == 1  # TLS connections are kept too
    with pytest.raises(FetchError) as info:
        _fetch(client, f"https://other.invalid:{port}/echo", tls_context=client_ctx)
    assert not info.value.transient and "certificate" in str(info.value)
    result, _ = _outcome(client, url)  # the default context does not trust the test CA
    assert isinstance(result, FetchError) and not result.transient and "certificate" in str(result)
    assert len(httpd.seen) == 3


def test_a_tls_handshake_that_hangs_moves_on_after_connect_timeout(client, serve, tmp_path, monkeypatch):
    """netguard's connect (and its connect_timeout) includes the TLS handshake."""
    server_ctx, client_ctx = _tls_contexts(tmp_path, "hooks.invalid", [])
    httpd, probe = _v6_server_and_v4_probe(serve, tls=server_ctx)
    port = httpd.server_address[1]
    probe.listen(8)  # the kernel completes TCP connections nobody accepts: no TLS answer, ever
    try:
        _fake_dns(monkeypatch, {"hooks.invalid": [V4, V6]})
        started = time.monotonic()
        result, _ = _outcome(client, f"https://hooks.invalid:{port}/port", tls_context=client_ctx,
                             connect_timeout=0.3, total_timeout=4)
        assert not isinstance(result, Exception), result
        assert result.status == 200 and time.monotonic() - started < 3
    finally:
        probe.close()


def test_ipv6_loopback_when_allowed(client, serve):
    httpd = serve(host="::1")
    url = _url(httpd, "/echo")
    with pytest.raises(BlockedAddress):
        client.fetch(url)
    response = _fetch(client, url)
    assert response.status == 200 and json.loads(response.body)["host"] == f"[::1]:{httpd.server_address[1]}"
    assert client.idle_count("::1") == 1


# -- deadlines, limits, redirects ---------------------------------------------------------------


def test_a_server_that_does_not_answer_hits_the_total_deadline(client, server):
    started = time.monotonic()
    result, thread = _outcome(client, _url(server, "/hang"), total_timeout=0.5)
    assert isinstance(result, DeadlineExceeded) and result.transient and thread == LOOP_THREAD
    assert 0.4 < time.monotonic() - started < 5  # the server answers only after 10 s
    assert client.idle_count() == 0
    with pytest.raises(DeadlineExceeded):
        _fetch(client, _url(server, "/hang"), total_timeout=0.3)
    assert _fetch(client, _url(server, "/port")).status == 200 and client.opened == 3


def test_a_trickling_server_cannot_stretch_the_total_deadline(client, server):
    """Each byte arrives well within any per-read timeout; only a total deadline stops it."""
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        _fetch(client, _url(server, "/trickle"), connect_timeout=1.0, total_timeout=0.8)
    assert time.monotonic() - started < 5  # unstopped, it would wait for 1000 bytes that never come


def test_max_bytes_is_enforced_with_and_without_content_length(client, server):
    with pytest.raises(ResponseTooLarge) as info:
        _fetch(client, _url(server, "/big"), max_bytes=1000)
    assert not info.value.transient
    result, _ = _outcome(client, _url(server, "/big-chunked"), max_bytes=10_000)
    assert isinstance(result, ResponseTooLarge) and not result.transient
    assert client.idle_count() == 0  # the rest of a refused answer is still on the wire
    started = time.monotonic()
    result, _ = _outcome(client, _url(server, "/declared"), max_bytes=1000, total_timeout=5)
    assert isinstance(result, ResponseTooLarge) and time.monotonic() - started < 4  # refused on its Content-Length
    assert len(_fetch(client, _url(server, "/big"), max_bytes=100_000).body) == 100_000
    exact = _fetch(client, _url(server, "/big-chunked"), max_bytes=20 * 4096)
    assert exact.body == b"y" * 20 * 4096


def test_truncate_cuts_a_long_answer_and_does_not_keep_the_connection(client, server):
    for path, byte in (("/big", b"x"), ("/big-chunked", b"y")):
        opened = client.opened
        response = _fetch(client, _url(server, path), max_bytes=200, truncate=True)
        assert response.status == 200 and response.body == byte * 200
        assert client.idle_count() == 0 and client.opened == opened + 1
    whole = _fetch(client, _url(server, "/big"), max_bytes=100_000, truncate=True)
    assert len(whole.body) == 100_000 and client.idle_count() == 1


def test_answers_ended_by_closing_are_read_to_the_end(client, serve):
    httpd = serve(ClosingHandler)  # HTTP/1.0: the server closes after each answer
    assert _fetch(client, _url(httpd, "/")).body == b"bye"
    assert _fetch(client, _url(httpd, "/no-length")).body == b"bye"
    assert len(_fetch(client, _url(httpd, "/long")).body) == 70_000
    assert _fetch(client, _url(httpd, "/long"), max_bytes=200, truncate=True).body == b"x" * 200
    with pytest.raises(ResponseTooLarge):
        _fetch(client, _url(httpd, "/long"), max_bytes=1000)
    assert client.idle_count() == 0


def test_redirects_are_returned_not_followed(client, server):
    response = _fetch(client, _url(server, "/redirect"))
    assert response.status == 302 and response.headers["location"] == "/echo"
    posted = _fetch(client, _url(server, "/redirect"), method="POST", body=b"again")
    assert posted.status == 307 and posted.body == b""
    assert [(method, path) for method, path, *_ in server.seen] == [("GET", "/redirect"), ("POST", "/redirect")]


# -- kept connections ---------------------------------------------------------------------------


def test_answered_connections_are_kept_and_reused(client, server):
    ports = {_fetch(client, _url(server, "/port")).body for _ in range(5)}
    assert len(ports) == 1 and client.opened == 1
    assert client.idle_count() == 1 and client.idle_count("127.0.0.1") == 1 and client.idle_count("::1") == 0
    posted = json.loads(_fetch(client, _url(server, "/echo"), method="POST", body=b"x").body)
    assert str(posted["port"]).encode() in ports and client.opened == 1


def test_connections_the_server_closes_are_not_reused(client, server):
    first = _fetch(client, _url(server, "/close")).body
    assert client.idle_count() == 0
    assert _fetch(client, _url(server, "/port")).body != first and client.opened == 2


def test_a_connection_closed_while_idle_is_dropped_and_replaced_without_an_error(client, server):
    dropped = _fetch(client, _url(server, "/drop-after")).body
    assert _eventually(lambda: client.idle_count() == 0)  # the loop saw the server's FIN while idle
    answer = _fetch(client, _url(server, "/port"))
    assert answer.status == 200 and answer.body != dropped and client.opened == 2


def test_a_server_that_closes_after_every_answer_never_fails_a_request(client, server):
    """Back to back, the next request sometimes finds the FIN noticed, sometimes not: either way it works."""
    ports = [_fetch(client, _url(server, "/drop-after")).body for _ in range(20)]
    assert len(set(ports)) == 20 and client.opened == 20


def _closes_when_the_second_request_arrives(mode: str):
    """Connection 1 answers its first request, then closes as soon as the next one arrives (the
    request was written into a connection the client had every reason to think open); later
    connections answer normally."""

    def script(srv, sock, index):
        while request := _read_request(sock):
            srv.log.append((index, request.split(b"\r\n", 1)[0]))
            if index == 1 and len(srv.log) > 1:
                if mode == "fin":
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    _reset(sock)
                return
            sock.sendall(_answer(b"conn %d" % index))

    return script


@pytest.mark.parametrize("mode", ["fin", "reset"])
def test_a_request_on_a_kept_connection_that_went_stale_is_sent_again_on_a_new_one(client, raw, mode):
    srv = raw(_closes_when_the_second_request_arrives(mode))
    assert _fetch(client, srv.url + "/one").body == b"conn 1"
    answer = _fetch(client, srv.url + "/two")
    assert answer.status == 200 and answer.body == b"conn 2"
    assert srv.log == [(1, b"GET /one HTTP/1.1"), (1, b"GET /two HTTP/1.1"), (2, b"GET /two HTTP/1.1")]
    assert client.opened == 2 and srv.connections == 2


def test_a_stale_request_is_sent_again_only_once(client, raw):
    def script(srv, sock, index):
        _read_request(sock)
        srv.log.append(index)
        if index == 1:
            sock.sendall(_answer(b"first"))
            _read_request(sock)
            srv.log.append(index)
        _reset(sock)

    srv = raw(script)
    assert _fetch(client, srv.url + "/").body == b"first"
    with pytest.raises(FetchError) as info:  # a new connection that fails is a failure, not stale
        _fetch(client, srv.url + "/")
    assert info.value.transient
    time.sleep(0.3)
    assert srv.log == [1, 1, 2] and srv.connections == 2 and client.opened == 2


@pytest.mark.parametrize(
    "reply", [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"this is not HTTP\r\n\r\n"], ids=["cut", "garbage"]
)
def test_a_request_the_server_answered_is_not_sent_again(client, raw, reply):
    """Whatever came back, the server saw the request and may have acted on it."""

    def script(srv, sock, index):
        while _read_request(sock):
            srv.log.append(index)
            if len(srv.log) == 1:
                sock.sendall(_answer(b"first"))
            else:
                sock.sendall(reply)
                sock.shutdown(socket.SHUT_RDWR)
                return

    srv = raw(script)
    assert _fetch(client, srv.url + "/").body == b"first"
    with pytest.raises(FetchError) as info:
        _fetch(client, srv.url + "/")
    assert info.value.transient and not isinstance(info.value, DeadlineExceeded)
    time.sleep(0.3)
    assert srv.log == [1, 1] and srv.connections == 1


def test_bytes_after_an_answer_are_not_taken_for_the_next_answer(client, raw):
    def script(srv, sock, index):
        first = True
        while _read_request(sock):
            srv.log.append(index)
            sock.sendall(_answer(b"one") + _answer(b"evil!") if first and index == 1 else _answer(b"real"))
            first = False

    srv = raw(script)
    assert _fetch(client, srv.url + "/").body == b"one"
    assert _fetch(client, srv.url + "/").body == b"real"
    assert client.idle_count() <= 1


def test_idle_connections_are_closed_after_idle_seconds(server):
    client = netloop.Client(idle_seconds=0.3)
    first = _fetch(client, _url(server, "/port"), connect_timeout=60, total_timeout=60).body  # no other timer
    assert client.idle_count() == 1
    assert _eventually(lambda: client.idle_count() == 0)  # closed by the loop, not only when next asked for
    assert _fetch(client, _url(server, "/port")).body != first and client.opened == 2


def test_old_connections_are_closed_after_max_age(server):
    never = netloop.Client(max_age=0.0)
    ports = {_fetch(never, _url(server, "/port")).body for _ in range(3)}
    assert len(ports) == 3 and never.opened == 3 and never.idle_count() == 0
    aged = netloop.Client(max_age=1.0)
    first = _fetch(aged, _url(server, "/port"), connect_timeout=60, total_timeout=60).body  # no other timer
    assert _eventually(lambda: aged.idle_count() == 0)  # however recently it was used
    assert _fetch(aged, _url(server, "/port")).body != first and aged.opened == 2


def test_at_most_per_origin_idle_connections_are_kept(server):
    client = netloop.Client(per_origin=2)
    answers = _all_answers(client, [_url(server, "/slow")] * 4, wait=20)  # four at once: four connections
    assert all(r.status == 200 for r in answers) and len({r.body for r in answers}) == 4 and client.opened == 4
    assert client.idle_count() == 2
    assert len({_fetch(client, _url(server, "/port")).body for _ in range(4)}) <= 2 and client.opened == 4


def test_at_most_max_idle_connections_are_kept_over_all_origins_the_longest_idle_closed_first(serve):
    servers = [serve() for _ in range(5)]
    client = netloop.Client(max_idle=3)
    for httpd in servers:
        assert _fetch(client, _url(httpd, "/port")).status == 200
    assert client.idle_count() == 3 and client.open_count() == 3 and client.opened == 5
    for httpd in servers[2:]:  # the three used last were kept
        _fetch(client, _url(httpd, "/port"))
    assert client.opened == 5
    _fetch(client, _url(servers[0], "/port"))  # the first one's was closed to make room
    assert client.opened == 6 and client.idle_count() == 3
    assert len(client._idle) == 3  # nothing is left behind for the origins it no longer keeps


def test_requests_beyond_connections_per_origin_wait_and_take_the_next_free_connection(server):
    client = netloop.Client(connections_per_origin=2)
    answers = _all_answers(client, [_url(server, "/slow") for _ in range(8)])
    assert all(r.status == 200 for r in answers)
    assert len({r.body for r in answers}) == 2 and client.opened == 2  # two connections carried all eight
    assert len(server.seen) == 8 and client.open_count() == 2 and client.idle_count() == 2


def test_other_origins_do_not_wait_behind_a_full_one(serve):
    busy, other = serve(), serve()
    client = netloop.Client(connections_per_origin=1)
    held = []
    client.request(_url(busy, "/hang"), held.append, allow_networks=LOOPBACK)  # holds busy's one connection
    assert _eventually(lambda: len(busy.seen) == 1)
    waiting = []
    client.request(_url(busy, "/port"), waiting.append, allow_networks=LOOPBACK)
    assert _fetch(client, _url(other, "/port")).status == 200  # answered while busy's second request waits
    assert waiting == [] and len(busy.seen) == 1
    busy.release.set()
    assert _eventually(lambda: len(held) == 1 and len(waiting) == 1)
    assert held[0].body == b"late" and waiting[0].status == 200 and client.open_count("127.0.0.1") == 2


def test_a_request_waiting_for_a_connection_ends_at_its_own_deadline(server):
    client = netloop.Client(connections_per_origin=1)
    held = []
    client.request(_url(server, "/hang"), held.append, allow_networks=LOOPBACK, total_timeout=20)
    assert _eventually(lambda: len(server.seen) == 1)
    result, _ = _outcome(client, _url(server, "/port"), total_timeout=0.5)
    assert isinstance(result, DeadlineExceeded) and len(server.seen) == 1  # never sent
    server.release.set()
    assert _eventually(lambda: len(held) == 1) and held[0].status == 200
    assert _fetch(client, _url(server, "/port")).status == 200 and client.opened == 1  # the kept one


def test_a_closed_connection_makes_room_for_the_next_waiting_request(raw):
    """Every answer closes its connection: each waiting request gets a new one, never two at once
    before an answer."""
    def script(srv, sock, index):
        with srv._lock:
            srv.active = getattr(srv, "active", 0) + 1
            srv.peak = max(getattr(srv, "peak", 0), srv.active)
        _read_request(sock)
        time.sleep(0.05)
        with srv._lock:  # before the answer: the next connection may only come after it
            srv.active -= 1
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n%d" % (index % 10))
        sock.close()

    srv = raw(script)
    client = netloop.Client(connections_per_origin=1)
    answers = _all_answers(client, [srv.url + f"/{i}" for i in range(5)])
    assert all(r.status == 200 for r in answers) and srv.connections == 5 and client.opened == 5
    assert srv.peak == 1 and client.open_count() == 0


def test_a_name_being_resolved_counts_against_its_origins_connections(server, monkeypatch):
    calls: list = []
    _fake_dns(monkeypatch, {"hooks.invalid": [V4]}, calls)
    client = netloop.Client(connections_per_origin=1)
    answers = _all_answers(client, [_url(server, "/port", host="hooks.invalid") for _ in range(4)])
    assert all(r.status == 200 for r in answers) and len({r.body for r in answers}) == 1
    assert client.opened == 1 and len(calls) == 1  # one name lookup for the one connection


# -- the loop -----------------------------------------------------------------------------------


def test_many_requests_from_many_threads_are_each_answered_exactly_once(client, server):
    total, threads_n = 200, 4
    lock = threading.Lock()
    results: list = []
    all_done = threading.Event()
    barrier = threading.Barrier(threads_n)

    def done(n, result):
        with lock:
            results.append((n, result, threading.current_thread().name))
            if len(results) == total:
                all_done.set()

    def submit(first):
        barrier.wait()
        for n in range(first, total, threads_n):
            client.request(_url(server, f"/echo?n={n}"), lambda result, n=n: done(n, result), allow_networks=LOOPBACK)

    submitters = [threading.Thread(target=submit, args=(i,)) for i in range(threads_n)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join()
    assert all_done.wait(60), f"{len(results)} of {total} answered"
    time.sleep(0.3)  # a second answer to any request would show up here
    counts = collections.Counter(n for n, _, _ in results)
    assert sorted(counts) == list(range(total)) and set(counts.values()) == {1}
    for n, result, thread in results:
        assert not isinstance(result, Exception), result
        assert result.status == 200 and json.loads(result.body)["path"] == f"/echo?n={n}" and thread == LOOP_THREAD
    assert len(server.seen) == total and client.idle_count() <= 16


def test_a_bug_in_a_step_fails_its_request_once_instead_of_losing_it(client, server, caplog, monkeypatch):
    """A request whose callback never came would hold its caller's slot for good."""
    real_send = client._send
    monkeypatch.setattr(client, "_send", lambda conn, job: 1 / 0)
    results = []
    with caplog.at_level(logging.ERROR, logger="pressroom.http"):
        for _ in range(2):
            client.request(_url(server, "/port"), results.append, allow_networks=LOOPBACK)
        assert _eventually(lambda: len(results) == 2)
        time.sleep(0.3)
    assert len(results) == 2  # each request ended exactly once
    assert all(isinstance(r, FetchError) and "ZeroDivisionError" in str(r) for r in results)
    assert "HTTP request to 127.0.0.1" in caplog.text
    monkeypatch.setattr(client, "_send", real_send)
    assert _fetch(client, _url(server, "/port")).status == 200  # the loop goes on, the broken connections closed
    assert client.idle_count() == 1


def test_a_callback_that_raises_does_not_stop_the_loop(client, server, caplog):
    called = threading.Event()

    def broken(result):
        called.set()
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="pressroom.http"):
        client.request(_url(server, "/port"), broken, allow_networks=LOOPBACK)
        assert called.wait(10)
        called.clear()
        client.request("ftp://127.0.0.1/", broken)
        assert called.wait(10)
        assert _fetch(client, _url(server, "/port")).status == 200
    logged = [r for r in caplog.records if r.name == "pressroom.http" and r.getMessage() == "HTTP request callback"]
    assert len(logged) == 2 and all(r.exc_info[0] is RuntimeError for r in logged)


def test_running_out_of_file_descriptors_fails_the_request_instead_of_losing_it(client, server, monkeypatch):
    _fake_dns(monkeypatch, {})  # literals only, without getaddrinfo: the connection's socket is the one fd needed
    url = _url(server, "/port")
    got = []
    ready = threading.Event()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers = []
    try:
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(highest + 16, hard), hard))
        with contextlib.suppress(OSError):
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        client.request(url, lambda result: (got.append(result), ready.set()), allow_networks=LOOPBACK)
        ready.wait(10)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert got, "done was never called"
    assert type(got[0]) is FetchError and got[0].transient and "Too many open files" in str(got[0])
    assert _fetch(client, url).status == 200


def test_a_server_that_does_not_speak_http_is_a_fetch_error(client, raw):
    def script(srv, sock, index):
        _read_request(sock)
        if index == 1:
            sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n")
            sock.recv(1)  # and keeps the connection open
        else:
            sock.sendall(bytes(range(256)) * 4)

    srv = raw(script)
    started = time.monotonic()
    result, thread = _outcome(client, srv.url + "/", total_timeout=10)
    assert type(result) is FetchError and result.transient and thread == LOOP_THREAD
    assert time.monotonic() - started < 5  # refused when it arrives, not at the deadline
    with pytest.raises(FetchError) as info:
        _fetch(client, srv.url + "/")
    assert not isinstance(info.value, DeadlineExceeded)
    assert client.idle_count() == 0 and _eventually(lambda: srv.connections == 2)
