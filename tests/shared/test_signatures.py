"""Our verifier against signatures made by the standardwebhooks reference library."""

import time

import pytest

from shared.settings import parse_webhook_secret
from shared.signatures import SignatureError, signed_headers, verify
from tests.conftest import OLD_SECRET, WEBHOOK_SECRET, signed

KEY = parse_webhook_secret(WEBHOOK_SECRET)
OLD = parse_webhook_secret(OLD_SECRET)
BODY = b'{"uri": "urn:x", "version": "1"}'


def test_accepts_the_reference_library_signature():
    headers = signed(BODY)
    assert verify([KEY], headers, BODY) == headers["webhook-id"]


def test_accepts_any_of_several_secrets_for_rotation():
    assert verify([KEY, OLD], signed(BODY, secret=OLD_SECRET), BODY)


def test_our_signature_verifies_with_the_reference_library():
    from standardwebhooks.webhooks import Webhook

    headers = signed_headers(KEY, "msg_1", BODY)
    assert Webhook(WEBHOOK_SECRET).verify(BODY, headers) == {"uri": "urn:x", "version": "1"}


def test_rejects_a_tampered_body():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify([KEY], signed(BODY), BODY + b" ")


def test_rejects_a_foreign_secret():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify([KEY], signed(BODY, secret=OLD_SECRET), BODY)


def at_run_time(headers: dict[str, str]) -> dict[str, str]:
    """Turn "now±N" into a timestamp when the test runs, not when it was collected (a long suite passes 5 min)."""
    return {k: str(int(time.time()) + int(v[3:] or 0)) if v.startswith("now") else v for k, v in headers.items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": "garbage"}, "no v1 signature"),
        ({"webhook-signature": "v1,@@@not-base64@@@"}, "no v1 signature"),
        ({"webhook-signature": "v2,abc v1"}, "no v1 signature"),
        ({"webhook-timestamp": "yesterday"}, "not an integer"),
        ({"webhook-timestamp": "now-600"}, "outside the 5-minute tolerance"),
        ({"webhook-timestamp": "now+600"}, "outside the 5-minute tolerance"),
        ({"webhook-id": ""}, "missing"),
        ({"webhook-id": "x" * 300}, "longer than 256"),
    ],
)
def test_malformed_headers_are_signature_errors(change, message):
    headers = {**signed(BODY), **at_run_time(change)}
    with pytest.raises(SignatureError, match=message):
        verify([KEY], headers, BODY)
