"""The article webhook against real Redis and a real S3 server (Flask test client for the HTTP layer)."""

import base64
import json
import os
import time
from datetime import UTC, datetime

import pytest

from shared import keys
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import API_TOKEN, auth_headers, make_env, signed, start_redis, unique_article


def post(client, doc, headers=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(doc).encode()
    return client.post("/v1/articles", data=body, headers=headers if headers is not None else signed(body))


def stored_objects(rt, aid: str) -> list[str]:
    listing = rt.s3.list_objects_v2(Bucket=rt.settings.data_bucket, Prefix=f"articles/{aid}/")
    return [o["Key"] for o in listing.get("Contents", [])]


def assert_nothing_stored(rt, aid: str) -> None:
    assert rt.articles.get(aid) is None
    assert stored_objects(rt, aid) == []
    assert not [m for m in rt.redis.zrange(keys.OUTBOX, 0, -1) if m.decode().startswith(aid)]
    assert not [m for m in rt.redis.lrange("render", 0, -1) if aid.encode() in m]


def test_accepts_a_signed_article_and_stores_it_before_answering(client, rt):
    doc = unique_article(extra_field={"kept": True})
    answer = post(client, doc)
    assert answer.status_code == 202
    body = answer.get_json()
    aid = keys.article_id(doc["uri"])
    assert body["id"] == aid and body["version"] == 1 and body["status"] == "queued"
    assert body["outcome"] == "accepted"
    [key] = stored_objects(rt, aid)
    stored = json.loads(rt.data.get(key).body)
    assert stored["extra_field"] == {"kept": True}
    assert stored["headline"] == doc["headline"]
    assert rt.articles.get(aid)["version"] == "1"


def test_a_uri_beyond_ascii_is_accepted_and_kept_percent_encoded_in_the_metadata(client, rt):
    doc = unique_article()
    doc["uri"] += "/artículo 2 ☃"
    answer = post(client, doc)
    assert answer.status_code == 202, answer.get_json()
    [key] = stored_objects(rt, keys.article_id(doc["uri"]))
    stored = rt.data.get(key)
    assert json.loads(stored.body)["uri"] == doc["uri"]
    assert stored.metadata["uri"] == doc["uri"].replace("í", "%C3%AD").replace(" ", "%20").replace("☃", "%E2%98%83")


def test_bearer_token_is_accepted(client):
    answer = post(client, unique_article(), headers={"Authorization": f"Bearer {API_TOKEN}",
                                                      "Content-Type": "application/json"})
    assert answer.status_code == 202


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Type": "application/json"}, "Sign the request"),
        ({"Content-Type": "application/json", "Authorization": "Bearer wrong-token-000000000"}, "Sign the request"),
        ({"Content-Type": "application/json", "webhook-id": "m1", "webhook-timestamp": "1",
          "webhook-signature": "v1,AAAA"}, "outside the 5-minute tolerance"),
        ({"Content-Type": "application/json", "webhook-id": "m1", "webhook-timestamp": "now",
          "webhook-signature": "v1,,,,"}, "no v1 signature"),
        ({"Content-Type": "application/json", "webhook-id": "m1"}, "missing"),
    ],
)
def test_bad_or_missing_auth_is_401_and_changes_nothing(client, rt, headers, message):
    doc = unique_article()
    if headers.get("webhook-timestamp") == "now":  # when the test runs, not when it was collected
        headers = {**headers, "webhook-timestamp": str(int(time.time()))}
    answer = post(client, doc, headers=headers)
    assert answer.status_code == 401
    assert message in answer.get_json()["message"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_signature_over_another_body_is_401(client, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    answer = client.post("/v1/articles", data=body, headers=signed(body + b"\n"))
    assert answer.status_code == 401
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_unreadable_json_is_400(client):
    raw = b'{"uri": "urn:broken", '
    answer = post(client, None, headers=signed(raw), raw=raw)
    assert answer.status_code == 400
    assert answer.get_json()["message"].startswith("Body is not valid JSON")


def test_not_json_is_415(client, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    answer = client.post("/v1/articles", data=body, headers={**signed(body), "content-type": "text/plain"})
    assert answer.status_code == 415
    assert "text/plain" in answer.get_json()["message"]
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_too_large_is_413(app, client, rt):
    limit = app.config["MAX_CONTENT_LENGTH"]
    doc = unique_article(body_html="<p>" + "x" * limit + "</p>")
    answer = post(client, doc)
    assert answer.status_code == 413
    assert answer.get_json()["code"] == 413
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_invalid_document_is_422_with_field_paths(client, rt):
    doc = unique_article(version="two", urgency="high", language="english!")
    doc["associations"]["featuremedia"]["renditions"]["original"]["width"] = -5
    del doc["headline"]
    answer = post(client, doc)
    assert answer.status_code == 422
    errors = {e["field"]: e["message"] for e in answer.get_json()["errors"]}
    assert set(errors) == {
        "version", "urgency", "language", "associations.featuremedia.renditions.original.width",
    }
    assert "whole number" in errors["version"]
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_missing_headline_is_422(client, rt):
    doc = unique_article()
    del doc["headline"]
    answer = post(client, doc)
    assert answer.status_code == 422
    assert answer.get_json()["errors"] == [{"field": "headline", "message": "A published article needs a headline."}]
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))


def test_a_json_array_is_422(client):
    answer = post(client, None, raw=b"[1, 2]", headers=signed(b"[1, 2]"))
    assert answer.status_code == 422


def test_same_webhook_id_returns_the_first_answer_and_does_no_new_work(client, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    headers = signed(body)
    first = client.post("/v1/articles", data=body, headers=headers)
    aid = first.get_json()["id"]
    timeline = rt.articles.get(aid)["timeline"]
    again = client.post("/v1/articles", data=body, headers=signed(body, msg_id=headers["webhook-id"]))
    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rt.articles.get(aid)["timeline"] == timeline
    assert len(stored_objects(rt, aid)) == 1
    ttl = rt.redis.ttl(keys.idempotency("webhook", headers["webhook-id"]))
    assert ttl > 24 * 3600


def test_an_older_or_equal_version_changes_nothing(client, rt):
    doc = unique_article(version="3")
    assert post(client, doc).status_code == 202
    aid = keys.article_id(doc["uri"])
    for version in ("3", "2"):
        answer = post(client, {**doc, "version": version, "headline": "Changed"})
        assert answer.status_code == 200
        body = answer.get_json()
        assert body["outcome"] == "stale" and body["version"] == 3
        assert "nothing changed" in body["message"]
    assert len(stored_objects(rt, aid)) == 1
    assert rt.articles.get(aid)["version"] == "3"


def test_a_newer_version_replaces_the_stored_one(client, rt):
    doc = unique_article()
    post(client, doc)
    answer = post(client, {**doc, "version": "2"})
    assert answer.status_code == 202 and answer.get_json()["version"] == 2
    assert len(stored_objects(rt, keys.article_id(doc["uri"]))) == 2


def test_future_embargo_is_scheduled_not_queued(client, rt):
    doc = unique_article(embargoed="2099-01-01T00:00:00+00:00")
    answer = post(client, doc)
    assert answer.status_code == 202
    assert answer.get_json()["status"] == "scheduled"
    aid = keys.article_id(doc["uri"])
    assert rt.redis.zscore(keys.EMBARGOES, aid) is not None
    rt.redis.zrem(keys.EMBARGOES, aid)


def test_status_needs_the_token_and_knows_the_article(client, rt):
    doc = unique_article()
    aid = post(client, doc).get_json()["id"]
    assert client.get(f"/v1/articles/{aid}").status_code == 401
    status = client.get(f"/v1/articles/{aid}", headers=auth_headers()).get_json()
    assert status["id"] == aid and status["version"] == 1 and status["uri"] == doc["uri"]
    assert status["timeline"][0]["event"] == "accepted"
    stored = rt.articles.get(aid)["timeline"][0]["at"]  # Unix seconds inside, ISO-8601 UTC in the answer
    expected = datetime.fromtimestamp(stored, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert status["timeline"][0]["at"] == expected
    assert status["embargoed_until"] is None
    assert client.get("/v1/articles/anull", headers=auth_headers()).status_code == 404
    assert client.get("/v1/articles/a" + "0" * 20, headers=auth_headers()).status_code == 404


def test_delete_of_unknown_article_is_404(client):
    answer = client.delete("/v1/articles/a" + "1" * 20, headers=auth_headers())
    assert answer.status_code == 404
    assert "No article" in answer.get_json()["message"]


def test_withdrawing_an_embargoed_article_cancels_the_embargo(client, rt):
    doc = unique_article(embargoed="2099-01-01T00:00:00+00:00")
    aid = post(client, doc).get_json()["id"]
    assert rt.redis.zscore(keys.EMBARGOES, aid) is not None
    assert client.delete(f"/v1/articles/{aid}", headers=auth_headers()).status_code == 202
    assert rt.redis.zscore(keys.EMBARGOES, aid) is None
    assert rt.articles.get(aid)["withdraw"] == "1"


def test_the_render_task_is_queued_with_the_state_and_no_outbox_entry_is_left(s3_server, tmp_path):
    """On a Redis of its own: the shared one has render workers that would take the task at once."""
    from services.ingest.app import create_app
    from shared.runtime import Runtime

    private = start_redis(str(tmp_path))
    try:
        settings = Settings.from_env({**os.environ, **make_env(private.url, s3_server.url)})
        ensure_buckets(settings)
        _queued_with_the_state(create_app(settings).test_client(), Runtime(settings))
    finally:
        private.stop()


def _queued_with_the_state(client, rt) -> None:
    doc = unique_article()
    body = json.dumps(doc).encode()
    answer = client.post("/v1/articles", data=body, headers=signed(body))
    aid = answer.get_json()["id"]
    assert rt.redis.zscore(keys.OUTBOX, f"{aid}:1") is None
    [message] = [json.loads(m) for m in rt.redis.lrange("render", 0, -1) if aid.encode() in m]
    assert message["headers"]["task"] == "render.article"
    assert json.loads(base64.b64decode(message["body"]))[0] == [aid, 1]
    [key] = stored_objects(rt, aid)
    assert rt.data.get(key).body == body  # the posted bytes, as signed


def test_the_answer_is_remembered_with_the_state_and_replayed(client, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    headers = signed(body)
    first = client.post("/v1/articles", data=body, headers=headers)
    stored = json.loads(rt.redis.get(keys.idempotency("webhook", headers["webhook-id"])))
    assert stored == {"status": 202, "body": first.get_json()}


def test_a_stale_answer_and_a_422_are_replayed_too(client, rt):
    doc = unique_article(version="2")
    assert post(client, doc).status_code == 202
    for changed, status in (({"version": "1"}, 200), ({"version": "x"}, 422)):
        body = json.dumps({**doc, **changed}).encode()
        headers = signed(body)
        first = client.post("/v1/articles", data=body, headers=headers)
        assert first.status_code == status
        again = client.post("/v1/articles", data=body, headers=signed(body, msg_id=headers["webhook-id"]))
        assert again.status_code == status and again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json()


def test_the_same_webhook_id_while_the_first_runs_is_409_and_changes_nothing(client, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    headers = signed(body)
    name = keys.idempotency("webhook", headers["webhook-id"])
    rt.redis.set(name, "pending", ex=60)  # the first request holds the claim
    answer = client.post("/v1/articles", data=body, headers=headers)
    assert answer.status_code == 409
    assert_nothing_stored(rt, keys.article_id(doc["uri"]))
    rt.redis.delete(name)


def test_the_idempotency_key_replays_token_requests(client, rt):
    doc = unique_article()
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json",
               "Idempotency-Key": f"key-{doc['uri']}"}
    first = post(client, doc, headers=headers)
    again = post(client, doc, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(rt.articles.get(first.get_json()["id"])["timeline"]) == 1


def test_a_version_stored_between_the_check_and_the_record_changes_nothing(rt):
    """Two deliveries race: the older one passed the stale check first, the newer one recorded first."""
    from services.ingest.articles import intake
    from shared.ninjs import load_article

    doc = unique_article(version="2")
    newer = load_article(doc)
    older = load_article({**doc, "version": "1"})
    assert intake.accept_article(rt, None, newer, doc).decision.outcome == "accepted"
    result = intake.accept_article(rt, None, older, {**doc, "version": "1"}, stored=intake.Stored(None))
    assert result.decision.outcome == "stale" and result.decision.version == 2
    assert rt.articles.get(newer.id)["version"] == "2"
