"""Superdesk's HTTP Push transmitter, taken as it sends.

Superdesk (superdesk-core `superdesk/publish/transmitters/http_push.py`) POSTs the
formatted item to the destination's resource URL with `Content-Type: application/json`
and, when the destination has a secret token, `x-superdesk-signature: sha1=<hex>`: the
HMAC-SHA1 of the exact body bytes under that token. It sends no message id and no
timestamp, so a retried push is recognised by the SHA-256 of its body, and the version
order in Redis makes any older body stale.

Superdesk also publishes media and packages on their own (type picture, graphic, video,
audio, or a composite without a body). They are not pages: Pressroom answers 200
`ignored` so Superdesk does not retry them, and stores nothing. A featured photo is
taken from the text item's own `associations.featuremedia` renditions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from shared import keys

HEADER = "x-superdesk-signature"
MEDIA_TYPES = ("picture", "graphic", "video", "audio")
SHA1_BYTES = 20


class SignatureError(Exception):
    """The push is not signed by any accepted Superdesk secret; the message is safe to show."""


def sign(secret: str, body: bytes) -> str:
    """The header value Superdesk sends for this body (used by tests and `pressroom post`)."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify(secrets: Iterable[str], header: str, body: bytes) -> None:
    """Check `sha1=<hex>` against every secret in constant time; raises SignatureError."""
    scheme, _, value = header.strip().partition("=")
    if scheme.lower() != "sha1" or not value:
        raise SignatureError(f"{HEADER} must be 'sha1=<hex digest>'")
    try:
        given = bytes.fromhex(value)
    except ValueError:
        raise SignatureError(f"{HEADER} is not a hex digest") from None
    if len(given) != SHA1_BYTES:
        raise SignatureError(f"{HEADER} is not a SHA-1 digest")
    secrets = tuple(secrets)
    if not secrets:
        raise SignatureError("no Superdesk secret is configured (PRESSROOM_SUPERDESK_SECRETS)")
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha1).digest()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("no signature matches an accepted Superdesk secret")


def push_key(body: bytes) -> str:
    """The idempotency key of a push: Superdesk re-sends the same bytes on retry."""
    return hashlib.sha256(body).hexdigest()


def ignored(body: bytes) -> dict | None:
    """The 200 answer for a push that is not an article page, or None to take it normally."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    kind = doc.get("type")
    package = kind == "composite" and not (doc.get("body_html") or doc.get("body_text"))
    if kind not in MEDIA_TYPES and not package:
        return None
    guid = doc.get("uri") or doc.get("guid")
    version = doc.get("version")
    return {
        "id": keys.article_id(guid) if isinstance(guid, str) and guid else None,
        "uri": guid if isinstance(guid, str) else None,
        "version": int(version) if isinstance(version, str) and version.isascii() and version.isdigit() else None,
        "outcome": "ignored",
        "message": f"A Superdesk {'package' if package else kind} item is not a page; nothing was stored.",
    }
