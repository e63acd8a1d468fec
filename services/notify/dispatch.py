"""Dispatch: move due deliveries from Redis into the broker, as fast as the workers take them.

Fan-out only writes delivery records (100,000 in a few seconds); turning each into a
Celery message costs far more, and queuing 100,000 messages at once would only make a
long queue. So the dispatcher keeps the notify queue at most MAX_BACKLOG deep: it runs
right after each fan-out batch, every second from the scheduler, and from delivery tasks
whenever the queue runs low (so the workers never wait for the scheduler); each released
delivery is pushed REQUEUE_AFTER seconds ahead in the due set, so a lost message is sent
again (duplicates are harmless: a delivery is claimed once).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared import tasknames
from shared.deliveries import DeliveryStore
from shared.runtime import Runtime

MAX_BACKLOG = 2000
BATCH = 500
REQUEUE_AFTER = 120.0
QUEUE = tasknames.queue_for(tasknames.NOTIFY_DELIVER)


def dispatch(rt: Runtime, send: Callable[[str], None], budget_seconds: float = 0.8) -> int:
    """Queue due deliveries while the notify queue has room; returns how many were queued."""
    store = DeliveryStore(rt.redis)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < budget_seconds:
        room = MAX_BACKLOG - rt.redis.llen(QUEUE)
        if room <= 0:
            break
        due = store.release_due(limit=min(room, BATCH), requeue_after=REQUEUE_AFTER)
        for did in due:
            send(did)
        sent += len(due)
        if len(due) < min(room, BATCH):
            break
    return sent


def top_up(rt: Runtime, send: Callable[[str], None]) -> int:
    """Dispatch a little if the queue is running low; cheap enough to call after every delivery."""
    if rt.redis.llen(QUEUE) >= MAX_BACKLOG // 4:
        return 0
    return dispatch(rt, send, budget_seconds=0.2)
