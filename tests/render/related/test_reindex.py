"""`pressroom reindex` rebuilds the index from the article store: real Redis, real S3 server, a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from services.render.related import RelatedDoc, RelatedIndex
from shared import keys
from shared.settings import Settings
from shared.storage import S3Storage, ensure_buckets, s3_client
from tests.conftest import ROOT, make_env, start_redis
from tests.render.related.conftest import CORPUS


@pytest.fixture
def private_stack(s3_server, tmp_path):
    """A Redis of its own (reindex scans every article state) and fresh buckets on the shared S3 server."""
    server = start_redis(str(tmp_path))
    env = make_env(server.url, s3_server.url)
    settings = Settings.from_env({**os.environ, **env})
    ensure_buckets(settings)
    client = redis.Redis.from_url(server.url)
    yield env, client, S3Storage(s3_client(settings), settings.data_bucket)
    client.close()
    server.stop()


def store(client: redis.Redis, data: S3Storage, desk: str, i: int, status: str = "published") -> str:
    title, body = CORPUS[desk][i]
    uri = f"urn:test:related:{desk}:{i}"
    aid = keys.article_id(uri)
    doc = {"uri": uri, "version": "1", "headline": title, "body_html": f"<p>{body}</p>", "language": "en",
           "firstcreated": f"2026-01-0{i + 1}T10:00:00Z", "subject": [{"name": desk.title()}]}
    doc_key = keys.document_key(aid, 1, f"{i:016d}")
    data.put(doc_key, json.dumps(doc).encode(), "application/json")
    client.hset(keys.article_state(aid), mapping={"status": status, "version": "1", "doc_key": doc_key,
                                                  "published_doc_key": doc_key if status == "published" else ""})
    client.rpush(keys.article_timeline(aid), "{}")
    return aid


def reindex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pressroom.cli", "reindex", *args],
        env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT, timeout=240,
    )


def test_reindex_indexes_published_articles_only_and_follows_withdrawals(private_stack):
    env, client, data = private_stack
    ids = {(desk, i): store(client, data, desk, i) for desk in ("football", "space") for i in range(4)}
    draft = store(client, data, "rates", 0, status="queued")
    withdrawn = store(client, data, "rates", 1, status="withdrawn")

    done = reindex(env)
    assert done.returncode == 0, done.stderr
    assert "8 of 8 published articles indexed" in done.stdout
    assert "reindex [" in done.stderr and "8/8" in done.stderr
    index = RelatedIndex(client)
    assert len(index) == 8
    football = {ids[("football", i)] for i in range(4)}
    listed = index.query(ids[("football", 0)], k=3)
    assert set(listed) == football - {ids[("football", 0)]}
    for aid in ids.values():
        assert not {draft, withdrawn} & set(index.query(aid, k=20))

    client.hset(keys.article_state(ids[("football", 1)]), "status", "withdrawn")
    done = reindex(env)
    assert done.returncode == 0, done.stderr
    assert "1 no longer published removed" in done.stdout
    assert len(index) == 7
    assert ids[("football", 1)] not in index.query(ids[("football", 0)], k=20)


def test_fresh_reindex_drops_what_the_store_does_not_hold(private_stack):
    env, client, data = private_stack
    kept = store(client, data, "space", 0)
    store(client, data, "space", 1)
    index = RelatedIndex(client)
    index.index(RelatedDoc("a" + "0" * 20, "en", "Orphan", "An article the store never held.", (), 0.0))
    done = reindex(env, "--fresh")
    assert done.returncode == 0, done.stderr
    assert len(index) == 2
    assert index.query(kept) != []
    assert index.query("a" + "0" * 20) == []
