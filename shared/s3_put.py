"""PutObject signed with SigV4 here and sent on a connection each thread keeps.

Every accepted article is written to the data bucket before the API answers, and every
page a build renders is written to the site bucket, so PutObject is the hottest S3 call.
Through a boto3 client a 3.4 kB PUT costs its thread ~1.6 ms of CPU, mostly in the
pipeline around the request (event hooks, serialisation, urllib3 and botocore's response
wrapping); signed with botocore's S3SigV4Auth and sent on `http.client`, ~0.65 ms; signed
here, ~0.5 (botocore's signer parses the URL and filters the headers again on every
call); framed, and its answer parsed, as `netloop`'s requests are (`shared/http1.py`,
llhttp through httptools) rather than by `http.client` and the email package's header
parser, ~0.33. `tests/shared/test_s3_put.py` checks the signature against botocore's for
the same request, and a signature-checking server takes it. Only the plain case takes
this path: a throttle, a server error, a transient S3 refusal, no answer in time or a
connection that cannot be made goes back to boto3 (`SignedPut.put`), whose retries and
error handling are the reference (`S3Storage.put`).
A thread's connection closes with its thread.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import botocore.session
import httptools
from botocore.httpsession import get_cert_path

from shared.http1 import Answer, request_bytes

RETRY_WITH_BOTO = frozenset({408, 429})  # and every 5xx: boto3's standard retry mode handles them
# S3's 400 and 403 answers that are not the request's fault: an idle socket, a clock or a
# session token out of date. boto3 retries, corrects its clock skew or refreshes its credentials.
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeTooSkewed", "ExpiredToken", "TokenRefreshRequired"})
_ERROR_PART = re.compile(rb"<(Code|Message)>([^<]*)</\1>")
_MAX_ANSWER = 64 * 1024  # of an answer's body kept (an error document is a few hundred bytes)


class PutRefused(Exception):
    """The server refused the PUT for good (a 4xx such as NoSuchBucket or SignatureDoesNotMatch)."""

    def __init__(self, status: int, body: bytes) -> None:
        parts = {name.decode(): value.decode("utf-8", "replace") for name, value in _ERROR_PART.findall(body)}
        self.status, self.code = status, parts.get("Code", "")
        super().__init__(f"HTTP {status} {self.code}: {parts.get('Message', '')}".rstrip(": "))


class SignedPut:
    """PUTs to one S3 endpoint (path-style addressing, as `s3_client` configures it)."""

    def __init__(self, endpoint_url: str, region: str, credentials, connect_timeout: float = 5,
                 read_timeout: float = 30, ca_bundle: str | None = None) -> None:
        parts = urlsplit(endpoint_url)
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self.credentials = credentials
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        default_port = 443 if self._https else 80
        self._host_header = parts.netloc.rpartition("@")[2]
        if parts.port == default_port:
            self._host_header = self._host_header.rsplit(":", 1)[0]
        self._base_path = quote(parts.path.rstrip("/"), safe="/~")
        self._keys: tuple[str, str, bytes] = ("", "", b"")  # (secret, date, signing key)
        self._timeouts = (connect_timeout, read_timeout)
        self._tls = ssl.create_default_context(cafile=ca_bundle or get_cert_path(True)) if self._https else None
        self._local = threading.local()

    @classmethod
    def for_client(cls, client, session: botocore.session.Session) -> SignedPut | None:
        """The signed PUT beside a boto3 S3 client made from `session`, or None where it
        cannot stand in for it: no credentials (anonymous access), a proxy or client
        certificate, or an endpoint that is not http(s). TLS verifies against the CA bundle
        botocore would use (AWS_CA_BUNDLE or the session's ca_bundle, else its default)."""
        url = client.meta.endpoint_url
        config = client.meta.config
        credentials = session.get_credentials()
        if credentials is None or urlsplit(url).scheme not in ("http", "https"):
            return None
        if config.proxies or config.client_cert or _proxied(url):
            return None
        return cls(url, client.meta.region_name or "us-east-1", credentials, config.connect_timeout,
                   config.read_timeout, session.get_config_variable("ca_bundle"))

    def put(self, bucket: str, key: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """True once stored; False when boto3 should make the attempt instead (a 408, 429 or
        5xx answer, a TRANSIENT_CODES one, no answer in time or no connection); PutRefused
        for any other refusal."""
        path = f"{self._base_path}/{bucket}/{quote(key, safe='/~')}"
        try:
            status, answer = self._send(path, self.signed_headers(path, headers, body), body)
        except (OSError, ValueError):  # ValueError: a header that cannot be framed, boto3's to refuse
            return False
        if 200 <= status < 300:
            return True
        if status in RETRY_WITH_BOTO or status >= 500:
            return False
        refused = PutRefused(status, answer)
        if refused.code in TRANSIENT_CODES:
            return False
        raise refused

    def signed_headers(self, path: str, headers: Mapping[str, str], body: bytes,
                       now: float | None = None) -> dict[str, str]:
        """`headers` with Host, the payload's SHA-256, the date and the SigV4 Authorization of a
        PUT of `body` to `path` (already percent-encoded). Every header is signed."""
        credentials = self.credentials.get_frozen_credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        date = stamp[:8]
        payload = hashlib.sha256(body).hexdigest()
        signed = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
        signed.update({"host": self._host_header, "x-amz-content-sha256": payload, "x-amz-date": stamp})
        if credentials.token:
            signed["x-amz-security-token"] = credentials.token
        names = sorted(signed)
        listed = ";".join(names)
        lines = "".join(f"{name}:{signed[name]}\n" for name in names)
        canonical = f"PUT\n{path}\n\n{lines}\n{listed}\n{payload}"
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(credentials.secret_key, date), to_sign.encode(), "sha256").hex()
        signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                                   f"SignedHeaders={listed}, Signature={signature}")
        return signed

    def _signing_key(self, secret: str, date: str) -> bytes:
        kept_secret, kept_date, key = self._keys
        if (kept_secret, kept_date) != (secret, date):
            key = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
            for part in (self.region, "s3", "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._keys = (secret, date, key)
        return key

    def _send(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        sock = getattr(self._local, "sock", None)
        kept = sock is not None
        if sock is None:
            sock = self._local.sock = self._connect()
        request = request_bytes("PUT", path, self._host_header, body, headers)  # Host as signed
        answer = Answer()
        answer.expect(_MAX_ANSWER)
        try:
            sock.sendall(request)
            _read(sock, answer)
        except OSError as exc:
            sock.close()
            self._local.sock = None
            if kept and not isinstance(exc, (TimeoutError, _BrokenAnswer)):
                # the server closed a kept connection while it was idle: once more on a new one
                # (a server that took the PUT and is slow to answer gets no second copy from here)
                return self._send(path, headers, body)
            raise
        if not answer.keep:
            sock.close()
            self._local.sock = None
        return answer.status, answer.body

    def _connect(self) -> socket.socket:
        connect, read = self._timeouts
        sock = socket.create_connection((self._host, self._port or (443 if self._https else 80)), timeout=connect)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(read)
        except BaseException:
            sock.close()
            raise
        return sock


class _BrokenAnswer(ConnectionError):
    """The server began to answer and the answer broke off: it saw the PUT."""


def _read(sock: socket.socket, answer: Answer) -> None:
    """Read the answer whole, or raise OSError (_BrokenAnswer once any byte of it has come)."""
    heard = False
    while not answer.complete:
        try:
            data = sock.recv(65536)
        except OSError as exc:
            if heard:
                raise _BrokenAnswer(f"the S3 server's answer broke off: {exc}") from exc
            raise
        if not data:
            if answer.answered and answer.until_close():  # a body that ends with the connection
                answer.keep = False
                return
            if heard:
                raise _BrokenAnswer("the S3 server closed the connection mid-answer")
            raise ConnectionError("the S3 server closed the connection before answering")
        heard = True
        try:
            answer.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if answer.complete:  # bytes after a whole answer: it stands, the connection goes
                answer.keep = False
                return
            raise _BrokenAnswer(f"not an HTTP answer from the S3 server: {exc}") from exc


def _proxied(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")
