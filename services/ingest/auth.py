"""Who may call the API: Standard Webhooks signatures or the bearer API token."""

from __future__ import annotations

import hmac

from flask import request
from flask_smorest import abort

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


def authenticate_webhook(settings: Settings, body: bytes) -> str | None:
    """Accept a valid signature or the API token; returns the webhook-id when signed."""
    if "webhook-signature" in request.headers or "webhook-id" in request.headers:
        try:
            return signatures.verify(settings.webhook_keys, request.headers, body)
        except signatures.SignatureError as exc:
            abort(401, message=f"Invalid webhook signature: {exc}.", headers=CHALLENGE)
    if bearer_ok(settings):
        return None
    abort(
        401,
        message="Sign the request with Standard Webhooks headers or send the API bearer token.",
        headers=CHALLENGE,
    )
