"""Matching by the topic index and fan-out into batches of deliveries created once."""

import uuid

from services.notify import matching
from shared.deliveries import DeliveryStore, delivery_id
from shared.subscriptions import SubscriptionStore, normalise_topic
from tests.notify.helpers import article_event, queue, subscribe


def test_topics_are_normalised_case_and_accent_insensitively():
    assert normalise_topic("Défense") == normalise_topic("DEFENSE ") == "defense"
    assert normalise_topic("  Arms   Trade ") == "arms trade"
    assert normalise_topic("Straße") == "strasse"  # casefold, not lower
    assert normalise_topic("Tbilisi") != normalise_topic("Tbilissi")


def test_matching_uses_topics_events_and_status(notify_rt):
    store = SubscriptionStore(notify_rt.redis)
    defence, _ = subscribe(notify_rt, "http://127.0.0.1:9/a", topics=["DÉFENCE"])
    georgia, _ = subscribe(notify_rt, "http://127.0.0.1:9/b", topics=["  georgia", "Sports"])
    everything, _ = subscribe(notify_rt, "http://127.0.0.1:9/c", topics=["*"])
    sports, _ = subscribe(notify_rt, "http://127.0.0.1:9/d", topics=["Sports"])
    withdrawn_only, _ = subscribe(notify_rt, "http://127.0.0.1:9/e", topics=["Defence"], events=["article.withdrawn"])
    paused, _ = subscribe(notify_rt, "http://127.0.0.1:9/f", topics=["Defence"])
    store.update(paused.id, status="paused")
    unconfirmed, _ = subscribe(notify_rt, "reader@example.test", topics=["Defence"])

    topics = article_event()["topics"]
    assert set(store.matching("article.published", topics)) == {defence.id, georgia.id, everything.id}
    assert set(store.matching("article.withdrawn", topics)) == {defence.id, georgia.id, everything.id,
                                                                 withdrawn_only.id}
    assert set(store.matching("article.published", ["Sports"])) == {georgia.id, sports.id, everything.id}
    assert unconfirmed.status == "pending"

    store.update(paused.id, status="active")
    store.update(georgia.id, topics=["Armenia"])
    assert set(store.matching("article.published", topics)) == {defence.id, everything.id, paused.id}
    store.delete(defence.id)
    assert defence.id not in store.matching("article.published", topics)


def test_fan_out_batches_and_creates_each_delivery_once(notify_rt):
    sids = [subscribe(notify_rt, f"http://127.0.0.1:9/{n}", topics=["Arms Trade"])[0].id for n in range(1203)]
    event = article_event()
    batches = []
    assert matching.fan_out(notify_rt, event, lambda loaded, ekey, ids: batches.append((ekey, ids))) == 1203
    assert [len(ids) for _, ids in batches] == [500, 500, 203]
    assert sorted(s for _, ids in batches for s in ids) == sorted(sids)

    queued = []
    for ekey, ids in batches:
        queued += matching.create_deliveries(notify_rt, ekey, ids)
    assert len(queued) == 1203
    assert set(queued) == {delivery_id(event["id"], 1, "article.published", s) for s in sids}

    again = queue(notify_rt, event)  # render sends the same event again: nothing new
    assert again == []
    store = DeliveryStore(notify_rt.redis)
    assert store.get(queued[0])["state"] == "pending"
    assert store.load_event(store.get(queued[0])["event_key"])["headline"] == event["headline"]


def test_each_event_type_and_version_is_its_own_delivery(notify_rt):
    sub, _ = subscribe(notify_rt, "http://127.0.0.1:9/x")
    event = article_event()
    first = queue(notify_rt, event)
    updated = queue(notify_rt, {**event, "type": "article.updated", "version": 2})
    withdrawn = queue(notify_rt, {**event, "type": "article.withdrawn", "version": 2})
    assert len({*first, *updated, *withdrawn}) == 3
    assert queue(notify_rt, {**event, "type": "article.updated", "version": 2}) == []


def test_bookkeeping_never_brings_a_deleted_subscription_back(notify_rt):
    store = SubscriptionStore(notify_rt.redis)
    sub, _ = subscribe(notify_rt, "http://127.0.0.1:9/x")
    assert store.record_failure(sub.id, 100.0) == 100.0
    assert store.record_failure(sub.id, 200.0) == 100.0  # the streak goes on
    store.record_success(sub.id)
    assert store.get(sub.id).failing_since is None
    store.delete(sub.id)
    store.record_failure(sub.id, 300.0)
    store.record_success(sub.id)
    assert not notify_rt.redis.exists(f"pr:sub:{sub.id}")


def test_tokens_with_any_characters_are_just_wrong(notify_rt):
    import pytest

    from shared.subscriptions import NotFound

    sub, _ = subscribe(notify_rt, "reader@example.test")
    for token in (f"{sub.id}.é-not-ascii", f"{sub.id}.", "", "é"):
        with pytest.raises(NotFound):
            SubscriptionStore(notify_rt.redis).confirm(token)
        with pytest.raises(NotFound):
            SubscriptionStore(notify_rt.redis).by_unsubscribe_token(token)


def test_the_event_task_creates_each_batch_itself_and_dispatches_it_before_creating_the_next(notify_rt, monkeypatch):
    from types import SimpleNamespace

    from services.notify import tasks
    from shared import tasknames

    monkeypatch.setattr(matching, "BATCH_SIZE", 5)
    topic = "first-" + uuid.uuid4().hex[:8]
    subs = [subscribe(notify_rt, f"http://127.0.0.1:9/first/{n}", topics=[topic])[0] for n in range(12)]
    store = DeliveryStore(notify_rt.redis)
    event = article_event(topics=[topic])
    sent: list[tuple[str, list, int]] = []  # the broker, in the order messages reach it, and records made by then

    def created() -> int:
        return sum(store.get(delivery_id(event["id"], 1, event["type"], sub.id)) is not None for sub in subs)

    app = SimpleNamespace(send_task=lambda name, args, **options: sent.append((name, args, created())))
    task = SimpleNamespace(rt=notify_rt, app=app)

    assert matching.fan_out(notify_rt, event, tasks._create_here(task)) == 12

    # one delivery batch a created batch, each sent before the next batch was created
    assert [(name, len(dids), made) for name, (dids,), made in sent] == [
        (tasknames.NOTIFY_DELIVER_BATCH, 5, 5), (tasknames.NOTIFY_DELIVER_BATCH, 5, 10),
        (tasknames.NOTIFY_DELIVER_BATCH, 2, 12)]
    ids = [did for _, (dids,), _ in sent for did in dids]
    assert sorted(ids) == sorted(delivery_id(event["id"], 1, event["type"], sub.id) for sub in subs)
    assert all(store.get(did)["state"] == "pending" for did in ids)


def test_a_fan_out_cut_off_part_way_and_run_again_creates_and_dispatches_each_delivery_once(notify_rt, monkeypatch):
    """The event task is acked late and retried: when it stops after some batches (here the
    broker refuses the second batch's message), the run again creates only the rest and
    every delivery is queued."""
    from types import SimpleNamespace

    import pytest

    from services.notify import tasks
    from shared import tasknames

    monkeypatch.setattr(matching, "BATCH_SIZE", 5)
    topic = "cut-" + uuid.uuid4().hex[:8]
    subs = [subscribe(notify_rt, f"http://127.0.0.1:9/cut/{n}", topics=[topic])[0] for n in range(12)]
    event = article_event(topics=[topic])
    ids = {delivery_id(event["id"], 1, event["type"], sub.id) for sub in subs}
    store = DeliveryStore(notify_rt.redis)
    sent: list[list[str]] = []

    def broker(name, args, **options):
        if len(sent) == 1 and not hasattr(broker, "refused"):
            broker.refused = True
            raise ConnectionError("broker gone")
        assert name == tasknames.NOTIFY_DELIVER_BATCH
        sent.append(args[0])

    task = SimpleNamespace(rt=notify_rt, app=SimpleNamespace(send_task=broker))
    with pytest.raises(ConnectionError):
        matching.fan_out(notify_rt, event, tasks._create_here(task))
    first = {did: store.get(did) for did in ids if store.get(did)}
    assert len(first) == 10  # two batches made, the second's message refused

    assert matching.fan_out(notify_rt, event, tasks._create_here(task)) == 12
    assert all(store.get(did) == record for did, record in first.items())  # made once, left as they were
    assert sorted(did for dids in sent for did in dids) == sorted(ids)  # each queued once


def test_a_fan_out_stopped_by_its_soft_time_limit_is_retried_not_failed():
    """The worker-wide soft limit (PRESSROOM_TASK_TIME_LIMIT - 5 s) would otherwise stop a long
    fan-out as a failure, acked with the rest of its list never created."""
    from celery.exceptions import SoftTimeLimitExceeded

    from services.notify import tasks

    for task in (tasks.article_event, tasks.article_events):
        assert SoftTimeLimitExceeded in task.autoretry_for
        assert task.soft_time_limit < task.time_limit
