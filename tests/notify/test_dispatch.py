"""Dispatch: due deliveries go to the broker in batches, only as fast as the queue has room."""

import base64
import dataclasses
import json
import time

import redis

from services.notify import dispatch, tasks
from shared.celery_app import create_celery
from shared.deliveries import DUE
from tests.conftest import start_redis
from tests.notify.helpers import article_event, queue, subscribe


def test_dispatch_fills_the_queue_up_to_the_backlog_and_no_further(notify_rt, monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_BACKLOG", 5)
    monkeypatch.setattr(dispatch, "BATCH", 100)
    for n in range(1203):
        subscribe(notify_rt, f"http://127.0.0.1:9/{n}")
    created = set(queue(notify_rt, article_event()))
    assert len(created) == 1203

    def send(dids):  # what the broker does: one message in the notify list
        assert 0 < len(dids) <= 100
        notify_rt.redis.lpush(dispatch.QUEUE, json.dumps(dids))

    def queued() -> list[list[str]]:
        return [json.loads(m) for m in notify_rt.redis.lrange(dispatch.QUEUE, 0, -1)]

    assert dispatch.dispatch(notify_rt, send) == 500
    assert [len(m) for m in queued()] == [100] * 5
    assert dispatch.dispatch(notify_rt, send) == 0  # the queue is full: the rest wait in Redis
    first = {did for m in queued() for did in m}
    assert notify_rt.redis.zscore(DUE, next(iter(first))) > time.time() + 60  # re-sent only if lost

    notify_rt.redis.delete(dispatch.QUEUE)  # the workers took them
    assert dispatch.dispatch(notify_rt, send) == 500
    notify_rt.redis.delete(dispatch.QUEUE)
    assert dispatch.dispatch(notify_rt, send) == 203
    assert sorted(len(m) for m in queued()) == [3, 100, 100]
    rest = {did for m in queued() for did in m}
    assert len(first | rest) == 703 and (first | rest) <= created
    assert dispatch.dispatch(notify_rt, send) == 0


def test_deliveries_whose_message_the_broker_refused_are_due_again_at_once(notify_rt, monkeypatch):
    import pytest

    monkeypatch.setattr(dispatch, "BATCH", 4)
    for n in range(10):
        subscribe(notify_rt, f"http://127.0.0.1:9/refused/{n}")
    created = set(queue(notify_rt, article_event()))
    sent: list[list[str]] = []

    def send(dids):  # the broker takes one message, then is gone
        if sent:
            raise ConnectionError("broker gone")
        sent.append(dids)

    with pytest.raises(ConnectionError):
        dispatch.dispatch(notify_rt, send)
    unsent = created - set(sent[0])
    assert len(sent[0]) == 4 and len(unsent) == 6
    now = time.time()
    assert all(notify_rt.redis.zscore(DUE, did) <= now for did in unsent)  # not REQUEUE_AFTER ahead
    assert all(notify_rt.redis.zscore(DUE, did) > now + 60 for did in sent[0])  # sent: back only if lost

    def redis_gone(self, dids):
        raise redis.ConnectionError("Redis gone too")

    monkeypatch.setattr(dispatch.DeliveryStore, "hand_back", redis_gone)
    for did in unsent:
        notify_rt.redis.zadd(DUE, {did: now - 1})
    sent.clear()
    sent.append(["taken"])
    with pytest.raises(ConnectionError, match="broker gone"):  # the broker's error, not the hand-back's
        dispatch.dispatch(notify_rt, send)
    assert all(notify_rt.redis.zscore(DUE, did) > now + 60 for did in unsent)  # they come back after REQUEUE_AFTER


def test_top_up_only_when_the_queue_runs_low(notify_rt, monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_BACKLOG", 8)
    for n in range(5):
        subscribe(notify_rt, f"http://127.0.0.1:9/{n}")
    queue(notify_rt, article_event())
    sent = []
    for _ in range(2):
        notify_rt.redis.lpush(dispatch.QUEUE, "[]")
    assert dispatch.top_up(notify_rt, sent.append) == 0 and sent == []  # two of eight: not low
    notify_rt.redis.delete(dispatch.QUEUE)
    assert dispatch.top_up(notify_rt, sent.append) == 5 and [len(b) for b in sent] == [5]


def test_a_batch_message_carries_its_ids_and_says_how_many_in_its_argsrepr(settings, tmp_path):
    """On a Redis of its own: the shared one has notify workers that would take the message at once."""
    private = start_redis(str(tmp_path))
    try:
        app = create_celery(dataclasses.replace(settings, redis_url=private.url))
        dids = [f"d{n:024x}" for n in range(500)]
        tasks._send_batch(app, dids)
        [raw] = redis.Redis.from_url(private.url).lrange(dispatch.QUEUE, 0, -1)
        message = json.loads(raw)
        assert message["headers"]["task"] == "notify.deliver_batch"
        assert message["headers"]["argsrepr"] == "[<500 delivery ids>]"  # not Celery's walk of the list
        assert json.loads(base64.b64decode(message["body"]))[0] == [dids]
    finally:
        private.stop()
