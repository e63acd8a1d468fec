"""Notify-pool tasks: thin wrappers that take ids, reload state and call the library modules.

Delivery semantics: every task is acked late and safe to run twice. The fan-out task stores
the event and creates its delivery records (due at once) a batch at a time, dispatching
after each; the dispatcher sends due deliveries in `notify.deliver_batch` messages, each sent in the
worker process's delivery slots (services.notify.batches), so a slow endpoint holds one
slot and delays nobody else. `notify.deliver` (one id) is what the API and
`pressroom deliveries retry` send. Retries are not Celery countdowns: a failed attempt
lands in the due set, and `scheduler.notify_retries` dispatches what is due every second
(services.notify.dispatch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded
from marshmallow import ValidationError
from redis.exceptions import RedisError

from services.notify import batches, confirmations, deliveries, dispatch, matching
from services.notify.transports import DeliveryError
from shared import tasknames

log = logging.getLogger("pressroom.notify")

TRANSIENT = (RedisError, ConnectionError, TimeoutError)
# A fan-out cut off by its time limit runs again and creates only what is missing; failed, its
# message would be acked (task_acks_on_failure_or_timeout) and the rest of its list never made.
FAN_OUT_RETRY = (*TRANSIENT, SoftTimeLimitExceeded)


@shared_task(bind=True, name=tasknames.NOTIFY_ARTICLE_EVENT, autoretry_for=FAN_OUT_RETRY, retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=50, soft_time_limit=590, time_limit=600)
def article_event(self, event: dict) -> int:
    """Find the subscribers of one article event and create their deliveries, batch by batch."""
    rt = self.rt
    count = matching.fan_out(rt, event, _create_here(self))
    log.info("%s %s v%s matched %d subscriptions", event.get("type"), event.get("id"), event.get("version"), count)
    return count


@shared_task(bind=True, name=tasknames.NOTIFY_ARTICLE_EVENTS, autoretry_for=FAN_OUT_RETRY, retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=50, soft_time_limit=1190, time_limit=1200)
def article_events(self, events: list[dict]) -> int:
    """`article_event` for each of a batch (a rebuild sends one message per batch of pages).

    Run again after a transient error, the events already handled add nothing (deliveries
    are created once each). A malformed event holds up none of the others: it fails the
    task once they are all queued, so it is counted and logged as a failure.
    """
    rt = self.rt
    count, malformed = 0, {}
    for number, event in enumerate(events):
        try:
            count += matching.fan_out(rt, event, _create_here(self))
        except ValidationError as exc:
            malformed[number] = exc.messages
    log.info("%d article events matched %d subscriptions", len(events) - len(malformed), count)
    if malformed:
        raise ValidationError({"events": malformed})
    return count


@shared_task(bind=True, name=tasknames.NOTIFY_QUEUE_BATCH, autoretry_for=TRANSIENT, retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=50, time_limit=120)
def queue_batch(self, event_key: str, subscription_ids: list[str]) -> int:
    """Create the deliveries of one batch (once each), then dispatch what the queue has room for.

    The fan-out sent one of these a batch until stop 29 and creates them itself now; the task
    stays for the messages an earlier version left in the queue."""
    rt = self.rt
    created = matching.create_deliveries(rt, event_key, subscription_ids)
    dispatch.dispatch(rt, lambda dids: _send_batch(self.app, dids))
    return len(created)


@shared_task(bind=True, name=tasknames.NOTIFY_DELIVER, autoretry_for=TRANSIENT, retry_backoff=1,
             retry_backoff_max=30, retry_jitter=True, max_retries=5, time_limit=90)
def deliver(self, delivery_id: str) -> str:
    """One attempt at one delivery; the outcome is in the delivery record and log."""
    rt = self.rt
    outcome = deliveries.attempt(rt, delivery_id)
    dispatch.top_up(rt, lambda dids: _send_batch(self.app, dids))
    return outcome


@shared_task(bind=True, name=tasknames.NOTIFY_DELIVER_BATCH, autoretry_for=TRANSIENT, retry_backoff=1,
             retry_backoff_max=30, retry_jitter=True, max_retries=5, time_limit=90)
def deliver_batch(self, delivery_ids: list[str]) -> dict[str, int]:
    """One attempt at each due delivery of the batch, in this process's delivery slots. It
    returns once every one is started (their ends are recorded as they come): the slots, not
    the tasks, bound what is in flight, and the next batch's claims wait for free ones."""
    rt = self.rt
    outcomes = batches.deliver_batch(rt, delivery_ids, wait_seconds=0)
    dispatch.top_up(rt, lambda dids: _send_batch(self.app, dids))
    return outcomes


@shared_task(bind=True, name=tasknames.NOTIFY_CONFIRM_EMAIL, autoretry_for=(*TRANSIENT, DeliveryError),
             retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=12, time_limit=90)
def confirm_email(self, subscription_id: str) -> str:
    """Send the double opt-in email of a pending email subscription (once)."""
    return confirmations.send_confirmation(self.rt, subscription_id)


@shared_task(bind=True, name=tasknames.NOTIFY_DISPATCH, expires=5)
def dispatch_due(self) -> int:
    """Queue deliveries that are due: new ones left by fan-out, retries, lapsed leases (every second)."""
    rt = self.rt
    sent = dispatch.dispatch(rt, lambda dids: _send_batch(self.app, dids))
    if sent:
        log.info("queued %d due deliveries", sent)
    return sent


@signals.worker_process_shutdown.connect(weak=False)
def _drain(**kwargs) -> None:
    """A stopping pool process lets its deliveries in flight end before it exits."""
    if not batches.drain():
        log.warning("deliveries still in flight at exit; they are sent again when their leases lapse")


def _create_here(task) -> Callable[[dict, str, list[str]], None]:
    """fan_out's hand-off of its batches: each batch's deliveries are created right here and
    dispatched at once, so the first notifications leave while the rest are created. One
    process creates some 70,000 deliveries a second, far ahead of what workers send; a
    `notify.queue_batch` task a batch (until stop 29) cost each batch a Celery task, and its
    messages, queued ahead of the delivery batches, held back their dispatch (the notify
    queue's backlog counts every message) until they had all run."""

    def create(event: dict, ekey: str, sids: list[str]) -> None:
        matching.create_deliveries(task.rt, ekey, sids, event)
        dispatch.dispatch(task.rt, lambda dids: _send_batch(task.app, dids))

    return create


def _send_batch(app, dids: list[str]) -> None:
    # argsrepr (what logs and events show of the args) said here: Celery's own walks the list
    app.send_task(tasknames.NOTIFY_DELIVER_BATCH, args=[dids], argsrepr=f"[<{len(dids)} delivery ids>]")
