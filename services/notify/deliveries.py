"""One delivery attempt: claim it, send it, record what happened, decide what comes next.

Every attempt is recorded in the delivery's state (shared.deliveries) before and after it
runs and appended to the subscription's log. At most one attempt per subscription is in
flight (a short Redis lock): a slow endpoint ties up one worker slot, never the pool,
and its other deliveries wait their turn in the due set instead of in a worker.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from redis.exceptions import LockError

from services.notify import retries
from services.notify.transports import DeliveryError, Result, email, webhook
from shared.deliveries import TERMINAL, Claim, DeliveryStore, webhook_id
from shared.keys import PREFIX
from shared.runtime import Runtime
from shared.settings import Settings
from shared.subscriptions import NotFound, Subscription, SubscriptionStore

log = logging.getLogger("pressroom.notify")

LEASE_SECONDS = 60  # longer than any transport's own timeout
BUSY_DEFER_SECONDS = 1.0


def busy_key(sid: str) -> str:
    return f"{PREFIX}:notify:busy:{sid}"


def send(settings: Settings, sub: Subscription, event: dict, did: str) -> Result:
    """Deliver one event to one subscriber by its channel; raises DeliveryError."""
    if sub.channel == "webhook":
        payload = webhook.body(event)
        return webhook.send(settings, sub.target, sub.signing_keys(), webhook_id(did), payload)
    started = time.monotonic()
    result = email.send(settings, email.notification_message(settings, sub, event, did))
    return Result(result.status, int((time.monotonic() - started) * 1000), result.answer)


def attempt(rt: Runtime, did: str) -> str:
    """Make one attempt at a delivery if it is due; returns what happened. Safe to run twice:
    a delivery that is done, not due, or in another worker's hands is left alone."""
    store = DeliveryStore(rt.redis)
    record = store.get(did)
    if record is None:
        return "missing"
    if record["state"] in TERMINAL:
        return record["state"]
    lock = rt.redis.lock(busy_key(record["sub"]), timeout=LEASE_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        store.defer(did, time.time() + BUSY_DEFER_SECONDS)
        return "deferred"
    try:
        claim = store.claim(did, LEASE_SECONDS)
        if claim.outcome != "claimed":
            return claim.outcome
        return _attempt_claimed(rt, store, record, claim)
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("busy lock of %s lapsed during delivery %s", record["sub"], did)


def _attempt_claimed(rt: Runtime, store: DeliveryStore, record: dict, claim: Claim) -> str:
    did, sid = record["id"], record["sub"]
    entry = {"delivery_id": did, "event": record["type"], "article_id": record["article"],
             "version": int(record["version"]), "attempt": claim.attempt}
    try:
        sub = SubscriptionStore(rt.redis).get(sid)
    except NotFound:
        store.finish(did, claim, "cancelled", error="subscription deleted")
        return "cancelled"
    if sub.status != "active":
        store.finish(did, claim, "cancelled", error=f"subscription {sub.status}")
        _log(store, sid, entry, "cancelled", error=f"subscription is {sub.status}")
        return "cancelled"
    event = store.load_event(record["event_key"])
    if event is None:
        store.finish(did, claim, "failed", error="event expired before delivery")
        _log(store, sid, entry, "failed", error="event expired before delivery")
        return "failed"
    try:
        result = send(rt.settings, sub, event, did)
    except DeliveryError as exc:
        return _failed(rt, store, sub, did, claim, entry, exc)
    store.finish(did, claim, "delivered", http_status=result.status)
    if sub.failing_since:
        SubscriptionStore(rt.redis).record_success(sid)
    _log(store, sid, entry, "delivered", result.status, result.latency_ms, result.answer)
    log.info("delivered %s to %s (attempt %d, %s)", did, sid, claim.attempt, result.status)
    return "delivered"


def _failed(
    rt: Runtime, store: DeliveryStore, sub: Subscription, did: str, claim: Claim, entry: dict, exc: DeliveryError
) -> str:
    subs = SubscriptionStore(rt.redis)
    now = time.time()
    error = str(exc)
    next_at = None if exc.permanent else retries.next_attempt_at(claim.attempt, now, exc.retry_after)
    if exc.disable:
        subs.disable(sub.id, f"disabled after delivery {did}: {error}")
    elif not exc.permanent:
        since = subs.record_failure(sub.id, now)
        if now - since > retries.DISABLE_AFTER:
            subs.disable(sub.id, f"disabled: every delivery failed since {_iso(since)}")
    if next_at is None:
        if not exc.permanent:
            error = f"gave up after {claim.attempt} attempts: {error}"
        store.finish(did, claim, "failed", http_status=exc.status, error=error, now=now)
        _log(store, sub.id, entry, "failed", exc.status, exc.latency_ms, exc.answer, error)
        log.warning("delivery %s to %s failed: %s", did, sub.id, error)
        return "failed"
    store.finish(did, claim, "pending", next_at=next_at, http_status=exc.status, error=error, now=now)
    _log(store, sub.id, entry, "retrying", exc.status, exc.latency_ms, exc.answer, error, next_at)
    log.info("delivery %s to %s attempt %d failed (%s); next at %s", did, sub.id, claim.attempt, error, _iso(next_at))
    return "retrying"


def _log(
    store: DeliveryStore, sid: str, entry: dict, status: str, http_status: int | None = None, latency_ms: int = 0,
    answer: str = "", error: str = "", next_at: float | None = None,
) -> None:
    store.log(sid, {
        **entry, "at": _iso(time.time()), "status": status, "http_status": http_status, "latency_ms": latency_ms,
        "response": answer[:200], "error": error[:300], "next_attempt_at": _iso(next_at) if next_at else None,
    })


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
