"""Standard Webhooks signing and verification (https://www.standardwebhooks.com/).

Written here rather than taken from the `standardwebhooks` package because its verify()
raises ValueError/binascii.Error on malformed headers; this one turns every bad header
into `SignatureError` and is tested against the package's own signatures.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Iterable, Mapping

TOLERANCE_SECONDS = 5 * 60


class SignatureError(Exception):
    """The request is not signed by any accepted secret; the message says why (safe to show)."""


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """HMAC-SHA256 of `msg_id.timestamp.body`. Not `hmac.digest`: OpenSSL's one-shot call lets
    go of the GIL whatever the length, and a worker's other threads then take it from the
    signer on every delivery (hmac.new keeps it for messages under 2 KiB)."""
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256").digest()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) for one message."""
    return "v1," + binascii.b2a_base64(_mac(key, msg_id, timestamp, body), newline=False).decode("ascii")


def signed_headers(
    keys: bytes | Iterable[bytes], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers; with several keys (a secret rotation) each signs, space-separated."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = " ".join(sign(key, msg_id, ts, body) for key in ([keys] if isinstance(keys, bytes) else keys))
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def verify(
    keys: Iterable[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check the Standard Webhooks headers against every key; returns the webhook-id."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(msg_id) > 256:
        raise SignatureError("webhook-id is longer than 256 characters")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the 5-minute tolerance")
    given: list[bytes] = []
    for item in signatures.split(" ")[:10]:
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not given:
        raise SignatureError("webhook-signature holds no v1 signature")
    matched = False
    for key in keys:
        expected = _mac(key, msg_id, timestamp, body)
        for candidate in given:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no signature matches an accepted secret")
    return msg_id
