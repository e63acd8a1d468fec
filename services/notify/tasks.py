"""Notify-pool tasks: thin wrappers that take ids, reload state and call the library modules.

Delivery semantics: every task is acked late and safe to run twice. The fan-out task only
stores and batches; the batch task only creates records and queues one `notify.deliver`
per new delivery; each delivery is its own task, so a slow endpoint delays nobody else.
Retries are not Celery countdowns: a failed attempt lands in the due set, and
`scheduler.notify_retries` re-queues what is due every second.
"""

from __future__ import annotations

import logging

from celery import shared_task
from redis.exceptions import RedisError

from services.notify import confirmations, deliveries, matching
from services.notify.transports import DeliveryError
from shared import tasknames
from shared.deliveries import DeliveryStore
from shared.runtime import runtime_for

log = logging.getLogger("pressroom.notify")

TRANSIENT = (RedisError, ConnectionError, TimeoutError)
COMMON = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(bind=True, name=tasknames.NOTIFY_ARTICLE_EVENT, autoretry_for=TRANSIENT, retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=50, time_limit=120, **COMMON)
def article_event(self, event: dict) -> int:
    """Find the subscribers of one article event and queue them in batches."""
    rt = runtime_for(self.app.pressroom_settings)
    count = matching.fan_out(
        rt, event, lambda ekey, sids: self.app.send_task(tasknames.NOTIFY_QUEUE_BATCH, args=[ekey, sids])
    )
    log.info("%s %s v%s matched %d subscriptions", event.get("type"), event.get("id"), event.get("version"), count)
    return count


@shared_task(bind=True, name=tasknames.NOTIFY_QUEUE_BATCH, autoretry_for=TRANSIENT, retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=50, time_limit=120, **COMMON)
def queue_batch(self, event_key: str, subscription_ids: list[str]) -> int:
    """Create the deliveries of one batch (once each) and queue a task per new delivery."""
    rt = runtime_for(self.app.pressroom_settings)
    return matching.queue_batch(
        rt, event_key, subscription_ids, lambda did: self.app.send_task(tasknames.NOTIFY_DELIVER, args=[did])
    )


@shared_task(bind=True, name=tasknames.NOTIFY_DELIVER, autoretry_for=TRANSIENT, retry_backoff=1,
             retry_backoff_max=30, retry_jitter=True, max_retries=5, time_limit=90, **COMMON)
def deliver(self, delivery_id: str) -> str:
    """One attempt at one delivery; the outcome is in the delivery record and log."""
    return deliveries.attempt(runtime_for(self.app.pressroom_settings), delivery_id)


@shared_task(bind=True, name=tasknames.NOTIFY_CONFIRM_EMAIL, autoretry_for=(*TRANSIENT, DeliveryError),
             retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=12, time_limit=90, **COMMON)
def confirm_email(self, subscription_id: str) -> str:
    """Send the double opt-in email of a pending email subscription (once)."""
    return confirmations.send_confirmation(runtime_for(self.app.pressroom_settings), subscription_id)


@shared_task(bind=True, name=tasknames.SCHEDULER_NOTIFY_RETRIES, ignore_result=True, expires=5)
def notify_retries(self) -> int:
    """Re-queue deliveries whose retry time (or lapsed lease) has come."""
    rt = runtime_for(self.app.pressroom_settings)
    store = DeliveryStore(rt.redis)
    released = 0
    while True:
        due = store.release_due()
        for did in due:
            self.app.send_task(tasknames.NOTIFY_DELIVER, args=[did])
        released += len(due)
        if len(due) < 1000:
            return released
