"""One delivery attempt: claim it, send it, record what happened, decide what comes next.

Every attempt is recorded in the delivery's state (shared.deliveries) before and after it
runs and appended to the subscription's log. At most one attempt per subscription is in
flight (the claim takes a short per-subscriber lock): a slow endpoint holds one delivery
slot, never the pool, and its other deliveries wait their turn in the due set instead of
in a worker. `attempt` is one delivery start to end (three Redis round trips: read the
record, claim, finish). services.notify.batches reads and claims many at once and splits
each attempt in three: `begin` (the checks), the send (a webhook handed to the process's
non-blocking HTTP client, `start_webhook`; an email sent from a thread, `send`), and
`conclude` (the outcome, run when the answer is in).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _string

from services.notify import retries
from services.notify.transports import DeliveryError, Result, email, webhook
from shared.deliveries import Claim, DeliveryStore, webhook_id
from shared.runtime import Runtime
from shared.settings import Settings
from shared.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger("pressroom.notify")

LEASE_SECONDS = 60  # longer than any transport's own timeout

Finish = Callable[..., None]  # finish(did, claim, state, **details), as DeliveryStore.finish


def send(settings: Settings, sub: Subscription, event: dict, did: str) -> Result:
    """Deliver one event to one subscriber by its channel and wait; raises DeliveryError."""
    if sub.channel == "webhook":
        payload = webhook.body(event)
        return webhook.send(settings, sub.target, sub.signing_keys(), webhook_id(did), payload)
    started = time.monotonic()
    result = email.send(settings, email.notification_message(settings, sub, event, did))
    return Result(result.status, int((time.monotonic() - started) * 1000), result.answer)


def start_webhook(settings: Settings, ready: Attempt, done: Callable[[Result | DeliveryError], None]) -> None:
    """Send a webhook attempt without waiting: `done` gets its outcome on the HTTP client's thread."""
    payload = webhook.body(ready.claim.event)
    webhook.start(settings, ready.sub.target, ready.sub.signing_keys(), webhook_id(ready.did), payload, done)


def attempt(rt: Runtime, did: str) -> str:
    """Make one attempt at a delivery if it is due; returns what happened. Safe to run twice:
    a delivery that is done, not due, or in another worker's hands is left alone."""
    store = DeliveryStore(rt.redis)
    claim = store.claim(did, LEASE_SECONDS)
    if claim.outcome != "claimed":
        return claim.outcome  # missing, done (its state), busy, early or deferred
    return complete(rt, store, did, claim)


@dataclass(slots=True)
class Attempt:
    """A claimed delivery that can be sent: its active subscription and the start of its log line."""

    did: str
    claim: Claim
    sub: Subscription
    entry: str


def begin(did: str, claim: Claim, finish: Finish) -> Attempt | str:
    """The checks before sending. A delivery that cannot be sent (its subscription paused or
    deleted, its event expired) is finished here and its outcome returned instead."""
    record = claim.record
    entry = (f'{{"delivery_id":{_string(did)},"event":{_string(record["type"])},"article_id":'
             f'{_string(record["article"])},"version":{int(record["version"])},"attempt":{claim.attempt}')
    sub = Subscription.from_fields(claim.subscription) if claim.subscription else None
    if sub is None or sub.status != "active":
        reason = f"subscription {sub.status}" if sub else "subscription deleted"
        logged = _entry(entry, "cancelled", error=reason) if sub else ""  # a deleted one has no log
        finish(did, claim, "cancelled", error=reason, log_entry=logged)
        return "cancelled"
    if claim.event is None:
        reason = "event expired before delivery"
        finish(did, claim, "failed", error=reason, log_entry=_entry(entry, "failed", error=reason))
        return "failed"
    return Attempt(did, claim, sub, entry)


def complete(rt: Runtime, store: DeliveryStore, did: str, claim: Claim, finish: Finish | None = None) -> str:
    """Send a claimed delivery, wait, and record the outcome (delivered, retrying, failed, cancelled).

    `finish(did, claim, state, **details)` records the end of the attempt (default
    `store.finish`; services.notify.batches passes one that shares round trips).
    """
    finish = finish or store.finish
    ready = begin(did, claim, finish)
    if isinstance(ready, str):
        return ready
    try:
        result: Result | DeliveryError = send(rt.settings, ready.sub, claim.event, did)
    except DeliveryError as exc:
        result = exc
    return conclude(rt, ready, result, finish)


def conclude(rt: Runtime, sent: Attempt, result: Result | DeliveryError, finish: Finish) -> str:
    """Record a sent attempt's outcome and decide what comes next; returns delivered, retrying or failed."""
    did, claim, sub = sent.did, sent.claim, sent.sub
    if isinstance(result, DeliveryError):
        return _failed(rt, finish, sub, did, claim, sent.entry, result)
    finish(did, claim, "delivered", http_status=result.status,
           log_entry=_entry(sent.entry, "delivered", result.status, result.latency_ms, result.answer))
    if sub.failing_since:
        SubscriptionStore(rt.redis).record_success(sub.id)
    log.info("delivered %s to %s (attempt %d, %s)", did, sub.id, claim.attempt, result.status)
    return "delivered"


def _failed(
    rt: Runtime, finish: Finish, sub: Subscription, did: str, claim: Claim, entry: dict, exc: DeliveryError
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
        finish(did, claim, "failed", http_status=exc.status, error=error,
               log_entry=_entry(entry, "failed", exc.status, exc.latency_ms, exc.answer, error))
        log.warning("delivery %s to %s failed: %s", did, sub.id, error)
        return "failed"
    finish(did, claim, "pending", next_at=next_at, http_status=exc.status, error=error,
           log_entry=_entry(entry, "retrying", exc.status, exc.latency_ms, exc.answer, error, next_at))
    log.info("delivery %s to %s attempt %d failed (%s); next at %s", did, sub.id, claim.attempt, error, _iso(next_at))
    return "retrying"


def _entry(
    entry: str, status: str, http_status: int | None = None, latency_ms: int = 0, answer: str = "",
    error: str = "", next_at: float | None = None,
) -> str:
    """One line of the subscriber's delivery log (never a secret: the URL and headers stay out),
    as JSON: `entry` (begin's) and the outcome. Written out here rather than by json.dumps of a
    dict, which cost a webhook's attempt more than its signature; the same text as that
    (json.dumps with compact separators), which tests hold it to."""
    return (f'{entry},"at":"{_iso(time.time())}","status":"{status}","http_status":'
            f'{"null" if http_status is None else int(http_status)},"latency_ms":{int(latency_ms)},'
            f'"response":{_string(answer[:200])},"error":{_string(error[:300])},'
            f'"next_attempt_at":{_string(_iso(next_at)) if next_at else "null"}}}')


_last_iso: tuple[int, str] = (-1, "")


def _iso(ts: float) -> str:
    """The log's timestamp form; the attempts that end in one millisecond share it."""
    global _last_iso
    ms = int(ts * 1000)
    last = _last_iso
    if last[0] != ms:
        last = _last_iso = (ms, datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"))
    return last[1]
