"""End to end on the real stack: API under gunicorn, Celery workers, scheduler, Redis, S3."""

from __future__ import annotations

import json
import uuid

import requests

from services.notify import matching
from services.notify.transports import webhook
from shared import tasknames
from shared.celery_app import create_celery
from shared.deliveries import DeliveryStore, delivery_id
from shared.subscriptions import SubscriptionStore
from tests.conftest import auth_headers, signed, unique_article, wait_for
from tests.notify.helpers import article_event, subscribe


def _deliveries(api: str, sid: str) -> list[dict]:
    answer = requests.get(f"{api}/v1/subscriptions/{sid}/deliveries", headers=auth_headers(), timeout=10)
    return answer.json()["items"]


def test_a_subscriber_gets_the_seed_article_once_verified(api, workers, webhook_receivers):
    receiver = webhook_receivers()
    created = requests.post(f"{api}/v1/subscriptions", headers=auth_headers(), timeout=30, json={
        "channel": "webhook", "url": receiver.url, "topics": ["Defence"]})
    assert created.status_code == 201, created.text
    sub = created.json()
    receiver.secrets = [sub["secret"]]
    try:
        doc = unique_article()
        body = json.dumps(doc).encode()
        accepted = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10)
        assert accepted.status_code == 202, accepted.text
        aid = accepted.json()["id"]

        entries = wait_for(lambda: [e for e in _deliveries(api, sub["id"]) if e["article_id"] == aid],
                           timeout=90, message="the delivery to be logged")
        mine = [p for p in receiver.verified_payloads(sub["secret"]) if p["data"]["id"] == aid]
        assert len(mine) == 1
        (payload,) = mine
        assert set(payload) == {"type", "timestamp", "data"}
        assert payload["type"] == "article.published"
        data = payload["data"]
        assert set(data) == {"id", "uri", "version", "headline", "url", "topics"}
        assert data["uri"] == doc["uri"] and data["version"] == 1
        assert data["headline"] == "Israeli Defence Minister visits Georgia and Azerbaijan"
        assert data["url"].startswith("https://news.example.test/") and "Defence" in data["topics"]
        assert [(e["status"], e["http_status"], e["attempt"]) for e in entries] == [("delivered", 200, 1)]
        delivery = requests.get(f"{api}/v1/deliveries/{entries[0]['delivery_id']}", headers=auth_headers(),
                                timeout=10).json()
        assert delivery["state"] == "delivered" and delivery["attempts"] == 1
        assert receiver.requests[0]["headers"]["webhook-id"] == delivery["webhook_id"]

        withdrawn = requests.delete(f"{api}/v1/articles/{aid}", headers=auth_headers(), timeout=10)
        assert withdrawn.status_code == 202
        wait_for(lambda: any(p["type"] == "article.withdrawn" and p["data"]["id"] == aid
                             for p in receiver.verified_payloads(sub["secret"])),
                 timeout=90, message="the withdrawal notification")
        kinds = [p["type"] for p in receiver.verified_payloads(sub["secret"]) if p["data"]["id"] == aid]
        assert kinds == ["article.published", "article.withdrawn"]
        assert all(isinstance(r["verified"][sub["secret"]], dict) for r in receiver.requests)
    finally:
        requests.delete(f"{api}/v1/subscriptions/{sub['id']}", headers=auth_headers(), timeout=10)


def test_failures_are_retried_by_the_scheduler_until_delivered(api, workers, webhook_receivers):
    receiver = webhook_receivers(status=503)
    sub = requests.post(f"{api}/v1/subscriptions", headers=auth_headers(), timeout=30, json={
        "channel": "webhook", "url": receiver.url, "topics": ["Arms trade"], "events": ["article.published"]}).json()
    receiver.secrets = [sub["secret"]]
    try:
        doc = unique_article()
        body = json.dumps(doc).encode()
        aid = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10).json()["id"]
        wait_for(lambda: len(receiver.requests) >= 2, timeout=90, message="the immediate retry")
        receiver.status = 200
        entries = wait_for(
            lambda: (e := _deliveries(api, sub["id"])) and e[0]["status"] == "delivered" and e,
            timeout=90, message="the retry on the schedule (5 s) to succeed")
        assert [e["status"] for e in entries] == ["delivered", "retrying", "retrying"]
        assert [e["attempt"] for e in entries] == [3, 2, 1]
        ids = {r["headers"]["webhook-id"] for r in receiver.requests}
        assert len(ids) == 1 and len(receiver.requests) == 3
        assert all(p["data"]["id"] == aid for p in receiver.verified_payloads(sub["secret"]))
    finally:
        requests.delete(f"{api}/v1/subscriptions/{sub['id']}", headers=auth_headers(), timeout=10)


def test_a_batch_of_events_delivers_each_and_a_malformed_one_holds_up_none(settings, rt, workers, webhook_receivers):
    receiver = webhook_receivers()
    sub, secret = subscribe(rt, receiver.url, topics=["Defence"])
    receiver.secrets = [secret]
    first, second = article_event(), article_event(kind="article.updated", version=2)
    malformed = {**article_event(), "version": "two"}
    try:
        events = [first, malformed, second]
        create_celery(settings).send_task(tasknames.NOTIFY_ARTICLE_EVENTS, kwargs={"events": events})
        arrived = wait_for(lambda: (got := {(p["type"], p["data"]["id"]) for p in receiver.verified_payloads(secret)})
                           >= {("article.published", first["id"]), ("article.updated", second["id"])} and got,
                           timeout=90, message="both well-formed events delivered")
        assert ("article.published", malformed["id"]) not in arrived
        assert DeliveryStore(rt.redis).get(delivery_id(malformed["id"], 1, "article.published", sub.id)) is None
    finally:
        SubscriptionStore(rt.redis).delete(sub.id)


def test_a_fan_out_of_several_batches_reaches_every_subscriber_once(settings, rt, workers, webhook_receivers):
    """Beyond one batch (500): the event's task creates and dispatches each batch in turn, and
    every delivery of each is sent once and recorded."""
    receiver = webhook_receivers()
    topic = "fanout-" + uuid.uuid4().hex[:8]
    count = 2 * matching.BATCH_SIZE + 1
    subs = [subscribe(rt, receiver.url, topics=[topic])[0] for _ in range(count)]
    event = article_event(topics=[topic])
    ids = [delivery_id(event["id"], 1, event["type"], sub.id) for sub in subs]
    store = DeliveryStore(rt.redis)
    try:
        create_celery(settings).send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})
        wait_for(lambda: all((store.get(did) or {}).get("state") == "delivered" for did in ids),
                 timeout=120, message=f"{count} deliveries recorded")
        webhook_ids = [r["headers"]["webhook-id"] for r in receiver.requests]
        assert sorted(webhook_ids) == sorted(f"msg_{did}" for did in ids)  # each sent once
        # the two pool processes had up to 64 deliveries each in flight, over at most 32 connections each
        assert len({r["client_port"] for r in receiver.requests}) <= 2 * webhook.CONNECTIONS_PER_HOST
    finally:
        subscriptions = SubscriptionStore(rt.redis)
        for sub in subs:
            subscriptions.delete(sub.id)


def test_a_queue_batch_message_an_earlier_version_left_still_creates_and_delivers(settings, rt, workers,
                                                                                 webhook_receivers):
    """Until stop 29 the fan-out sent `notify.queue_batch` a batch; such messages still in the
    queue after an upgrade create their deliveries and have them sent."""
    receiver = webhook_receivers()
    subs = [subscribe(rt, receiver.url, topics=["Defence"]) for _ in range(3)]
    receiver.secrets = [secret for _, secret in subs]
    event = article_event()
    store = DeliveryStore(rt.redis)
    ekey = store.save_event(event)
    ids = [delivery_id(event["id"], 1, event["type"], sub.id) for sub, _ in subs]
    try:
        create_celery(settings).send_task(tasknames.NOTIFY_QUEUE_BATCH, args=[ekey, [sub.id for sub, _ in subs]])
        wait_for(lambda: all((store.get(did) or {}).get("state") == "delivered" for did in ids),
                 timeout=90, message="the batch's deliveries recorded")
        assert sorted(r["headers"]["webhook-id"] for r in receiver.requests) == sorted(f"msg_{did}" for did in ids)
    finally:
        for sub, _ in subs:
            SubscriptionStore(rt.redis).delete(sub.id)
