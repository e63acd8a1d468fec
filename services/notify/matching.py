"""Fan-out: from one article event to batches of subscribers, without scanning them all.

The event is stored once; subscribers are found as the union of the index sets of the
event's topics (and `*`), then handed on in batches whose deliveries are created in one
Redis round trip each, so fan-out takes seconds for 100,000 subscribers and never waits
on a delivery; services.notify.dispatch then feeds them to the workers.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.deliveries import DeliveryStore
from shared.messages import ArticleEvent
from shared.runtime import Runtime
from shared.subscriptions import SubscriptionStore

BATCH_SIZE = 500

_event_schema = ArticleEvent()


def fan_out(rt: Runtime, event: dict, send_batch: Callable[[dict, str, list[str]], None]) -> int:
    """Validate the event, store it and hand matching subscriber ids to `send_batch(event, event
    key, ids)` (the event as loaded, so creating its deliveries need not read it back); returns
    the count.

    Raises marshmallow.ValidationError for a malformed event (a bug in the sender).
    """
    event = _event_schema.load(event)
    ekey = DeliveryStore(rt.redis).save_event(event)
    sids = SubscriptionStore(rt.redis).matching(event["type"], event["topics"])
    for start in range(0, len(sids), BATCH_SIZE):
        send_batch(event, ekey, sids[start : start + BATCH_SIZE])
    return len(sids)


def create_deliveries(rt: Runtime, ekey: str, sids: list[str], event: dict | None = None) -> list[str]:
    """Create one delivery per subscriber (once ever, due now); returns the ids of the new ones.
    `event` is the one stored under `ekey` when the caller holds it (the fan-out), else it is
    read (none are created once it has expired).

    Records that already exist are left alone: a batch or event seen twice adds nothing.
    """
    store = DeliveryStore(rt.redis)
    event = event or store.load_event(ekey)
    if event is None:
        return []
    return [did for did, state in store.create_many(ekey, event, sids) if state == "created"]
