"""Webhook deliveries to real local receivers, verified with the standardwebhooks library."""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import threading
import time
from email.utils import formatdate

import pytest

from services.notify import deliveries
from services.notify.transports import webhook
from shared.deliveries import DUE, DeliveryStore, busy_key, waiting_key, webhook_id
from shared.runtime import Runtime
from shared.subscriptions import Subscription, SubscriptionStore
from tests.notify.helpers import article_event, deliver, log, queue, record, subscribe


def test_delivery_is_signed_and_has_the_spec_body(notify_rt, webhook_receivers):
    receiver = webhook_receivers()
    sub, secret = subscribe(notify_rt, receiver.url)
    receiver.secrets = [secret]
    event = article_event()
    (did, outcome), = deliver(notify_rt, event).items()
    assert outcome == "delivered"
    (payload,) = receiver.verified_payloads(secret)
    assert payload == {
        "type": "article.published",
        "timestamp": event["timestamp"],
        "data": {k: event[k] for k in ("id", "uri", "version", "headline", "url", "topics")},
    }
    headers = receiver.requests[0]["headers"]
    assert headers["webhook-id"] == webhook_id(did)
    assert headers["content-type"] == "application/json"
    assert record(notify_rt, did)["state"] == "delivered"
    (entry,) = log(notify_rt, sub.id)
    assert entry["status"] == "delivered" and entry["http_status"] == 200 and entry["response"] == "ok"
    assert entry["delivery_id"] == did and entry["event"] == "article.published" and entry["latency_ms"] >= 0
    assert secret not in json.dumps(entry)


def test_a_task_run_twice_delivers_once(notify_rt, webhook_receivers):
    receiver = webhook_receivers(delay=0.3)
    sub, secret = subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(deliveries.attempt(notify_rt, did))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert deliveries.attempt(notify_rt, did) == "delivered"
    assert len(receiver.requests) == 1
    assert set(outcomes) <= {"delivered", "deferred", "busy"} and "delivered" in outcomes
    assert record(notify_rt, did)["attempts"] == "1"


def test_a_worker_that_died_mid_delivery_is_taken_over_with_the_same_webhook_id(notify_rt, webhook_receivers):
    receiver = webhook_receivers()
    sub, secret = subscribe(notify_rt, receiver.url)
    receiver.secrets = [secret]
    (did,) = queue(notify_rt, article_event())
    store = DeliveryStore(notify_rt.redis)
    dead = store.claim(did, lease_seconds=0.2)  # claimed, then the worker died
    assert dead.outcome == "claimed"
    assert deliveries.attempt(notify_rt, did) == "busy"  # the lease is still live: hands off
    assert notify_rt.redis.zscore(DUE, did) is not None  # the scheduler will look again at lease end
    time.sleep(0.3)
    assert deliveries.attempt(notify_rt, did) == "delivered"
    assert store.finish(did, dead, "failed") is False  # the dead worker's late finish changes nothing
    assert record(notify_rt, did)["state"] == "delivered"
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [webhook_id(did)]
    assert len(receiver.verified_payloads(secret)) == 1


def test_server_errors_retry_on_the_schedule_with_a_stable_webhook_id(notify_rt, webhook_receivers):
    receiver = webhook_receivers(status=500, answer=b"E" * 500)
    sub, secret = subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    store = DeliveryStore(notify_rt.redis)

    assert deliveries.attempt(notify_rt, did) == "retrying"
    first = record(notify_rt, did)
    assert first["state"] == "pending" and first["last_status"] == "500"
    assert float(first["next_at"]) <= time.time()  # the first retry is immediate
    assert notify_rt.redis.zscore(DUE, did) == pytest.approx(float(first["next_at"]))

    before = time.time()
    assert deliveries.attempt(notify_rt, did) == "retrying"
    second = record(notify_rt, did)
    assert 5 <= float(second["next_at"]) - before <= 5 * 1.1 + 1  # then 5 s, with jitter
    assert deliveries.attempt(notify_rt, did) == "early"  # not due yet: nothing is sent
    assert len(receiver.requests) == 2
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {webhook_id(did)}

    entries = log(notify_rt, sub.id)
    assert [e["attempt"] for e in entries] == [2, 1]  # newest first
    assert entries[0]["status"] == "retrying" and entries[0]["http_status"] == 500
    assert entries[0]["response"] == "E" * 200 and entries[0]["next_attempt_at"]

    notify_rt.redis.hset(f"pr:dlv:{did}", mapping={"attempts": 8, "next_at": 0})  # seven retries later
    assert deliveries.attempt(notify_rt, did) == "failed"
    final = record(notify_rt, did)
    assert final["state"] == "failed" and "gave up after 9 attempts" in final["last_error"]
    assert notify_rt.redis.zscore(DUE, did) is None
    assert store.reset(did) == "reset" and record(notify_rt, did)["attempts"] == "0"


def test_410_fails_the_delivery_and_disables_the_subscription(notify_rt, webhook_receivers):
    receiver = webhook_receivers(status=410)
    sub, _ = subscribe(notify_rt, receiver.url)
    event = article_event()
    (did,) = queue(notify_rt, event)
    assert deliveries.attempt(notify_rt, did) == "failed"
    store = SubscriptionStore(notify_rt.redis)
    after = store.get(sub.id)
    assert after.status == "disabled" and "410" in after.disabled_reason
    assert sub.id not in store.matching("article.published", event["topics"])
    assert queue(notify_rt, article_event()) == []


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_honour_retry_after_seconds(notify_rt, webhook_receivers, status):
    receiver = webhook_receivers(status=status, headers={"Retry-After": "120"})
    subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    before = time.time()
    assert deliveries.attempt(notify_rt, did) == "retrying"
    assert float(record(notify_rt, did)["next_at"]) >= before + 120


def test_retry_after_as_an_http_date(notify_rt, webhook_receivers):
    later = formatdate(time.time() + 600, usegmt=True)
    receiver = webhook_receivers(status=503, headers={"Retry-After": later})
    subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    before = time.time()
    assert deliveries.attempt(notify_rt, did) == "retrying"
    assert float(record(notify_rt, did)["next_at"]) >= before + 590


def test_refused_connection_retries(notify_rt, refused_url):
    sub, _ = subscribe(notify_rt, refused_url)
    (did,) = queue(notify_rt, article_event())
    assert deliveries.attempt(notify_rt, did) == "retrying"
    (entry,) = log(notify_rt, sub.id)
    assert entry["http_status"] is None and "failed" in entry["error"]
    assert SubscriptionStore(notify_rt.redis).get(sub.id).failing_since is not None


def test_a_hanging_endpoint_times_out_and_delays_no_other_subscriber(notify_rt, webhook_receivers, monkeypatch):
    monkeypatch.setattr(webhook, "TOTAL_TIMEOUT", 1.0)
    hanging = webhook_receivers(delay=3)
    fast = webhook_receivers()
    slow_sub, _ = subscribe(notify_rt, hanging.url)
    fast_sub, _ = subscribe(notify_rt, fast.url)
    ids = queue(notify_rt, article_event())
    by_sub = {record(notify_rt, d)["sub"]: d for d in ids}
    finished = {}

    def run(sid):
        finished[sid] = (deliveries.attempt(notify_rt, by_sub[sid]), time.monotonic())

    slow = threading.Thread(target=run, args=(slow_sub.id,))
    slow.start()
    while not hanging.requests:
        time.sleep(0.01)
    run(fast_sub.id)
    slow.join()
    assert finished[fast_sub.id][0] == "delivered"
    assert finished[slow_sub.id][0] == "retrying"
    assert finished[fast_sub.id][1] < finished[slow_sub.id][1]  # done while the slow one still hung
    (entry,) = log(notify_rt, slow_sub.id)
    assert "longer than 1s" in entry["error"]


def test_one_delivery_in_flight_per_subscription(notify_rt, webhook_receivers):
    receiver = webhook_receivers()
    sub, _ = subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    lock = notify_rt.redis.lock(busy_key(sub.id), timeout=5)
    assert lock.acquire(blocking=False)
    try:
        assert deliveries.attempt(notify_rt, did) == "deferred"
        assert notify_rt.redis.zrange(waiting_key(sub.id), 0, -1) == [did.encode()]
        assert notify_rt.redis.zscore(DUE, did) > time.time() + 60  # only a rescue, no polling
        assert receiver.requests == []
    finally:
        lock.release()
    assert deliveries.attempt(notify_rt, did) == "delivered"


def test_a_burst_to_a_slow_subscriber_waits_in_redis_not_in_workers(notify_rt, webhook_receivers):
    """Five articles for one slow endpoint: one is in flight, four wait, each finish releases the next."""
    slow = webhook_receivers(delay=0.5)
    sub, secret = subscribe(notify_rt, slow.url)
    slow.secrets = [secret]
    ids = [queue(notify_rt, article_event())[0] for _ in range(5)]
    first = threading.Thread(target=deliveries.attempt, args=(notify_rt, ids[0]))
    first.start()
    while not slow.requests:
        time.sleep(0.01)
    assert [deliveries.attempt(notify_rt, did) for did in ids[1:]] == ["deferred"] * 4
    assert notify_rt.redis.zcard(waiting_key(sub.id)) == 4
    first.join()
    now = time.time()
    due_now = [did for did in ids[1:] if notify_rt.redis.zscore(DUE, did) <= now]
    assert due_now == [ids[1]]  # the oldest waiting one, and only it
    for did in ids[1:]:
        assert deliveries.attempt(notify_rt, did) == "delivered"
    assert len(slow.verified_payloads(secret)) == 5
    assert notify_rt.redis.zcard(waiting_key(sub.id)) == 0


def test_redirects_are_not_followed_and_count_as_failures(notify_rt, webhook_receivers):
    elsewhere = webhook_receivers()
    receiver = webhook_receivers(status=307, headers={"Location": elsewhere.url})
    subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    assert deliveries.attempt(notify_rt, did) == "retrying"
    assert record(notify_rt, did)["last_status"] == "307"
    assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_the_ssrf_guard_refuses_at_delivery_and_disables(notify_rt, notify_settings, webhook_receivers):
    receiver = webhook_receivers()
    sub, _ = subscribe(notify_rt, receiver.url)
    guarded = Runtime(dataclasses.replace(notify_settings, webhook_allow_networks=()))
    (did,) = queue(guarded, article_event())
    assert deliveries.attempt(guarded, did) == "failed"
    assert receiver.requests == []
    assert "refused" in record(guarded, did)["last_error"]
    assert SubscriptionStore(notify_rt.redis).get(sub.id).status == "disabled"


def test_rotation_signs_with_old_and_new_secret(notify_rt, webhook_receivers):
    receiver = webhook_receivers()
    sub, old = subscribe(notify_rt, receiver.url)
    store = SubscriptionStore(notify_rt.redis)
    rotated, new = store.rotate_secret(sub.id)
    assert new != old and new.startswith("whsec_")
    assert rotated.rotating_until == pytest.approx(time.time() + 24 * 3600, abs=60)
    receiver.secrets = [old, new]
    deliver(notify_rt, article_event())
    assert len(receiver.verified_payloads(old)) == len(receiver.verified_payloads(new)) == 1
    assert len(receiver.requests[0]["headers"]["webhook-signature"].split(" ")) == 2

    assert len(rotated.signing_keys(now=time.time() + 24 * 3600 + 1)) == 1  # after a day only the new one


def test_a_rotation_after_deliveries_signs_the_next_with_both_secrets(notify_rt, webhook_receivers):
    """A worker keeps each subscriber's parsed secrets by their stored text: a rotation is new text."""
    receiver = webhook_receivers()
    sub, old = subscribe(notify_rt, receiver.url)
    receiver.secrets = [old]
    deliver(notify_rt, article_event())
    assert len(receiver.verified_payloads(old)) == 1
    _, new = SubscriptionStore(notify_rt.redis).rotate_secret(sub.id)
    receiver.secrets = [old, new]
    deliver(notify_rt, article_event(version=2))
    assert len(receiver.requests) == 2
    assert len(receiver.requests[1]["headers"]["webhook-signature"].split(" ")) == 2
    assert len(receiver.verified_payloads(new)) == 1


def test_each_subscription_read_gets_secrets_of_its_own(notify_rt, webhook_receivers):
    sub, _ = subscribe(notify_rt, webhook_receivers().url)
    fields = sub.to_hash()
    first, second = Subscription.from_fields(fields), Subscription.from_fields(fields)
    first.secrets[0]["until"] = 1.0
    first.secrets.append({"secret": "whsec_x", "until": 0})
    assert second.secrets == Subscription.from_fields(fields).secrets and len(second.secrets) == 1
    assert second.secrets[0]["until"] == 0


def test_a_subscription_failing_for_days_is_disabled(notify_rt, webhook_receivers):
    receiver = webhook_receivers(status=500)
    sub, _ = subscribe(notify_rt, receiver.url)
    notify_rt.redis.hset(f"pr:sub:{sub.id}", "failing_since", repr(time.time() - 4 * 24 * 3600))
    deliver(notify_rt, article_event())
    after = SubscriptionStore(notify_rt.redis).get(sub.id)
    assert after.status == "disabled" and "failed since" in after.disabled_reason


def test_success_ends_a_failing_streak(notify_rt, webhook_receivers):
    receiver = webhook_receivers(status=500)
    sub, _ = subscribe(notify_rt, receiver.url)
    deliver(notify_rt, article_event())
    assert SubscriptionStore(notify_rt.redis).get(sub.id).failing_since is not None
    receiver.status = 204
    deliver(notify_rt, article_event())
    assert SubscriptionStore(notify_rt.redis).get(sub.id).failing_since is None


def test_paused_subscriptions_get_nothing_that_was_queued(notify_rt, webhook_receivers):
    receiver = webhook_receivers()
    sub, _ = subscribe(notify_rt, receiver.url)
    (did,) = queue(notify_rt, article_event())
    SubscriptionStore(notify_rt.redis).update(sub.id, status="paused")
    assert deliveries.attempt(notify_rt, did) == "cancelled"
    assert receiver.requests == []


def test_due_deliveries_are_released_once_per_sweep(notify_rt):
    store = DeliveryStore(notify_rt.redis)
    store.defer("d1", time.time() - 1)
    store.defer("d2", time.time() + 100)
    assert store.release_due() == ["d1"]
    assert store.release_due() == []  # pushed ahead in case the queued task is lost
    assert notify_rt.redis.zscore(DUE, "d1") > time.time() + 20


@pytest.mark.parametrize(("soft", "kept"), [(1024, 256), (4096, 512), (65536, 2048)])
def test_a_process_keeps_idle_connections_within_an_eighth_of_its_file_descriptors(soft, kept):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < soft:
        soft, kept = hard, max(256, min(2048, hard // 8))
    code = "from services.notify.transports import webhook; print(webhook.idle_budget(), webhook.client().max_idle)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    ).stdout.split()
    assert out == [str(kept), str(kept)]
