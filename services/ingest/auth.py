"""Who may call the API: Standard Webhooks or Superdesk signatures, or the bearer API token."""

from __future__ import annotations

import hmac

from flask import request
from flask_smorest import abort

from services.ingest.articles import superdesk
from shared import signatures
from shared.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pressroom"'}


def bearer_ok(settings: Settings) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or not settings.api_token:
        return False
    return hmac.compare_digest(token.strip().encode(), settings.api_token.encode())


def require_token(settings: Settings) -> None:
    """Abort 401 unless the request carries the API token."""
    if not bearer_ok(settings):
        abort(401, message="Send 'Authorization: Bearer <PRESSROOM_API_TOKEN>'.", headers=CHALLENGE)


def authenticate_webhook(settings: Settings, body: bytes) -> tuple[str, str | None]:
    """Accept a valid signature or the API token; returns (source, idempotency key).

    source is `webhook` (key: the webhook-id), `superdesk` (key: the body's digest, as
    Superdesk sends no message id) or `token` (key: the optional Idempotency-Key).
    """
    if superdesk.HEADER in request.headers:
        try:
            superdesk.verify(settings.superdesk_secrets, request.headers[superdesk.HEADER], body)
        except superdesk.SignatureError as exc:
            abort(401, message=f"Invalid Superdesk signature: {exc}.", headers=CHALLENGE)
        return "superdesk", superdesk.push_key(body)
    if "webhook-signature" in request.headers or "webhook-id" in request.headers:
        try:
            return "webhook", signatures.verify(settings.webhook_keys, request.headers, body)
        except signatures.SignatureError as exc:
            abort(401, message=f"Invalid webhook signature: {exc}.", headers=CHALLENGE)
    if bearer_ok(settings):
        return "token", request.headers.get("Idempotency-Key")
    abort(
        401,
        message="Sign the request with Standard Webhooks headers or Superdesk's x-superdesk-signature, "
        "or send the API bearer token.",
        headers=CHALLENGE,
    )
