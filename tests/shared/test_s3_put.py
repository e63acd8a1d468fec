"""SignedPut: PUTs a signature-checking S3 server takes, and what goes back to boto3."""

from __future__ import annotations

import datetime
import os
import ssl
import uuid
from urllib.parse import quote

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shared.runtime import Runtime
from shared.s3_put import PutRefused, SignedPut
from shared.settings import Settings
from shared.storage import S3Storage, StorageUnavailable, ensure_buckets, s3_client, signed_put
from tests.conftest import make_env
from tests.shared.test_netguard import _tls_pair

BODY = b"<html>" + b"x" * 3000 + b"</html>"


def _settings(redis_server, s3_url: str) -> Settings:
    return Settings.from_env({**os.environ, **make_env(redis_server.url, s3_url)})


def _boto_puts(client) -> list[int]:
    """Counts the PutObject calls that go through boto3's own pipeline."""
    calls: list[int] = []
    client.meta.events.register("provide-client-params.s3.PutObject", lambda **_: calls.append(1))
    return calls


@pytest.fixture(scope="module")
def seaweed_rt(redis_server, seaweed_server) -> Runtime:
    settings = _settings(redis_server, seaweed_server.url)
    ensure_buckets(settings)
    return Runtime(settings)


@pytest.mark.parametrize("key", [
    "articles/plain.json",
    "articles/sp ace é+=~!*'().json",
    "pages/ü/ß/%41.html",
    "pages//twice/index.html",
])
def test_a_signature_checking_server_takes_the_signed_put(seaweed_rt, key) -> None:
    boto_puts = _boto_puts(seaweed_rt.s3)
    seaweed_rt.data.put(key, BODY, "text/html; charset=utf-8", cache_control="max-age=60",
                        metadata={"uri": "urn:test:1", "version": "3"})
    assert boto_puts == [], "the PUT went through boto3, not the signed path"
    stored = seaweed_rt.data.get(key)
    assert (stored.body, stored.content_type, stored.metadata) == (
        BODY, "text/html; charset=utf-8", {"uri": "urn:test:1", "version": "3"})
    head = seaweed_rt.s3.head_object(Bucket=seaweed_rt.settings.data_bucket, Key=key)
    assert head["CacheControl"] == "max-age=60"


@pytest.mark.parametrize(("endpoint", "token"), [
    ("http://127.0.0.1:9000", None),
    ("https://s3.eu-west-1.example.test", "session-token/with+odd=chars"),
    ("http://[::1]:8333/prefix", None),
])
def test_the_signature_is_botocores_for_the_same_request(monkeypatch, endpoint, token) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    put = SignedPut(endpoint, "eu-west-1", credentials)
    key = "articles/sp ace é+=~!*'()/ß/%41.json"
    headers = {"Content-Type": "text/html;  charset=utf-8", "Cache-Control": "max-age=60",
               "x-amz-meta-uri": "urn:test:1", "x-amz-meta-version": " 3 "}
    now = datetime.datetime(2026, 12, 6, 10, 30, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now)
    quoted = quote(key, safe="/~")  # as botocore's serializer quotes a key
    ours = put.signed_headers(f"{put._base_path}/bucket-1/{quoted}", headers, BODY,
                              now=now.replace(tzinfo=datetime.UTC).timestamp())
    request = AWSRequest("PUT", f"{endpoint}/bucket-1/{quoted}", data=BODY, headers=headers)
    botocore.auth.S3SigV4Auth(credentials.get_frozen_credentials(), "s3", "eu-west-1").add_auth(request)
    theirs = {name.lower(): value for name, value in request.headers.items()}
    assert ours["authorization"] == theirs["authorization"]
    for name in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"):
        assert ours.get(name) == theirs.get(name)


def test_puts_of_a_thread_share_one_kept_connection(seaweed_rt) -> None:
    put = seaweed_rt.s3_put
    seaweed_rt.data.put(f"kept/{uuid.uuid4().hex}", BODY, "text/html")
    first = put._local.sock
    for n in range(5):
        seaweed_rt.site.put(f"kept/{uuid.uuid4().hex}-{n}", BODY, "text/html")
    assert first is not None and put._local.sock is first and first.fileno() != -1


def test_a_wrong_secret_is_refused_with_the_servers_reason_and_nothing_is_stored(seaweed_rt) -> None:
    wrong = SignedPut(seaweed_rt.s3_put.endpoint_url, "us-east-1", Credentials("testing", "not-the-secret"))
    store = S3Storage(seaweed_rt.s3, seaweed_rt.settings.data_bucket, wrong)
    boto_puts = _boto_puts(seaweed_rt.s3)
    key = f"refused/{uuid.uuid4().hex}"
    with pytest.raises(StorageUnavailable, match="HTTP 403 SignatureDoesNotMatch"):
        store.put(key, BODY, "text/html")
    assert boto_puts == [], "a refusal for good is not tried again through boto3"
    assert store.etag(key) is None


def test_a_connection_the_server_closed_while_idle_is_made_again(scripted_http) -> None:
    server = scripted_http([200, 200], close_after=1)
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"))
    assert put.put("bucket", "a", BODY, {"Content-Type": "text/html"})
    assert put.put("bucket", "b", BODY, {"Content-Type": "text/html"})
    assert server.requests == [(1, "PUT /bucket/a HTTP/1.1"), (2, "PUT /bucket/b HTTP/1.1")]


def test_a_server_slow_to_answer_on_a_kept_connection_gets_no_second_copy(scripted_http) -> None:
    server = scripted_http([200, 0])
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"), read_timeout=0.5)
    assert put.put("bucket", "a", BODY, {"Content-Type": "text/html"})
    assert not put.put("bucket", "b", BODY, {"Content-Type": "text/html"}), "boto3 is to make the next attempt"
    assert server.requests == [(1, "PUT /bucket/a HTTP/1.1"), (1, "PUT /bucket/b HTTP/1.1")]


def _s3_error(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode()


def _chunked(status: str, body: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:20], body[20:]))
    return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize("answer, close_after, refusal, connections", [
    (_chunked("404 Not Found", _s3_error("NoSuchBucket")), 0, "HTTP 404 NoSuchBucket: m", (1, 1)),
    # no length and no chunks: the body ends when the server closes, and the next PUT makes a new connection
    (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n\r\n" + _s3_error("AccessDenied"), 1,
     "HTTP 403 AccessDenied: m", (1, 2)),
], ids=["chunked", "ends-with-the-connection"])
def test_an_answer_is_read_whole_however_it_is_framed(scripted_http, answer, close_after, refusal, connections):
    server = scripted_http([answer, 200], close_after=close_after)
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"))
    with pytest.raises(PutRefused, match=refusal):
        put.put("bucket", "a", BODY, {"Content-Type": "text/html"})
    assert put.put("bucket", "b", BODY, {"Content-Type": "text/html"})
    assert server.requests == [(connections[0], "PUT /bucket/a HTTP/1.1"), (connections[1], "PUT /bucket/b HTTP/1.1")]


def test_an_interim_100_continue_is_passed_over(scripted_http) -> None:
    server = scripted_http([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200])
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"))
    assert put.put("bucket", "a", BODY, {"Content-Type": "text/html"})
    assert put.put("bucket", "b", BODY, {"Content-Type": "text/html"})
    assert server.requests == [(1, "PUT /bucket/a HTTP/1.1"), (1, "PUT /bucket/b HTTP/1.1")]


def test_an_answer_that_is_not_http_goes_to_boto3_and_is_not_sent_again_here(scripted_http) -> None:
    server = scripted_http([b"SSH-2.0-OpenSSH_9.6\r\n", 200])
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"))
    assert not put.put("bucket", "a", BODY, {"Content-Type": "text/html"}), "boto3 is to make the next attempt"
    assert server.requests == [(1, "PUT /bucket/a HTTP/1.1")]


def test_a_header_that_cannot_be_framed_goes_to_boto3_unsent(scripted_http) -> None:
    server = scripted_http([200])
    put = SignedPut(server.url, "us-east-1", Credentials("testing", "testing"))
    assert not put.put("bucket", "a", BODY, {"Content-Type": "text/html", "x-amz-meta-a b": "1"})
    assert server.requests == []


@pytest.mark.parametrize("status", [500, 503, 429, 408, (400, _s3_error("RequestTimeout")),
                                    (403, _s3_error("RequestTimeTooSkewed")), (400, _s3_error("ExpiredToken"))])
def test_a_throttle_or_server_error_goes_to_boto3_and_its_retries(redis_server, scripted_http, status) -> None:
    server = scripted_http([status, 200])
    settings = _settings(redis_server, server.url)
    client = s3_client(settings)
    boto_puts = _boto_puts(client)
    S3Storage(client, "bucket", signed_put(client)).put("k", BODY, "text/html")
    assert boto_puts == [1]
    assert [line for _, line in server.requests] == ["PUT /bucket/k HTTP/1.1"] * 2


def test_any_other_refusal_is_the_servers_answer_at_once(redis_server, scripted_http) -> None:
    server = scripted_http([(404, _s3_error("NoSuchBucket"))])
    client = s3_client(_settings(redis_server, server.url))
    boto_puts = _boto_puts(client)
    with pytest.raises(StorageUnavailable, match="HTTP 404 NoSuchBucket: m"):
        S3Storage(client, "bucket", signed_put(client)).put("k", BODY, "text/html")
    assert boto_puts == [] and len(server.requests) == 1


def test_an_unreachable_store_is_storage_unavailable(redis_server, refused_url) -> None:
    settings = _settings(redis_server, refused_url.removesuffix("/hook"))
    client = s3_client(settings)
    boto_puts = _boto_puts(client)
    with pytest.raises(StorageUnavailable, match="Could not connect"):
        S3Storage(client, "bucket", signed_put(client)).put("k", BODY, "text/html")
    assert boto_puts == [1], "boto3 made the attempt after the signed path could not connect"


@pytest.fixture
def tls_server(scripted_http, tmp_path):
    """An HTTPS ScriptedHttp for localhost, its certificate from a test CA; returns (server, CA file)."""
    ca, cert, key = _tls_pair(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return scripted_http([200] * 8, tls=context), str(ca)


def test_over_https_the_signed_put_trusts_the_ca_bundle_boto3_does(redis_server, tls_server, monkeypatch) -> None:
    server, ca = tls_server
    monkeypatch.setenv("AWS_CA_BUNDLE", ca)
    client = s3_client(_settings(redis_server, server.url))
    boto_puts = _boto_puts(client)
    put = signed_put(client)
    store = S3Storage(client, "bucket", put)
    store.put("a", BODY, "text/html")
    store.put("b", BODY, "text/html")
    assert boto_puts == [], "the signed path made both PUTs"
    assert server.requests == [(1, "PUT /bucket/a HTTP/1.1"), (1, "PUT /bucket/b HTTP/1.1")]  # one TLS connection
    assert put._local.sock.version() is not None


def test_over_https_a_certificate_nobody_vouches_for_is_refused(redis_server, tls_server) -> None:
    server, _ = tls_server  # AWS_CA_BUNDLE unset: the default bundle does not know the test CA
    client = s3_client(_settings(redis_server, server.url))
    boto_puts = _boto_puts(client)
    with pytest.raises(StorageUnavailable, match="(?i)certificate"):
        S3Storage(client, "bucket", signed_put(client)).put("k", BODY, "text/html")
    assert boto_puts == [1], "boto3 made the attempt after the signed path could not connect"
    assert server.requests == [], "nothing was sent over an unverified connection"


def test_metadata_a_header_cannot_carry_goes_to_boto3_and_its_checks(rt) -> None:
    boto_puts = _boto_puts(rt.s3)
    key = f"meta/{uuid.uuid4().hex}"
    rt.data.put(key, BODY, "text/html", metadata={"uri": "urn:test:1"})
    assert boto_puts == []
    with pytest.raises(StorageUnavailable, match="Non ascii characters found in S3 metadata"):
        rt.data.put(key, BODY, "text/html", metadata={"uri": "urn:test:é"})
    assert boto_puts == [1]
    assert rt.data.get(key).metadata == {"uri": "urn:test:1"}


def test_no_signed_path_where_it_cannot_stand_in_for_boto3(redis_server, s3_server, monkeypatch) -> None:
    client = s3_client(_settings(redis_server, s3_server.url))
    assert signed_put(client) is not None
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert signed_put(client) is None, "a proxy applies"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert signed_put(client) is not None, "the proxy is bypassed"
    monkeypatch.delenv("HTTP_PROXY")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert SignedPut.for_client(client, botocore.session.get_session()) is None, "no credentials"
