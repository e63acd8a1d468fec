"""The subscriptions API through the Flask test client, on the notify tests' own Redis database."""

from __future__ import annotations

import re
import time

import pytest

from shared.deliveries import DeliveryStore
from shared.subscriptions import SUBSCRIPTIONS_BY_CREATION, SubscriptionStore
from tests.conftest import auth_headers
from tests.notify.helpers import article_event, queue

H = auth_headers()


def _create(client, **body):
    payload = {"channel": "webhook", "url": "http://127.0.0.1:9/hook", "topics": ["Defence"], **body}
    return client.post("/v1/subscriptions", headers=H, json=payload)


def test_every_management_endpoint_needs_the_token(notify_client):
    calls = [
        ("post", "/v1/subscriptions"), ("get", "/v1/subscriptions"), ("get", "/v1/subscriptions/s00000000000000000000"),
        ("patch", "/v1/subscriptions/s00000000000000000000"), ("delete", "/v1/subscriptions/s00000000000000000000"),
        ("post", "/v1/subscriptions/s00000000000000000000/rotate-secret"),
        ("get", "/v1/subscriptions/s00000000000000000000/deliveries"), ("get", "/v1/deliveries/d1"),
        ("post", "/v1/deliveries/d1/retry"),
    ]
    for method, path in calls:
        answer = getattr(notify_client, method)(path, json={"status": "paused"})
        assert answer.status_code == 401, (method, path)
        assert answer.get_json()["code"] == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_create_returns_the_secret_once(notify_client, notify_rt):
    answer = _create(notify_client, topics=["Defence", " *", "  Arms trade"], description="partner X")
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["secret"].startswith("whsec_") and body["status"] == "active"
    assert body["events"] == ["article.published", "article.updated", "article.withdrawn"]
    assert body["url"] == "http://127.0.0.1:9/hook" and body["description"] == "partner X"
    again = notify_client.get(f"/v1/subscriptions/{body['id']}", headers=H).get_json()
    assert "secret" not in again and again["topics"] == ["Defence", " *", "  Arms trade"]
    assert SubscriptionStore(notify_rt.redis).matching("article.published", ["Sports"]) == [body["id"]]
    assert body["secret"] not in str(notify_rt.redis.keys("pr:subidx:*"))
    assert re.fullmatch(ISO, body["created_at"]) and body["created_at"] == body["updated_at"]


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_list_is_paginated_newest_first_without_secrets(notify_client, notify_rt):
    ids = [_create(notify_client, description=f"n{n}").get_json()["id"] for n in range(5)]
    first = notify_client.get("/v1/subscriptions?per_page=2", headers=H)
    assert first.status_code == 200
    body = first.get_json()
    assert body["total"] == 5 and body["page"] == 1 and body["per_page"] == 2
    assert [i["id"] for i in body["items"]] == [ids[4], ids[3]]
    rest = [notify_client.get(f"/v1/subscriptions?page={p}&per_page=2", headers=H).get_json() for p in (2, 3)]
    assert [i["id"] for page in rest for i in page["items"]] == [ids[2], ids[1], ids[0]]
    assert all("secret" not in i and re.fullmatch(ISO, i["created_at"]) for i in body["items"])
    notify_client.delete(f"/v1/subscriptions/{ids[4]}", headers=H)
    after = notify_client.get("/v1/subscriptions?per_page=2", headers=H).get_json()
    assert after["total"] == 4 and [i["id"] for i in after["items"]] == [ids[3], ids[2]]
    assert notify_client.get("/v1/subscriptions?per_page=0", headers=H).status_code == 422


def test_list_orders_subscriptions_stored_before_the_creation_index(notify_client, notify_rt):
    ids = [_create(notify_client).get_json()["id"] for _ in range(3)]
    notify_rt.redis.delete(SUBSCRIPTIONS_BY_CREATION)  # as stored by a version without the index
    body = notify_client.get("/v1/subscriptions", headers=H).get_json()
    assert body["total"] == 3 and [i["id"] for i in body["items"]] == ids[::-1]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"channel": "sms", "url": "http://127.0.0.1:9/", "topics": ["x"]}, "channel"),
        ({"channel": "webhook", "topics": ["x"]}, "url"),
        ({"channel": "webhook", "url": "http://127.0.0.1:9/", "topics": []}, "topics"),
        ({"channel": "webhook", "url": "http://127.0.0.1:9/"}, "topics"),
        ({"channel": "webhook", "url": "http://127.0.0.1:9/", "topics": ["Defence", "  "]}, "topics.1"),
        ({"channel": "webhook", "url": "http://127.0.0.1:9/", "topics": ["x"], "events": ["article.read"]},
         "events.0"),
        ({"channel": "email", "email": "not-an-address", "topics": ["x"]}, "email"),
        ({"channel": "webhook", "url": "ftp://127.0.0.1/", "topics": ["x"]}, "url"),
        # a control character passes a URL pattern but could not go on a request line: refused now, not at delivery
        ({"channel": "webhook", "url": "http://127.0.0.1:9/a\x01b", "topics": ["x"]}, "url"),
        ({"channel": "webhook", "url": "http://127.0.0.1:9/a\x7fb", "topics": ["x"]}, "url"),
    ],
)
def test_invalid_requests_get_422_with_field_paths(notify_client, body, field):
    answer = notify_client.post("/v1/subscriptions", headers=H, json=body)
    assert answer.status_code == 422
    payload = answer.get_json()
    assert payload["code"] == 422 and payload["status"] == "Unprocessable Entity" and payload["message"]
    assert field in [e["field"] for e in payload["errors"]], payload


def test_unreadable_json_is_400(notify_client):
    answer = notify_client.post("/v1/subscriptions", headers={**H, "Content-Type": "application/json"}, data=b"{nope")
    assert answer.status_code == 400 and answer.get_json()["code"] == 400


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[::ffff:10.0.0.1]/",
     "http://100.64.1.1/", "http://no-such-host.invalid/hook"],
)
def test_the_ssrf_guard_refuses_webhook_urls_at_creation_and_change(notify_client, notify_rt, url):
    answer = _create(notify_client, url=url)
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["field"] == "url"
    assert notify_rt.redis.keys("pr:sub:*") == []
    sid = _create(notify_client).get_json()["id"]
    change = notify_client.patch(f"/v1/subscriptions/{sid}", headers=H, json={"url": url})
    assert change.status_code == 422
    assert notify_client.get(f"/v1/subscriptions/{sid}", headers=H).get_json()["url"] == "http://127.0.0.1:9/hook"


def test_pause_resume_and_change_topics(notify_client, notify_rt):
    sid = _create(notify_client).get_json()["id"]
    store = SubscriptionStore(notify_rt.redis)
    topics = article_event()["topics"]
    paused = notify_client.patch(f"/v1/subscriptions/{sid}", headers=H, json={"status": "paused"})
    assert paused.status_code == 200 and paused.get_json()["status"] == "paused"
    assert store.matching("article.published", topics) == []
    notify_client.patch(f"/v1/subscriptions/{sid}", headers=H, json={"status": "active"})
    assert store.matching("article.published", topics) == [sid]
    changed = notify_client.patch(f"/v1/subscriptions/{sid}", headers=H,
                                  json={"topics": ["Tbilisi"], "events": ["article.withdrawn"]})
    assert changed.get_json()["topics"] == ["Tbilisi"]
    assert store.matching("article.published", topics) == []
    assert store.matching("article.withdrawn", ["TBILISI"]) == [sid]
    assert notify_client.patch(f"/v1/subscriptions/{sid}", headers=H, json={}).status_code == 422
    assert notify_client.patch(f"/v1/subscriptions/{sid}", headers=H,
                               json={"status": "disabled"}).status_code == 422


def test_an_unconfirmed_email_subscription_cannot_be_resumed(notify_client, notify_rt):
    answer = notify_client.post("/v1/subscriptions", headers=H,
                                json={"channel": "email", "email": "r@example.test", "topics": ["Defence"]})
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    sid = answer.get_json()["id"]
    queued = [m for m in notify_rt.redis.lrange("notify", 0, -1) if b"notify.confirm_email" in m]
    assert len(queued) == 1 and sid.encode() in queued[0]
    assert notify_client.patch(f"/v1/subscriptions/{sid}", headers=H, json={"status": "active"}).status_code == 409
    assert notify_client.post(f"/v1/subscriptions/{sid}/rotate-secret", headers=H).status_code == 409


def test_delete_removes_the_subscription_and_its_index_entries(notify_client, notify_rt):
    sid = _create(notify_client).get_json()["id"]
    assert notify_client.delete(f"/v1/subscriptions/{sid}", headers=H).status_code == 204
    assert notify_client.get(f"/v1/subscriptions/{sid}", headers=H).status_code == 404
    assert notify_client.delete(f"/v1/subscriptions/{sid}", headers=H).status_code == 404
    assert SubscriptionStore(notify_rt.redis).matching("article.published", ["Defence"]) == []
    assert notify_rt.redis.keys("pr:subidx:*") == []


def test_rotate_secret_keeps_the_old_one_for_a_day(notify_client, notify_rt):
    created = _create(notify_client).get_json()
    answer = notify_client.post(f"/v1/subscriptions/{created['id']}/rotate-secret", headers=H)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_valid_until"]
    sub = SubscriptionStore(notify_rt.redis).get(created["id"])
    assert [s["secret"] for s in sub.secrets] == [body["secret"], created["secret"]]
    assert abs(sub.rotating_until - (time.time() + 24 * 3600)) < 60
    shown = notify_client.get(f"/v1/subscriptions/{created['id']}", headers=H).get_json()
    assert shown["previous_secret_valid_until"] == body["previous_secret_valid_until"]


def test_delivery_log_is_paginated_newest_first(notify_client, notify_rt):
    sid = _create(notify_client).get_json()["id"]
    store = DeliveryStore(notify_rt.redis)
    for n in range(25):
        store.log(sid, {"at": f"2026-11-27T10:00:{n:02d}+00:00", "delivery_id": f"d{n}", "event": "article.published",
                        "attempt": 1, "status": "delivered", "http_status": 200, "latency_ms": n, "response": "ok"})
    first = notify_client.get(f"/v1/subscriptions/{sid}/deliveries?per_page=10", headers=H).get_json()
    assert first["total"] == 25 and first["page"] == 1 and first["per_page"] == 10
    assert [i["delivery_id"] for i in first["items"]] == [f"d{n}" for n in range(24, 14, -1)]
    assert first["items"][0]["at"] == "2026-11-27T10:00:24.000Z"
    last = notify_client.get(f"/v1/subscriptions/{sid}/deliveries?page=3&per_page=10", headers=H).get_json()
    assert [i["delivery_id"] for i in last["items"]] == [f"d{n}" for n in range(4, -1, -1)]
    bad = notify_client.get(f"/v1/subscriptions/{sid}/deliveries?per_page=1000", headers=H)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "per_page"
    assert notify_client.get("/v1/subscriptions/s00000000000000000000/deliveries", headers=H).status_code == 404


def test_retry_resends_only_failed_deliveries(notify_client, notify_rt, refused_url):
    sid = _create(notify_client, url=refused_url).get_json()["id"]
    (did,) = queue(notify_rt, article_event())
    assert notify_client.post(f"/v1/deliveries/{did}/retry", headers=H).status_code == 409  # still pending
    store = DeliveryStore(notify_rt.redis)
    claim = store.claim(did, 30)
    store.finish(did, claim, "failed", http_status=500, error="gave up")
    shown = notify_client.get(f"/v1/deliveries/{did}", headers=H).get_json()
    assert shown["state"] == "failed" and shown["webhook_id"] == f"msg_{did}" and shown["subscription_id"] == sid
    assert shown["next_attempt_at"] is None
    answer = notify_client.post(f"/v1/deliveries/{did}/retry", headers=H)
    assert answer.status_code == 202
    assert answer.get_json()["state"] == "pending" and answer.get_json()["attempts"] == 0
    assert re.fullmatch(ISO, answer.get_json()["next_attempt_at"])
    queued = [m for m in notify_rt.redis.lrange("notify", 0, -1) if b"notify.deliver" in m]
    assert any(did.encode() in m for m in queued)
    assert notify_client.post("/v1/deliveries/dnope/retry", headers=H).status_code == 404


def test_confirm_and_unsubscribe_links_need_a_valid_token(notify_client):
    missing = notify_client.get("/v1/subscriptions/confirm")
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["field"] == "token"
    assert notify_client.get("/v1/subscriptions/confirm?token=s00000000000000000000.forged-token").status_code == 404
    assert notify_client.post("/v1/unsubscribe?token=s00000000000000000000.forged-token").status_code == 404
    assert notify_client.post("/v1/unsubscribe?token=garbage-garbage").status_code == 404


def test_subscription_resources_are_in_the_openapi_document(notify_client):
    spec = notify_client.get("/openapi.json").get_json()
    for path in ("/v1/subscriptions", "/v1/subscriptions/{sid}", "/v1/subscriptions/{sid}/rotate-secret",
                 "/v1/subscriptions/{sid}/deliveries", "/v1/deliveries/{did}/retry", "/v1/subscriptions/confirm",
                 "/v1/unsubscribe"):
        assert path in spec["paths"], path
    assert {"SubscriptionCreate", "SubscriptionCreated", "DeliveryPage", "SubscriptionPage"} <= set(
        spec["components"]["schemas"])
    listing = spec["paths"]["/v1/subscriptions"]["get"]
    assert listing["security"] == [{"bearer": []}]
    assert {"page", "per_page"} <= {p["name"] for p in listing["parameters"]}
    created = spec["components"]["schemas"]["Subscription"]["properties"]["created_at"]
    assert created["type"] == "string" and created["format"] == "date-time"
    create = spec["paths"]["/v1/subscriptions"]["post"]
    assert create["security"] == [{"bearer": []}] and "201" in create["responses"]
