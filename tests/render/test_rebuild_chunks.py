"""A rebuild chunk that gives up hands its articles to the per-article task once, and leaves nothing behind.

The chunk functions of services/render/rebuild.py called directly (no Celery: `send` records
what would be queued), on a redis-server of their own and moto's S3 server over HTTP.
"""

from __future__ import annotations

import os

import pytest

from pressroom.rebuild import plan
from services.ingest.articles.intake import accept_article
from services.render import rebuild
from services.render.publish import page_path
from services.render.related import RelatedIndex
from shared import keys
from shared.ninjs import article_from_json, load_article
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import make_env, start_redis, unique_article


class NoBroker:
    def send_task(self, *args, **kwargs):
        raise ConnectionError("seeded unqueued: only the rebuild publishes them")


@pytest.fixture
def seeded(s3_server):
    redis = start_redis()
    settings = Settings.from_env({**os.environ, **make_env(redis.url, s3_server.url)})
    ensure_buckets(settings)
    rt = Runtime(settings)
    aids = []
    for i in range(3):
        doc = unique_article(headline=f"Chunk story {i}")
        doc.pop("associations", None)
        article = load_article(doc)
        accept_article(rt, NoBroker(), article, doc)
        aids.append(article.id)
    yield rt, sorted(aids)
    redis.stop()


def test_a_chunk_giving_up_in_phase_two_sends_each_article_once_and_drops_its_documents(seeded):
    rt, aids = seeded
    run = plan(rt, force=False, chunk=len(aids))
    sent: list[tuple[str, int]] = []
    send = lambda aid, version: sent.append((aid, version))  # noqa: E731

    rebuild.index_chunk(rt, run, 0, send)
    cache = rebuild.part(run, "cache:0")
    assert set(k.decode() for k in rt.redis.hkeys(cache)) == {*aids, rebuild.FALLBACK}
    assert sent == []  # nothing held elsewhere, nothing withdrawn: all for the batch

    assert rebuild.give_up_chunk(rt, run, "rendered", 0, send) == len(aids)
    assert sorted(sent) == [(aid, 1) for aid in aids]
    assert not rt.redis.exists(cache)  # the chunk is over: its documents do not wait a day in Redis
    assert rt.redis.sismember(rebuild.part(run, "rendered"), 0)
    assert rebuild.render_chunk(rt, run, 0, send, lambda events: None) == {"skipped": 1}
    assert len(sent) == len(aids)  # a redelivered page task sends nothing again


def test_a_run_never_continued_expires_with_its_records(seeded):
    rt, aids = seeded
    run = plan(rt, force=False, chunk=2)
    rebuild.index_chunk(rt, run, 0, lambda aid, version: None)
    rebuild.record(rt, run, [(aids[-1], "missing")])
    for name in ("meta", "chunks", "done", "indexed"):
        assert 0 < rt.redis.ttl(rebuild.part(run, name)) <= rebuild.RUN_TTL, name
    assert 0 < rt.redis.ttl(keys.rebuild_progress(run)) <= rebuild.RUN_TTL
    assert 0 < rt.redis.ttl(keys.REBUILD_ACTIVE) <= rebuild.RUN_TTL


def test_phase_one_claims_distinct_paths_for_one_slug_and_indexes_every_article(seeded):
    rt, aids = seeded
    run = plan(rt, force=False, chunk=len(aids))
    rebuild.index_chunk(rt, run, 0, lambda aid, version: None)
    cached = {aid: rebuild.json.loads(rebuild.zlib.decompress(rt.redis.hget(rebuild.part(run, "cache:0"), aid)))
              for aid in aids}
    paths = {aid: rec["path"] for aid, rec in cached.items()}
    plain = {page_path(article_from_json(rec["article"])) for rec in cached.values()}
    assert len(plain) == 1, "the seeded articles share a slug and a day"
    (wanted,) = plain
    assert len(set(paths.values())) == len(aids)
    assert sorted(paths.values()) == sorted([wanted] + [f"{wanted}-{aid[1:9]}" for aid in aids if paths[aid] != wanted])
    assert all(rt.redis.get(keys.path_claim(path)).decode() == aid for aid, path in paths.items())
    assert len(RelatedIndex(rt.redis)) == len(aids)


def test_phase_two_publishes_from_the_cache_and_hands_a_record_of_the_release_before_to_the_article_task(seeded):
    rt, aids = seeded
    run = plan(rt, force=False, chunk=len(aids))
    sent: list[tuple[str, int]] = []
    rebuild.index_chunk(rt, run, 0, lambda aid, version: sent.append((aid, version)))
    cache = rebuild.part(run, "cache:0")
    old, *new = aids
    record = rebuild.json.loads(rebuild.zlib.decompress(rt.redis.hget(cache, old)))
    del record["article"]  # the release before kept the stored document instead
    record["doc"] = rt.data.get(record["doc_key"]).body.decode()
    rt.redis.hset(cache, old, rebuild.zlib.compress(rebuild.json.dumps(record).encode()))
    events: list[dict] = []

    outcome = rebuild.render_chunk(rt, run, 0, lambda aid, version: sent.append((aid, version)), events.extend)
    assert (outcome["published"], outcome["fallback"]) == (len(new), 1)
    assert sent == [(old, 1)]
    assert sorted(e["id"] for e in events) == sorted(new) and {e["type"] for e in events} == {"article.published"}
    for aid in new:
        state = rt.articles.get(aid)
        assert state["status"] == "published" and state["rebuild"] == run
        assert b"<html" in rt.site.get(keys.page_key(state["path"])).body
