"""Webhook transport: one Standard Webhooks POST through netguard, the only outbound HTTP path.

Deliveries share one netguard.ConnectionPool per process, so the many deliveries to one
receiver host reuse kept-alive connections (each new one resolved and checked by the
SSRF guard when it is opened) instead of a TCP connection each.
"""

from __future__ import annotations

import json
from functools import cache

from services.notify.retries import parse_retry_after
from services.notify.transports import DeliveryError, Result
from shared import netguard, signatures
from shared.settings import Settings

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
ANSWER_BYTES = 200
USER_AGENT = "Pressroom-Webhooks/1"
KEEP_PER_HOST = 16  # idle connections kept per receiver origin: one per sending thread (batches.THREADS)


@cache
def connections() -> netguard.ConnectionPool:
    """This process's kept connections (the pool itself forgets a parent's after a fork)."""
    return netguard.ConnectionPool(per_origin=KEEP_PER_HOST)


def body(event: dict) -> bytes:
    """The notification body exactly as SPEC's contract gives it."""
    data = {k: event[k] for k in ("id", "uri", "version", "headline", "url", "topics")}
    return json.dumps({"type": event["type"], "timestamp": event["timestamp"], "data": data},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def headers(keys: list[bytes], msg_id: str, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation every key signs (space-separated)."""
    signed = signatures.signed_headers(keys[0], msg_id, payload, timestamp)
    ts = int(signed["webhook-timestamp"])
    signed["webhook-signature"] = " ".join(signatures.sign(key, msg_id, ts, payload) for key in keys)
    return {**signed, "Content-Type": "application/json", "User-Agent": USER_AGENT}


def send(settings: Settings, url: str, keys: list[bytes], msg_id: str, payload: bytes) -> Result:
    """POST one notification; 2xx is success. Raises DeliveryError (410 and refused
    addresses disable the subscription; 429/503 carry Retry-After; the rest are retried)."""
    try:
        response = netguard.fetch(
            url, method="POST", body=payload, headers=headers(keys, msg_id, payload),
            allow_networks=settings.webhook_allow_networks, connect_timeout=CONNECT_TIMEOUT,
            total_timeout=TOTAL_TIMEOUT, max_bytes=ANSWER_BYTES, truncate=True, pool=connections(),
        )
    except (netguard.BlockedAddress, netguard.InvalidURL) as exc:
        raise DeliveryError(str(exc), disable=True) from None
    except netguard.FetchError as exc:
        raise DeliveryError(str(exc)) from None
    latency = int(response.elapsed * 1000)
    answer = response.body[:ANSWER_BYTES].decode("utf-8", errors="replace")
    if 200 <= response.status < 300:
        return Result(response.status, latency, answer)
    detail = {"status": response.status, "latency_ms": latency, "answer": answer}
    if response.status == 410:
        raise DeliveryError("the receiver answered 410 Gone", disable=True, **detail)
    retry_after = None
    if response.status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    raise DeliveryError(f"the receiver answered {response.status}", retry_after=retry_after, **detail)
