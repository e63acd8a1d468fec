"""Dispatch: due deliveries go to the broker only as fast as the queue has room."""

import time

from services.notify import dispatch
from shared.deliveries import DUE
from tests.notify.helpers import article_event, queue, subscribe


def test_dispatch_fills_the_queue_up_to_the_backlog_and_no_further(notify_rt, monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_BACKLOG", 500)
    for n in range(1203):
        subscribe(notify_rt, f"http://127.0.0.1:9/{n}")
    created = set(queue(notify_rt, article_event()))
    assert len(created) == 1203

    def send(did):  # what the broker does: one message in the notify list
        notify_rt.redis.lpush(dispatch.QUEUE, did)

    assert dispatch.dispatch(notify_rt, send) == 500
    assert dispatch.dispatch(notify_rt, send) == 0  # the queue is full: the rest wait in Redis
    first = {m.decode() for m in notify_rt.redis.lrange(dispatch.QUEUE, 0, -1)}
    assert notify_rt.redis.zscore(DUE, next(iter(first))) > time.time() + 60  # re-sent only if lost

    notify_rt.redis.delete(dispatch.QUEUE)  # the workers took them
    assert dispatch.dispatch(notify_rt, send) == 500
    notify_rt.redis.delete(dispatch.QUEUE)
    assert dispatch.dispatch(notify_rt, send) == 203
    rest = {m.decode() for m in notify_rt.redis.lrange(dispatch.QUEUE, 0, -1)}
    assert len(first | rest) == 703 and (first | rest) <= created
    assert dispatch.dispatch(notify_rt, send) == 0
