"""Fan-out: from one article event to batches of subscribers, without scanning them all.

The event is stored once; subscribers are found as the union of the index sets of the
event's topics (and `*`), then handed on in batches, so the fan-out task finishes in
moments whatever the number of subscribers and never waits on a delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.deliveries import DeliveryStore
from shared.messages import ArticleEvent
from shared.runtime import Runtime
from shared.subscriptions import SubscriptionStore

BATCH_SIZE = 500

_event_schema = ArticleEvent()


def fan_out(rt: Runtime, event: dict, send_batch: Callable[[str, list[str]], None]) -> int:
    """Validate the event, store it and hand matching subscriber ids to `send_batch`; returns the count.

    Raises marshmallow.ValidationError for a malformed event (a bug in the sender).
    """
    event = _event_schema.load(event)
    ekey = DeliveryStore(rt.redis).save_event(event)
    sids = SubscriptionStore(rt.redis).matching(event["type"], event["topics"])
    for start in range(0, len(sids), BATCH_SIZE):
        send_batch(ekey, sids[start : start + BATCH_SIZE])
    return len(sids)


def queue_batch(rt: Runtime, ekey: str, sids: list[str], send_delivery: Callable[[str], None]) -> int:
    """Create one delivery per subscriber (once ever) and queue each new one; returns how many are new.

    Records that already exist were queued by an earlier run of this batch; if that run died
    before queuing them, the scheduler's rescue pass (shared.deliveries.RESCUE_AFTER) does.
    """
    store = DeliveryStore(rt.redis)
    event = store.load_event(ekey)
    if event is None:
        return 0
    created = [did for did, state in store.create_many(ekey, event, sids) if state == "created"]
    for did in created:
        send_delivery(did)
    return len(created)
