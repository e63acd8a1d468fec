"""Batched delivery: many deliveries per task, sent from one loop thread per process, to real local receivers."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from services.notify import batches
from services.notify.transports import webhook
from shared.deliveries import DUE, webhook_id
from shared.runtime import Runtime
from shared.subscriptions import SubscriptionStore
from tests.conftest import start_redis
from tests.notify.helpers import article_event, log, queue, record, subscribe


@pytest.fixture
def sender():
    """A Sender of the test's own, so no other test's background sends share its slots."""
    own = batches.Sender(batches.IN_FLIGHT)
    yield own
    batches.wait_idle(own)
    own.executor.shutdown(wait=True)


def test_a_batch_delivers_every_subscriber_once_over_kept_connections(notify_rt, webhook_receivers):
    sixteen = batches.Sender(16)  # fewer slots than deliveries: each connection must carry several
    receiver = webhook_receivers()
    subs = [subscribe(notify_rt, receiver.url) for _ in range(60)]
    receiver.secrets = [secret for _sub, secret in subs]
    ids = queue(notify_rt, article_event())
    opened = webhook.client().opened
    try:
        assert batches.deliver_batch(notify_rt, ids, sixteen) == {"delivered": 60}
    finally:
        batches.wait_idle(sixteen)
        sixteen.executor.shutdown(wait=True)
    assert sorted(r["headers"]["webhook-id"] for r in receiver.requests) == sorted(webhook_id(d) for d in ids)
    for sub, secret in subs:
        assert len(receiver.verified_payloads(secret)) == 1  # signed with its own subscription's secret
        (entry,) = log(notify_rt, sub.id)
        assert entry["status"] == "delivered" and entry["attempt"] == 1
    assert {record(notify_rt, d)["state"] for d in ids} == {"delivered"}
    new_connections = webhook.client().opened - opened
    assert 1 <= new_connections <= 16  # kept alive, not one connection per delivery
    assert not sixteen.executor._threads  # no thread per webhook: the process's HTTP loop sent them all


def test_a_slow_endpoint_in_a_batch_delays_nobody_else(notify_rt, webhook_receivers, sender):
    held = threading.Event()
    slow = webhook_receivers(hold=held)  # answers only when the test lets it
    fast = webhook_receivers()
    slow_sub, _ = subscribe(notify_rt, slow.url)
    fast_subs = [subscribe(notify_rt, fast.url)[0] for _ in range(20)]
    ids = queue(notify_rt, article_event())
    by_sub = {record(notify_rt, d)["sub"]: d for d in ids}
    slow_first = [by_sub[slow_sub.id]] + [by_sub[s.id] for s in fast_subs]
    outcomes = batches.deliver_batch(notify_rt, slow_first, sender, wait_seconds=4.0)  # room for 20 fast POSTs
    assert outcomes == {"delivered": 20, "sending": 1}  # the task is done; the slow one goes on in the background
    assert record(notify_rt, by_sub[slow_sub.id])["state"] == "delivering"
    assert len(fast.requests) == 20
    held.set()
    assert batches.wait_idle(sender)
    assert record(notify_rt, by_sub[slow_sub.id])["state"] == "delivered"


def test_a_task_that_does_not_wait_returns_once_its_deliveries_are_started(notify_rt, webhook_receivers, sender):
    held = threading.Event()
    slow = webhook_receivers(hold=held)
    subs = [subscribe(notify_rt, slow.url)[0] for _ in range(3)]
    ids = queue(notify_rt, article_event())
    assert batches.deliver_batch(notify_rt, ids, sender, wait_seconds=0) == {"sending": 3}
    assert {record(notify_rt, d)["state"] for d in ids} == {"delivering"}  # claimed, their POSTs under way
    held.set()
    assert batches.wait_idle(sender)
    assert {record(notify_rt, d)["state"] for d in ids} == {"delivered"}
    assert [len(log(notify_rt, sub.id)) for sub in subs] == [1, 1, 1]


def test_drain_waits_for_deliveries_in_flight_and_needs_no_sender(notify_rt, webhook_receivers, monkeypatch):
    own = batches.Sender(4)
    monkeypatch.setattr(batches.sender, "existing", lambda: None)
    assert batches.drain(0.1)  # a process that sent nothing exits at once
    monkeypatch.setattr(batches.sender, "existing", lambda: own)
    held = threading.Event()
    slow = webhook_receivers(hold=held)
    subscribe(notify_rt, slow.url)
    (did,) = queue(notify_rt, article_event())
    assert batches.deliver_batch(notify_rt, [did], own, wait_seconds=0) == {"sending": 1}
    assert not batches.drain(0.3)  # still waiting on its receiver
    threading.Timer(0.3, held.set).start()
    assert batches.drain(10)
    assert record(notify_rt, did)["state"] == "delivered"
    own.executor.shutdown(wait=True)


def test_when_slow_endpoints_hold_every_thread_the_rest_goes_back_to_the_due_set(
    notify_rt, webhook_receivers, monkeypatch
):
    monkeypatch.setattr(batches, "HAND_BACK_AFTER", 0.3)
    two = batches.Sender(2)
    held = threading.Event()
    slow = webhook_receivers(hold=held)
    fast = webhook_receivers()
    slow_subs = [subscribe(notify_rt, slow.url)[0] for _ in range(2)]
    fast_subs = [subscribe(notify_rt, fast.url)[0] for _ in range(3)]
    ids = queue(notify_rt, article_event())
    by_sub = {record(notify_rt, d)["sub"]: d for d in ids}
    fast_ids = [by_sub[s.id] for s in fast_subs]
    notify_rt.redis.zadd(DUE, dict.fromkeys(ids, time.time() + 120))  # as the dispatcher leaves released ones
    try:
        outcomes = batches.deliver_batch(notify_rt, [by_sub[s.id] for s in slow_subs] + fast_ids, two,
                                         wait_seconds=0.1)
        assert outcomes == {"sending": 2, "handed back": 3}
        assert fast.requests == []
        now = time.time()
        for did in fast_ids:
            assert record(notify_rt, did)["state"] == "pending" and record(notify_rt, did)["attempts"] == "0"
            assert notify_rt.redis.zscore(DUE, did) <= now  # due at once, for another process to take
        held.set()
        assert batches.wait_idle(two)
        assert batches.deliver_batch(notify_rt, fast_ids, two) == {"delivered": 3}
    finally:
        held.set()
        batches.wait_idle(two)
        two.executor.shutdown(wait=True)


def test_two_deliveries_to_one_subscriber_in_a_batch_go_one_after_the_other(notify_rt, webhook_receivers, sender):
    receiver = webhook_receivers()
    sub, secret = subscribe(notify_rt, receiver.url)
    receiver.secrets = [secret]
    first, second = queue(notify_rt, article_event())[0], queue(notify_rt, article_event())[0]
    assert batches.deliver_batch(notify_rt, [first, second], sender) == {"delivered": 1, "deferred": 1}
    assert notify_rt.redis.zscore(DUE, second) <= time.time()  # the first one's finish made it due
    assert batches.deliver_batch(notify_rt, [first, second], sender) == {"already delivered": 1, "delivered": 1}
    assert len(receiver.verified_payloads(secret)) == 2


def test_a_batch_run_twice_at_once_delivers_each_once(notify_rt, webhook_receivers):
    receiver = webhook_receivers(delay=0.2)
    for _ in range(10):
        subscribe(notify_rt, receiver.url)
    ids = queue(notify_rt, article_event())
    senders = [batches.Sender(4), batches.Sender(4)]
    results = []
    runs = [threading.Thread(target=lambda s=s: results.append(batches.deliver_batch(notify_rt, ids, s)))
            for s in senders]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    for s in senders:
        batches.wait_idle(s)
        s.executor.shutdown(wait=True)
    assert sorted(r["headers"]["webhook-id"] for r in receiver.requests) == sorted(webhook_id(d) for d in ids)
    assert {record(notify_rt, d)["attempts"] for d in ids} == {"1"}
    assert sum(r.get("delivered", 0) for r in results) == 10


def test_answers_in_a_batch_are_handled_as_for_one_delivery(notify_rt, webhook_receivers, sender):
    gone = webhook_receivers(status=410)
    busy = webhook_receivers(status=429, headers={"Retry-After": "120"})
    down = webhook_receivers(status=503, headers={"Retry-After": "300"})
    ok = webhook_receivers()
    gone_sub, _ = subscribe(notify_rt, gone.url)
    subscribe(notify_rt, busy.url)
    subscribe(notify_rt, down.url)
    subscribe(notify_rt, ok.url)
    ids = queue(notify_rt, article_event())
    before = time.time()
    assert batches.deliver_batch(notify_rt, ids, sender) == {"failed": 1, "retrying": 2, "delivered": 1}
    assert SubscriptionStore(notify_rt.redis).get(gone_sub.id).status == "disabled"
    pending = [record(notify_rt, d) for d in ids if record(notify_rt, d)["state"] == "pending"]
    waits = sorted(float(r["next_at"]) - before for r in pending)
    assert waits[0] >= 120 and waits[1] >= 300


def test_done_and_unknown_deliveries_in_a_batch_are_left_alone(notify_rt, webhook_receivers, sender):
    receiver = webhook_receivers()
    subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    assert batches.deliver_batch(notify_rt, [did], sender) == {"delivered": 1}
    assert batches.deliver_batch(notify_rt, [did, "dnothing"], sender) == {"already delivered": 1, "missing": 1}
    assert len(receiver.requests) == 1


def test_the_ssrf_guard_refuses_every_delivery_of_a_batch(notify_rt, notify_settings, webhook_receivers, sender):
    receiver = webhook_receivers()
    for _ in range(3):
        subscribe(notify_rt, receiver.url)
    guarded = Runtime(dataclasses.replace(notify_settings, webhook_allow_networks=()))
    ids = queue(guarded, article_event())
    assert batches.deliver_batch(guarded, ids, sender) == {"failed": 3}
    assert receiver.requests == []
    assert all("refused" in record(guarded, d)["last_error"] for d in ids)


def test_email_subscribers_in_a_batch_get_their_email(notify_rt, webhook_receivers, smtp_server, sender):
    store = SubscriptionStore(notify_rt.redis)
    reader, _ = subscribe(notify_rt, "reader@example.test")
    store.confirm(reader.confirm_token)
    receiver = webhook_receivers()
    subscribe(notify_rt, receiver.url)
    event = article_event()
    ids = queue(notify_rt, event)
    assert batches.deliver_batch(notify_rt, ids, sender) == {"delivered": 2}
    (mail,) = smtp_server.handler.messages
    assert mail["To"] == "reader@example.test" and mail["Subject"] == event["headline"]
    assert len(receiver.requests) == 1


def test_a_batch_works_after_redis_lost_its_scripts(notify_rt, webhook_receivers, sender):
    """Claims and finishes go as EVALSHA in pipelines; a Redis that restarted without them loads them again."""
    receiver = webhook_receivers()
    for _ in range(3):
        subscribe(notify_rt, receiver.url)
    ids = queue(notify_rt, article_event())
    notify_rt.redis.script_flush()
    assert batches.deliver_batch(notify_rt, ids, sender) == {"delivered": 3}
    assert {record(notify_rt, d)["state"] for d in ids} == {"delivered"}


def test_batches_go_on_over_the_threads_own_connections_after_redis_restarts(
    notify_settings, webhook_receivers, sender, tmp_path
):
    """The claiming thread and the finisher each keep a Redis connection (Runtime.own_redis):
    a restart breaks both, and the next batch must make them again, not fail its deliveries."""
    server = start_redis(directory=str(tmp_path), persist=True)
    try:
        rt = Runtime(dataclasses.replace(notify_settings, redis_url=server.url))
        receiver = webhook_receivers()
        for _ in range(3):
            subscribe(rt, receiver.url)
        before = queue(rt, article_event())
        assert batches.deliver_batch(rt, before, sender) == {"delivered": 3}
        kept = rt.own_redis().connection
        socket_before = kept._sock
        server.stop()
        server = start_redis(directory=str(tmp_path), port=server.port, persist=True)
        after = queue(rt, article_event())
        assert batches.deliver_batch(rt, after, sender) == {"delivered": 3}
        assert {record(rt, d)["state"] for d in before + after} == {"delivered"}
        assert len(receiver.requests) == 6  # none sent twice
        assert rt.own_redis().connection is kept and kept._sock is not socket_before  # the same one, made again
    finally:
        server.stop()


def test_a_claim_waits_briefly_for_more_free_slots_to_share_its_call():
    own = batches.Sender(4)
    try:
        assert own.take(4, 0) == 4  # every slot busy
        for delay in (0.05, 0.1):
            threading.Timer(delay, own.give_back, args=(1,)).start()
        assert own.take(4, 5.0, gather=0.5) == 2  # the second freed slot joined the first
        threading.Timer(0.3, own.give_back, args=(1,)).start()
        threading.Timer(0.05, own.give_back, args=(1,)).start()
        assert own.take(4, 5.0, gather=0) == 1  # no window: the first free slot goes alone
    finally:
        own.executor.shutdown(wait=True)


def test_a_batch_sends_email_from_its_threads_beside_webhooks_and_records_each_once(
    notify_rt, webhook_receivers, smtp_server, sender
):
    receiver = webhook_receivers()
    hook, secret = subscribe(notify_rt, receiver.url)
    receiver.secrets = [secret]
    store = SubscriptionStore(notify_rt.redis)
    reader, _ = store.create("email", "reader@example.test", ["Defence"], [])
    store.confirm(reader.confirm_token)
    bounce, _ = store.create("email", "bounce@example.test", ["Defence"], [])
    store.confirm(bounce.confirm_token)
    ids = queue(notify_rt, article_event())
    assert batches.deliver_batch(notify_rt, ids, sender) == {"delivered": 2, "failed": 1}
    by_sub = {record(notify_rt, d)["sub"]: d for d in ids}
    assert [m["To"] for m in smtp_server.handler.messages] == ["reader@example.test"]
    assert smtp_server.handler.messages[0]["Message-ID"] == f"<{by_sub[reader.id]}@pressroom.test>"
    assert len(receiver.verified_payloads(secret)) == 1
    assert record(notify_rt, by_sub[bounce.id])["state"] == "failed"
    assert store.get(bounce.id).status == "disabled"  # concluded by the finisher: the refused mailbox
    assert [e["status"] for e in log(notify_rt, reader.id)] == ["delivered"]
    assert 1 <= len(sender.executor._threads) <= 2  # the emails took threads; the webhook did not
