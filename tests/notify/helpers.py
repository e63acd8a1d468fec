"""Drive the notify pipeline in-process: the same functions the tasks call, without a broker."""

from __future__ import annotations

import uuid

from services.notify import deliveries, matching
from shared.deliveries import DeliveryStore
from shared.subscriptions import SubscriptionStore


def article_event(kind: str = "article.published", **changes) -> dict:
    """An ArticleEvent as render sends it, for a fresh article."""
    aid = "a" + uuid.uuid4().hex[:20]
    event = {
        "type": kind,
        "timestamp": "2026-11-27T10:00:00+00:00",
        "id": aid,
        "uri": f"urn:test:{aid}",
        "version": 1,
        "headline": "Israeli Defence Minister visits Georgia and Azerbaijan",
        "summary": "Avigdor Liberman arrived in Azerbaijan for his first visit.",
        "url": f"https://news.example.test/2018/09/13/{aid}/",
        "topics": ["News", "Defence", "Arms trade", "Georgia", "Azerbaijan"],
        "language": "en",
    }
    event.update(changes)
    return event


def queue(rt, event: dict) -> list[str]:
    """Fan out and create the deliveries; returns the ids of the new ones (not yet attempted)."""
    batches: list[tuple[str, list[str]]] = []
    matching.fan_out(rt, event, lambda loaded, ekey, sids: batches.append((ekey, sids)))
    queued: list[str] = []
    for ekey, sids in batches:
        queued += matching.create_deliveries(rt, ekey, sids)
    return queued


def deliver(rt, event: dict) -> dict[str, str]:
    """Fan out, then one attempt per new delivery; returns {delivery id: outcome}."""
    return {did: deliveries.attempt(rt, did) for did in queue(rt, event)}


def subscribe(rt, url_or_email: str, topics=("Defence",), events=None, channel: str | None = None):
    """A subscription straight in the store; returns (subscription, secret)."""
    channel = channel or ("email" if "@" in url_or_email and "://" not in url_or_email else "webhook")
    return SubscriptionStore(rt.redis).create(channel, url_or_email, list(topics), list(events or []))


def record(rt, did: str) -> dict:
    return DeliveryStore(rt.redis).get(did)


def log(rt, sid: str) -> list[dict]:
    return DeliveryStore(rt.redis).log_page(sid, 1, 100)[0]
