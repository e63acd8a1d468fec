"""S3Storage against the real moto server: what goes over the wire and what comes back."""

from __future__ import annotations

import uuid

import pytest

from shared.storage import S3Storage, md5_hex, s3_client


@pytest.fixture
def sent_headers(settings):
    """A storage on its own client, and the headers of every request that client sent."""
    client = s3_client(settings)
    seen: list[dict[str, str]] = []
    client.meta.events.register(
        "before-send.s3", lambda request, **_: seen.append({k.lower(): v for k, v in request.headers.items()})
    )
    return S3Storage(client, settings.data_bucket), seen


def test_put_sends_no_expect_continue_and_round_trips(sent_headers):
    store, seen = sent_headers
    key = f"test/storage/{uuid.uuid4().hex}.json"
    body = b'{"headline": "x"}' * 200
    store.put(key, body, "application/json", cache_control="max-age=60", metadata={"uri": "urn:test:1"})
    put = seen[-1]
    assert "expect" not in put, "a PUT waits for 100-continue: one extra round trip per upload"
    assert not [h for h in put if h.startswith(("x-amz-checksum-", "x-amz-sdk-checksum", "x-amz-trailer"))], \
        "a checksum header S3-compatible servers may refuse"
    assert put["content-type"] in (b"application/json", "application/json")
    stored = store.get(key)
    assert (stored.body, stored.content_type, stored.metadata) == (body, "application/json", {"uri": "urn:test:1"})
    assert store.etag(key) == md5_hex(body)


def test_missing_object_is_file_not_found(sent_headers):
    store, _ = sent_headers
    key = f"test/storage/{uuid.uuid4().hex}-absent"
    with pytest.raises(FileNotFoundError):
        store.get(key)
    assert store.etag(key) is None
