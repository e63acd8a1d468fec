"""The SSRF guard and the pinned fetch, against literal and resolved addresses and a real local server."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared import netguard
from shared.netguard import BlockedAddress, DeadlineExceeded, FetchError, InvalidURL, ResponseTooLarge

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self):
        """80 kB in chunks of 4 kB."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(20):
            self.wfile.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _trickle(self):
        """A 1,000-byte answer one byte every 0.1 s."""
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(30):
            try:
                self.wfile.write(b"z")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    def do_GET(self):
        type(self).seen.append((self.command, self.path, self.headers.get("Host"), b""))
        if self.path == "/ok":
            self._send(200, b"hello", {"X-Thing": "1"})
        elif self.path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif self.path == "/redirect-private":
            self._send(302, b"", {"Location": "http://10.0.0.1/"})
        elif self.path == "/big":
            self._send(200, b"x" * 100_000)
        elif self.path == "/big-chunked":
            self._chunked()
        elif self.path == "/hang":
            time.sleep(3)
            self._send(200, b"late")
        elif self.path == "/trickle":
            self._trickle()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.command, self.path, self.headers.get("Host"), body))
        if self.path == "/redirect":
            self._send(307, b"", {"Location": "/echo"})
        else:
            self._send(201, body, {"Content-Type": "application/octet-stream"})


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients here give up on hanging answers on purpose


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/x",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://2130706433/",
        "http://0x7f.1/",
    ],
)
def test_refuses_non_public_literal_addresses(url):
    with pytest.raises(BlockedAddress) as info:
        netguard.check_url(url)
    assert "resolves to" in str(info.value) and "refused" in str(info.value)


def test_localhost_is_refused_after_resolving():
    with pytest.raises(BlockedAddress) as info:
        netguard.check_url("http://localhost:9/")
    assert info.value.host == "localhost"
    assert ipaddress.ip_address(info.value.address).is_loopback


def test_allow_networks_lets_chosen_private_networks_through():
    assert netguard.check_url("http://127.0.0.1:9/", LOOPBACK) == [ipaddress.ip_address("127.0.0.1")]
    assert netguard.check_url("http://[::ffff:127.0.0.1]/", LOOPBACK) == [ipaddress.ip_address("::ffff:127.0.0.1")]
    checked = netguard.check_url("http://localhost:9/", LOOPBACK)
    assert checked and all(a.is_loopback or a.ipv4_mapped for a in checked)
    with pytest.raises(BlockedAddress):
        netguard.check_url("http://10.0.0.1/", LOOPBACK)


def test_public_addresses_pass_including_translated_public_ones():
    assert netguard.check_url("https://8.8.8.8/") == [ipaddress.ip_address("8.8.8.8")]
    assert netguard.check_url("http://[2606:4700:4700::1111]/")
    assert netguard.check_url("http://[64:ff9b::808:808]/")  # NAT64 of a public address


def test_one_refused_address_refuses_the_whole_name(monkeypatch):
    monkeypatch.setattr(
        netguard, "resolve", lambda host, port: [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.5")]
    )
    with pytest.raises(BlockedAddress) as info:
        netguard.check_url("https://mixed.example/")
    assert info.value.address == "10.0.0.5"


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://x/", "http:///nohost", "8.8.8.8"])
def test_refuses_other_schemes_and_hostless_urls(url):
    with pytest.raises(InvalidURL):
        netguard.check_url(url)


def test_unresolvable_host_is_a_transient_fetch_error():
    with pytest.raises(FetchError) as info:
        netguard.check_url("http://no-such-host.invalid/")
    assert info.value.transient


def test_fetch_is_refused_before_any_connection(server):
    Handler.seen.clear()
    with pytest.raises(BlockedAddress):
        netguard.fetch(server + "/ok")
    assert Handler.seen == []


def test_fetch_reads_status_headers_and_body(server):
    response = netguard.fetch(server + "/ok", allow_networks=LOOPBACK)
    assert response.status == 200
    assert response.body == b"hello"
    assert response.headers["x-thing"] == "1"
    assert response.elapsed > 0


def test_fetch_posts_the_body_and_headers(server):
    response = netguard.fetch(
        server + "/echo", method="POST", body=b'{"a":1}', headers={"Content-Type": "application/json"},
        allow_networks=LOOPBACK,
    )
    assert response.status == 201 and response.body == b'{"a":1}'


def test_fetch_connects_to_the_checked_address_and_keeps_the_hostname(server, monkeypatch):
    """DNS is asked once: the connection goes to the checked address, Host names the host."""
    port = server.rsplit(":", 1)[1]
    calls = []

    def resolve_once(host, p):
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "resolve", resolve_once)
    real_getaddrinfo = socket.getaddrinfo

    def no_dns_for_names(host, *args, **kwargs):
        assert host != "pinned.example", "fetch resolved the name a second time"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns_for_names)
    Handler.seen.clear()
    response = netguard.fetch(f"http://pinned.example:{port}/ok", allow_networks=LOOPBACK)
    assert response.status == 200
    assert calls == ["pinned.example"]
    assert Handler.seen[-1][2] == f"pinned.example:{port}"


class ClosingHandler(BaseHTTPRequestHandler):
    """HTTP/1.0 (the default): the server closes the connection after each answer."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"x" * 70_000 if self.path == "/long" else b"bye"
        self.send_response(200)
        if self.path != "/no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_servers_that_close_the_connection_are_read_to_the_end():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ClosingHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert netguard.fetch(base + "/", allow_networks=LOOPBACK).body == b"bye"
        assert netguard.fetch(base + "/no-length", allow_networks=LOOPBACK).body == b"bye"
        assert len(netguard.fetch(base + "/long", allow_networks=LOOPBACK).body) == 70_000
        assert len(netguard.fetch(base + "/long", allow_networks=LOOPBACK, max_bytes=200, truncate=True).body) == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_slow_dns_lookup_is_cut_off_by_the_connect_timeout(monkeypatch):
    def slow_resolve(host, port):
        time.sleep(2)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "resolve", slow_resolve)
    with pytest.raises(FetchError) as info:
        netguard.fetch("http://slow-dns.example/", allow_networks=LOOPBACK, connect_timeout=0.2)
    assert info.value.transient and "DNS lookup of slow-dns.example took longer than 0.2s" in str(info.value)


def test_redirects_are_not_followed_by_default(server):
    response = netguard.fetch(server + "/redirect", allow_networks=LOOPBACK)
    assert response.status == 302 and response.headers["location"] == "/ok"


def test_redirects_are_followed_when_asked_and_each_hop_is_checked(server):
    assert netguard.fetch(server + "/redirect", allow_networks=LOOPBACK, follow_redirects=1).body == b"hello"
    answer = netguard.fetch(server + "/redirect", method="POST", body=b"again", allow_networks=LOOPBACK,
                            follow_redirects=2)
    assert answer.status == 201 and answer.body == b"again"  # 307 keeps the method and body
    with pytest.raises(BlockedAddress):
        netguard.fetch(server + "/redirect-private", allow_networks=LOOPBACK, follow_redirects=3)


def test_max_bytes_is_enforced_with_and_without_content_length(server):
    with pytest.raises(ResponseTooLarge):
        netguard.fetch(server + "/big", allow_networks=LOOPBACK, max_bytes=1000)
    with pytest.raises(ResponseTooLarge) as info:
        netguard.fetch(server + "/big-chunked", allow_networks=LOOPBACK, max_bytes=10_000)
    assert not info.value.transient
    assert len(netguard.fetch(server + "/big", allow_networks=LOOPBACK, max_bytes=100_000).body) == 100_000


def test_truncate_cuts_a_long_answer_instead_of_refusing_it(server):
    for path in ("/big", "/big-chunked"):
        response = netguard.fetch(server + path, allow_networks=LOOPBACK, max_bytes=200, truncate=True)
        assert response.status == 200 and len(response.body) == 200


def test_a_server_that_does_not_answer_hits_the_total_deadline(server):
    with pytest.raises(DeadlineExceeded) as info:
        netguard.fetch(server + "/hang", allow_networks=LOOPBACK, total_timeout=0.5)
    assert info.value.transient


def test_a_trickling_server_cannot_stretch_the_total_deadline(server):
    """Each byte arrives well within any per-read timeout; only a total deadline stops it."""
    with pytest.raises(DeadlineExceeded):
        netguard.fetch(server + "/trickle", allow_networks=LOOPBACK, connect_timeout=1.0, total_timeout=0.8)


def test_refused_connection_is_a_transient_fetch_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError) as info:
        netguard.fetch(f"http://127.0.0.1:{port}/", allow_networks=LOOPBACK)
    assert info.value.transient and "failed" in str(info.value)


def _tls_pair(tmp_path, hostname: str):
    """A CA and a server certificate for `hostname`, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_hostname(tmp_path, monkeypatch):
    ca, cert, key = _tls_pair(tmp_path, "hooks.example")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    monkeypatch.setattr(netguard, "resolve", lambda host, p: [ipaddress.ip_address("127.0.0.1")])
    client_ctx = ssl.create_default_context(cafile=str(ca))
    try:
        ok = netguard.fetch(f"https://hooks.example:{port}/ok", allow_networks=LOOPBACK, tls_context=client_ctx)
        assert ok.status == 200 and ok.body == b"hello"
        with pytest.raises(FetchError) as info:
            netguard.fetch(f"https://other.example:{port}/ok", allow_networks=LOOPBACK, tls_context=client_ctx)
        assert not info.value.transient and "certificate" in str(info.value)
        with pytest.raises(FetchError) as info:  # the default context: the system's CAs do not know the test CA
            netguard.fetch(f"https://hooks.example:{port}/ok", allow_networks=LOOPBACK)
        assert not info.value.transient and "certificate" in str(info.value)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_over_ipv6_loopback_when_allowed():
    class V6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    class HostEcho(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = self.headers["Host"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = V6Server(("::1", 0), HostEcho)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://[::1]:{httpd.server_address[1]}/"
    try:
        with pytest.raises(BlockedAddress):
            netguard.fetch(url)
        response = netguard.fetch(url, allow_networks=LOOPBACK)
        assert response.status == 200 and response.body == f"[::1]:{httpd.server_address[1]}".encode()
    finally:
        httpd.shutdown()
        httpd.server_close()


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; answers with the client's port so a test sees whether a connection was reused."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, body: bytes, headers: dict | None = None):
        self.send_response(200)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(str(self.client_address[1]).encode())


@pytest.fixture
def keepalive():
    httpd = QuietServer(("127.0.0.1", 0), KeepAliveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_every_fetch_opens_a_new_checked_connection(keepalive, monkeypatch):
    """Even to a server that would keep it open, no connection outlives its request: each fetch
    resolves and checks the name again and connects anew (the server sees a new client port)."""
    resolved = []
    real = netguard.resolve
    monkeypatch.setattr(netguard, "resolve", lambda host, port: resolved.append(host) or real(host, port))
    url = f"http://localhost:{keepalive.rsplit(':', 1)[1]}/hook"
    ports = {netguard.fetch(url, method="POST", body=b"{}", allow_networks=LOOPBACK).body for _ in range(3)}
    assert len(ports) == 3 and resolved == ["localhost"] * 3
