"""Page views and collections on the ingest API (real Redis)."""

import json

from shared import keys
from tests.conftest import auth_headers, signed, unique_article


def publish_state(rt, aid: str) -> None:
    rt.redis.hset(keys.article_state(aid), mapping={"status": "published", "version": 1})


def test_pageview_counts_a_published_article_without_cookies(client, rt):
    aid = keys.article_id(f"urn:pv:{unique_article()['uri']}")
    publish_state(rt, aid)
    answer = client.post("/v1/events/pageview", data=json.dumps({"id": aid}), content_type="text/plain")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in answer.headers
    assert rt.redis.zscore(keys.POPULAR, aid) == 1.0


def test_pageview_of_an_unknown_article_counts_nothing(client, rt):
    aid = "a" + "9" * 20
    assert client.post("/v1/events/pageview", json={"id": aid}).status_code == 204
    assert rt.redis.zscore(keys.POPULAR, aid) is None


def test_pageview_with_a_bad_id_is_422(client):
    answer = client.post("/v1/events/pageview", json={"id": "../etc"})
    assert answer.status_code == 422
    assert answer.get_json()["errors"] == [{"field": "id", "message": "Not an article id."}]
    assert client.post("/v1/events/pageview", data=b"not json").status_code == 422


def test_pageviews_are_rate_limited_per_client(client, rt):
    aid = "a" + "8" * 20
    addr = {"REMOTE_ADDR": "127.0.0.99"}
    codes = [client.post("/v1/events/pageview", json={"id": aid}, environ_base=addr).status_code for _ in range(61)]
    assert codes[:60] == [204] * 60 and codes[60] == 429


def test_collections_need_the_token_and_keep_the_order(client, rt):
    docs = [unique_article() for _ in range(2)]
    for doc in docs:
        body = json.dumps(doc).encode()
        assert client.post("/v1/articles", data=body, headers=signed(body)).status_code == 202
    ids = [keys.article_id(d["uri"]) for d in docs]
    items = [docs[1]["uri"], ids[0]]
    assert client.put("/v1/collections/editors-choice", json={"items": items}).status_code == 401
    answer = client.put("/v1/collections/Editor's choice", json={"items": items}, headers=auth_headers())
    assert answer.status_code == 200
    assert answer.get_json() == {"name": "editors-choice", "items": [ids[1], ids[0]]}
    got = client.get("/v1/collections/editors-choice", headers=auth_headers()).get_json()
    assert got["items"] == [ids[1], ids[0]]


def test_collections_refuse_unknown_articles(client):
    answer = client.put("/v1/collections/editors-choice", json={"items": ["urn:nope"]}, headers=auth_headers())
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["field"] == "items"
    bad = client.put("/v1/collections/editors-choice", json={"items": "x"}, headers=auth_headers())
    assert bad.status_code == 422
