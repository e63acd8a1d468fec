"""Webhook transport: one Standard Webhooks POST through the SSRF guard (shared.netguard).

Deliveries of a process share one non-blocking client (shared.netloop): a POST costs no
thread while its receiver answers, the many deliveries to one receiver host reuse
kept-alive connections, and each new connection is resolved and checked by the guard
when it is opened.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Callable

from services.notify.retries import parse_retry_after
from services.notify.transports import DeliveryError, Result
from shared import netguard, netloop, signatures
from shared.forks import per_process
from shared.settings import Settings

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
ANSWER_BYTES = 200
USER_AGENT = "Pressroom-Webhooks/1"
CONNECTIONS_PER_HOST = 32  # open (and kept) connections per receiver origin and worker process; more wait for one


@per_process
def client() -> netloop.Client:
    """This process's HTTP client for webhooks: at most CONNECTIONS_PER_HOST connections to one
    receiver (scheme, host, port), so a receiver serving many subscribers is not handed one
    connection per delivery in flight, and the deliveries beyond them go out as answers free one."""
    return netloop.Client(per_origin=CONNECTIONS_PER_HOST, connections_per_origin=CONNECTIONS_PER_HOST,
                          max_idle=idle_budget())


def idle_budget() -> int:
    """How many idle connections a process keeps over all receivers: enough for one to each of
    a fan-out's many hosts until their next delivery (a host missing from the kept ones costs a
    new connection and, over TLS, a handshake), within an eighth of the process's file
    descriptors: 256 under the common limit of 1,024, at most 2,048."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(256, min(2048, soft // 8))


_bodies: dict[int, tuple[dict, bytes]] = {}


def body(event: dict) -> bytes:
    """The notification body exactly as SPEC's contract gives it. The deliveries of a claimed
    chunk share one parsed event, so its body is encoded once for all of them."""
    cached = _bodies.get(id(event))
    if cached is not None and cached[0] is event:
        return cached[1]
    data = {k: event[k] for k in ("id", "uri", "version", "headline", "url", "topics")}
    encoded = json.dumps({"type": event["type"], "timestamp": event["timestamp"], "data": data},
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(_bodies) >= 64:
        _bodies.clear()
    _bodies[id(event)] = (event, encoded)  # the reference keeps the id from being reused
    return encoded


def headers(keys: list[bytes], msg_id: str, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation every key signs (space-separated)."""
    return {**signatures.signed_headers(keys, msg_id, payload, timestamp),
            "Content-Type": "application/json", "User-Agent": USER_AGENT}


def start(settings: Settings, url: str, keys: list[bytes], msg_id: str, payload: bytes,
          done: Callable[[Result | DeliveryError], None]) -> None:
    """POST one notification without waiting for it: `done` gets a Result (2xx) or a
    DeliveryError on the client's loop thread, so it must hand the outcome on, not act on it."""
    client().request(url, lambda answer: done(outcome(answer)), **_request(settings, keys, msg_id, payload))


def send(settings: Settings, url: str, keys: list[bytes], msg_id: str, payload: bytes) -> Result:
    """POST one notification and wait for it: returns a Result or raises DeliveryError."""
    try:
        answer: netguard.Response | Exception = client().fetch(url, **_request(settings, keys, msg_id, payload))
    except Exception as exc:
        answer = exc
    result = outcome(answer)
    if isinstance(result, DeliveryError):
        raise result
    return result


def _request(settings: Settings, keys: list[bytes], msg_id: str, payload: bytes) -> dict:
    return {"method": "POST", "body": payload, "headers": headers(keys, msg_id, payload),
            "allow_networks": settings.webhook_allow_networks, "connect_timeout": CONNECT_TIMEOUT,
            "total_timeout": TOTAL_TIMEOUT, "max_bytes": ANSWER_BYTES, "truncate": True}


def outcome(answer: netguard.Response | Exception) -> Result | DeliveryError:
    """What an answer (or a failure to get one) means for the delivery: 2xx is success; 410 and
    refused addresses disable the subscription; 429/503 carry Retry-After; the rest are retried."""
    if isinstance(answer, netguard.BlockedAddress | netguard.InvalidURL):
        return DeliveryError(str(answer), disable=True)
    if isinstance(answer, netguard.FetchError):
        return DeliveryError(str(answer))
    if isinstance(answer, Exception):
        return DeliveryError(f"{type(answer).__name__}: {answer}")
    latency = int(answer.elapsed * 1000)
    text = answer.body[:ANSWER_BYTES].decode("utf-8", errors="replace")
    if 200 <= answer.status < 300:
        return Result(answer.status, latency, text)
    detail = {"status": answer.status, "latency_ms": latency, "answer": text}
    if answer.status == 410:
        return DeliveryError("the receiver answered 410 Gone", disable=True, **detail)
    retry_after = None
    if answer.status in (429, 503):
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
    return DeliveryError(f"the receiver answered {answer.status}", retry_after=retry_after, **detail)
