"""Dispatch: move due deliveries from Redis into the broker, in batches, as fast as workers take them.

Fan-out only writes delivery records (100,000 in a few seconds); the dispatcher turns
them into `notify.deliver_batch` messages of up to BATCH delivery ids each (one Celery
task per delivery was the throughput ceiling) and keeps the notify queue at most
MAX_BACKLOG messages deep, so a long list waits in the due set, not in the broker. It
runs right after each fan-out batch, every second from the scheduler, and from delivery
tasks whenever the queue runs low (so the workers never wait for the scheduler); each
released delivery is pushed REQUEUE_AFTER seconds ahead in the due set, so a lost
message is sent again (duplicates are harmless: a delivery is claimed once); those whose
message the broker refused are due again at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared import tasknames
from shared.deliveries import DeliveryStore
from shared.runtime import Runtime

BATCH = 500  # delivery ids per message
MAX_BACKLOG = 4  # messages (up to 2,000 deliveries)
RELEASE = 500  # ids taken from the due set per round trip
REQUEUE_AFTER = 120.0
QUEUE = tasknames.queue_for(tasknames.NOTIFY_DELIVER_BATCH)

log = logging.getLogger("pressroom.notify")


def dispatch(rt: Runtime, send: Callable[[list[str]], None], budget_seconds: float = 0.8) -> int:
    """Queue due deliveries, BATCH ids per `send`, while the notify queue has room; returns how
    many deliveries were queued."""
    store = DeliveryStore(rt.redis)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < budget_seconds:
        room = MAX_BACKLOG - rt.redis.llen(QUEUE)
        if room <= 0:
            break
        wanted = min(room * BATCH, RELEASE)
        due = store.release_due(limit=wanted, requeue_after=REQUEUE_AFTER)
        for start in range(0, len(due), BATCH):
            try:
                send(due[start : start + BATCH])
            except BaseException:
                _hand_back(store, due[start:])
                raise
        sent += len(due)
        if len(due) < wanted:
            break
    return sent


def _hand_back(store: DeliveryStore, unsent: list[str]) -> None:
    """Released deliveries whose message was not sent are due again at once, not after
    REQUEUE_AFTER (if Redis is gone too, that is how they come back)."""
    try:
        store.hand_back(unsent)
    except Exception:
        log.warning("%d released deliveries not sent; they are due again in %.0f s", len(unsent), REQUEUE_AFTER)


def top_up(rt: Runtime, send: Callable[[list[str]], None]) -> int:
    """Dispatch a little if the queue is running low; cheap enough to call after every batch."""
    if rt.redis.llen(QUEUE) >= max(1, MAX_BACKLOG // 4):
        return 0
    return dispatch(rt, send, budget_seconds=0.2)
