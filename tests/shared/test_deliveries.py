"""The delivery store's chunk calls against a real Redis: one script call claims or finishes many."""

from __future__ import annotations

import time
import uuid

from shared.deliveries import DUE, DeliveryStore, busy_key, delivery_key
from shared.subscriptions import Subscription, sub_key
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
    records = store.get_many([*first_ids, *second_ids, "dnosuchdelivery"])
    assert records["dnosuchdelivery"] is None
    chunk = {did: records[did] for did in [*first_ids, *second_ids]}

    claims = store.claim_many(chunk, 60)

    by_sub = {}
    for did, claim in claims.items():
        by_sub.setdefault(claim.sid, []).append((did, claim))
    for sid, pair in by_sub.items():  # each subscriber's first delivery is claimed, its second deferred
        (did_a, claimed), (did_b, deferred) = pair
        assert claimed.outcome == "claimed" and claimed.attempt == 1 and deferred.outcome == "deferred"
        assert Subscription.from_hash(claimed.subscription).id == sid
        assert claimed.event == (first if did_a in first_ids else second)
        assert rt.redis.get(busy_key(sid)).decode() == claimed.token
        assert rt.redis.hget(delivery_key(did_a), "state") == b"delivering"
        assert rt.redis.hget(delivery_key(did_b), "state") == b"pending"
    assert set(by_sub) == {one.id, two.id}
    assert len(claims) == 4
    claimed = [claim for claim in claims.values() if claim.outcome == "claimed"]
    assert claimed[0].event is claimed[1].event  # one event body, returned and parsed once for the chunk


def test_a_claim_without_its_event_or_subscription_says_so(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    sub, _ = subscribe(rt, "https://gone.example.test/hook", topics=[topic])
    event = article_event(topics=[topic])
    (did,) = queue(rt, event)
    record = store.get_many([did])[did]
    rt.redis.delete(record["event_key"], sub_key(sub.id))
    (claim,) = store.claim_many({did: record}, 60).values()
    assert claim.outcome == "claimed" and claim.event is None and claim.subscription is None


def test_finishing_a_group_records_each_attempt_and_skips_a_lost_lease(rt):
    store = DeliveryStore(rt.redis)
    topic = _topic()
    subs = [subscribe(rt, f"https://f{i}.example.test/hook", topics=[topic])[0] for i in range(3)]
    ids = queue(rt, article_event(topics=[topic]))
    assert len(ids) == 3
    records = store.get_many(ids)
    claims = store.claim_many(records, 60)
    lost = ids[1]
    rt.redis.hset(delivery_key(lost), "token", "another-run")  # its lease was taken over meanwhile
    retry_at = time.time() + 300
    done = store.finish_many([
        (ids[0], claims[ids[0]], "delivered", {"http_status": 204, "log_entry": {"status": "delivered"}}),
        (lost, claims[lost], "delivered", {"http_status": 204}),
        (ids[2], claims[ids[2]], "pending", {"next_at": retry_at, "http_status": 503, "error": "busy"}),
    ])
    assert done == [True, False, True]
    assert rt.redis.hget(delivery_key(ids[0]), "state") == b"delivered" and rt.redis.zscore(DUE, ids[0]) is None
    assert rt.redis.hget(delivery_key(lost), "state") == b"delivering"
    assert rt.redis.hget(delivery_key(ids[2]), "state") == b"pending"
    assert abs(rt.redis.zscore(DUE, ids[2]) - retry_at) < 1e-3
    for sub in subs:  # every subscriber is free again
        assert rt.redis.get(busy_key(sub.id)) is None
    assert store.log_page(claims[ids[0]].sid, 1, 10)[0] == [{"status": "delivered"}]
