"""The delivery store's chunk calls against a real Redis: one script call claims or finishes many."""

from __future__ import annotations

import time
import uuid

from shared import deliveries
from shared.deliveries import DUE, DeliveryStore, busy_key, delivery_key
from shared.subscriptions import Subscription, SubscriptionStore, sub_key
from tests.notify.helpers import article_event, queue, subscribe


def _topic() -> str:
    """A topic no other test's subscriptions follow."""
    return "t" + uuid.uuid4().hex[:12]


def test_a_chunk_claims_in_order_and_reads_each_event_once(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    (one, _), (two, _) = (subscribe(rt, f"https://{n}.example.test/hook", topics=[topic]) for n in ("one", "two"))
    first, second = article_event(topics=[topic]), article_event(topics=[topic])
    first_ids, second_ids = queue(rt, first), queue(rt, second)

    claims = store.claim_many([*first_ids, *second_ids, "dnosuchdelivery"], 60)

    assert claims.pop("dnosuchdelivery").outcome == "missing"

    by_sub = {}
    for did, claim in claims.items():
        by_sub.setdefault(claim.sid, []).append((did, claim))
    for sid, pair in by_sub.items():  # each subscriber's first delivery is claimed, its second deferred
        (did_a, claimed), (did_b, deferred) = pair
        assert claimed.outcome == "claimed" and claimed.attempt == 1 and deferred.outcome == "deferred"
        assert Subscription.from_hash(claimed.subscription).id == sid
        assert claimed.event == (first if did_a in first_ids else second)
        event = first if did_a in first_ids else second
        assert claimed.record == {"type": event["type"], "article": event["id"], "version": str(event["version"])}
        assert rt.redis.get(busy_key(sid)).decode() == claimed.token
        assert rt.redis.hget(delivery_key(did_a), "state") == b"delivering"
        assert rt.redis.hget(delivery_key(did_b), "state") == b"pending"
    assert set(by_sub) == {one.id, two.id}
    assert len(claims) == 4
    claimed = [claim for claim in claims.values() if claim.outcome == "claimed"]
    assert claimed[0].event is claimed[1].event  # one event body, returned and parsed once for the chunk


def test_a_claim_carries_what_its_channel_needs_of_the_subscription(rt):
    """A webhook's claim reads the fields every delivery uses; an email's also what its message says."""
    store = DeliveryStore(rt.redis)
    topic = _topic()
    hook, _ = subscribe(rt, "https://fields.example.test/hook", topics=[topic])
    pending, _ = subscribe(rt, "reader@example.test", topics=[topic])
    mail = SubscriptionStore(rt.redis).confirm(pending.confirm_token)  # an email subscriber confirms first
    ids = queue(rt, article_event(topics=[topic]))
    claims = {claim.sid: claim for claim in store.claim_many(ids, 60).values()}
    webhook_fields, email_fields = claims[hook.id].subscription, claims[mail.id].subscription
    assert set(webhook_fields) == set(deliveries.SUB_FIELDS)
    assert set(email_fields) == set(deliveries.SUB_FIELDS) | set(deliveries.EMAIL_FIELDS)
    sent_to = Subscription.from_fields(webhook_fields)
    assert sent_to.target == hook.target and sent_to.signing_keys() == hook.signing_keys()
    assert sent_to.topics == [] and sent_to.failing_since is None  # not read for a webhook
    mailed = Subscription.from_fields(email_fields)
    assert mailed.topics == [topic] and mailed.target == mail.target
    assert mailed.unsubscribe_token == mail.unsubscribe_token


def test_a_claim_without_its_event_or_subscription_says_so(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    sub, _ = subscribe(rt, "https://gone.example.test/hook", topics=[topic])
    event = article_event(topics=[topic])
    (did,) = queue(rt, event)
    record = store.get(did)
    rt.redis.delete(record["event_key"], sub_key(sub.id))
    claim = store.claim(did, 60)
    assert claim.outcome == "claimed" and claim.event is None and claim.subscription is None


def test_finishing_a_group_records_each_attempt_and_skips_a_lost_lease(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    for i in range(3):
        subscribe(rt, f"https://f{i}.example.test/hook", topics=[topic])
    ids = queue(rt, article_event(topics=[topic]))
    assert len(ids) == 3
    claims = store.claim_many(ids, 60)
    lost = ids[1]
    # its lease ran out and another run claimed it: a new busy lock and a new token on the record
    rt.redis.set(busy_key(claims[lost].sid), "another-run")
    rt.redis.hset(delivery_key(lost), "token", "another-run")
    retry_at = time.time() + 300
    done = store.finish_many([
        (ids[0], claims[ids[0]], "delivered", {"http_status": 204, "log_entry": '{"status":"delivered"}'}),
        (lost, claims[lost], "delivered", {"http_status": 204}),
        (ids[2], claims[ids[2]], "pending", {"next_at": retry_at, "http_status": 503, "error": "busy"}),
    ])
    assert done == [True, False, True]
    assert rt.redis.hget(delivery_key(ids[0]), "state") == b"delivered" and rt.redis.zscore(DUE, ids[0]) is None
    assert rt.redis.hget(delivery_key(lost), "state") == b"delivering"
    assert rt.redis.hget(delivery_key(ids[2]), "state") == b"pending"
    assert abs(rt.redis.zscore(DUE, ids[2]) - retry_at) < 1e-3
    assert rt.redis.get(busy_key(claims[lost].sid)) == b"another-run"  # the other run's lock is left alone
    for sid in (claims[ids[0]].sid, claims[ids[2]].sid):  # the others are free again
        assert rt.redis.get(busy_key(sid)) is None
    assert store.log_page(claims[ids[0]].sid, 1, 10)[0] == [{"status": "delivered"}]


def test_a_finish_after_its_lock_lapsed_still_records_an_attempt_nobody_took_over(rt):
    """The record's token is read only when the subscriber's lock no longer holds the attempt's."""
    store = DeliveryStore(rt.redis)
    topic = _topic()
    subscribe(rt, "https://lapsed.example.test/hook", topics=[topic])
    (did,) = queue(rt, article_event(topics=[topic]))
    claim = store.claim(did, 60)
    rt.redis.delete(busy_key(claim.sid))  # the lock expired; no other run has claimed the delivery
    assert store.finish(did, claim, "delivered", http_status=200) is True
    assert rt.redis.hget(delivery_key(did), "state") == b"delivered"


def test_a_subscribers_log_keeps_its_newest_entries_up_to_its_length(rt, monkeypatch):
    monkeypatch.setattr(deliveries, "LOG_LENGTH", 3)
    store = DeliveryStore(rt.redis)
    topic = _topic()
    sub, _ = subscribe(rt, "https://log.example.test/hook", topics=[topic])
    for n in range(5):
        (did,) = queue(rt, article_event(topics=[topic]))
        claim = store.claim(did, 60)
        assert store.finish(did, claim, "delivered", log_entry=f'{{"n":{n}}}')
    assert store.log_page(sub.id, 1, 10) == ([{"n": 4}, {"n": 3}, {"n": 2}], 3)


def test_creating_and_releasing_more_than_one_due_set_call_holds_sets_every_score(notify_rt):
    store = DeliveryStore(notify_rt.redis)  # its own emptied database: no scheduler releases these meanwhile
    event = {"id": "a" + uuid.uuid4().hex[:12], "version": 1, "type": "article.published"}
    ekey = store.save_event(event)

    made = store.create_many(ekey, event, [f"s{n}" for n in range(1200)], now=1000.0)

    ids = [did for did, state in made if state == "created"]
    assert len(ids) == 1200 and all(notify_rt.redis.zscore(DUE, did) == 1000.0 for did in ids)
    released = store.release_due(now=1000.0, limit=1100, requeue_after=50)
    assert len(released) == 1100 and set(released) <= set(ids)
    assert sorted(notify_rt.redis.zscore(DUE, did) for did in ids) == [1000.0] * 100 + [1050.0] * 1100


def test_each_claim_of_a_chunk_gets_its_own_token(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    for n in range(20):
        subscribe(rt, f"https://t{n}.example.test/hook", topics=[topic])
    tokens = []
    for _ in range(2):  # two chunks, each finished before the next subscriber's delivery is claimed
        claims = store.claim_many(queue(rt, article_event(topics=[topic])), 60)
        assert [c.outcome for c in claims.values()] == ["claimed"] * 20
        assert all(store.finish_many([(did, c, "delivered", {}) for did, c in claims.items()]))
        tokens += [c.token for c in claims.values()]
    assert len(set(tokens)) == 40


def test_a_record_without_its_subscriber_is_missing_and_spoils_no_chunk(rt):
    """A record the finish re-made after it expired mid-attempt holds no subscriber id: it is
    dropped from the due set, and the chunk's other deliveries are claimed as usual."""
    store = DeliveryStore(rt.redis)
    topic = _topic()
    for n in range(2):
        subscribe(rt, f"https://h{n}.example.test/hook", topics=[topic])
    husk, whole = queue(rt, article_event(topics=[topic]))
    rt.redis.hdel(delivery_key(husk), "sub")

    claims = store.claim_many([husk, whole], 60)

    assert claims[husk].outcome == "missing" and rt.redis.zscore(DUE, husk) is None
    assert claims[whole].outcome == "claimed"
