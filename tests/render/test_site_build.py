"""A site build that meets its time budget stops, puts back what it did not reach, and the next continues.

Its own redis-server, so the marks taken are exactly the ones made here; moto's S3 server
over HTTP for the pages.
"""

from __future__ import annotations

import json
import os

import pytest

from services.render import site_build
from services.render.publish import thumbnail
from services.render.site_index import BUILDING, CARDS, DIRTY, PAGE_SIZE, TOPIC_NAMES, SiteIndex, card, listing_for
from services.render.site_pages import archive_key, listing_keys
from services.render.upload import UPLOADS
from shared.ninjs import load_article
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import make_env, start_redis, unique_article

ARTICLES = 1100  # 55 archive pages: more than one batch of site_build.ARCHIVE_BATCH


@pytest.fixture(scope="module")
def big_topic(s3_server):
    """A topic of ARTICLES cards in the site index, and its list marked dirty from the first page."""
    redis = start_redis()
    settings = Settings.from_env({**os.environ, **make_env(redis.url, s3_server.url)})
    ensure_buckets(settings)
    rt = Runtime(settings)
    article = load_article(unique_article())
    base = card(article, f"{settings.site_url}/x/", "x", thumbnail(None))
    listing = listing_for("topic:archive-test", "Archive test")
    pipe = rt.redis.pipeline()
    for i in range(ARTICLES):
        aid = f"a{i:031x}"
        entry = {**base, "id": aid, "headline": f"Story {i}", "url": f"{settings.site_url}/s/{i}/",
                 "path": f"s/{i}", "published": 1_700_000_000 + 60 * i, "updated": 1_700_000_000 + 60 * i}
        pipe.hset(CARDS, aid, json.dumps(entry))
        pipe.zadd(listing.key, {aid: entry["published"]})
    pipe.hset(TOPIC_NAMES, listing.name, listing.title)
    pipe.execute()
    index = SiteIndex(rt.redis)
    index.mark(f"list:{listing.name}", 0)
    index.mark("robots")
    yield rt, listing
    redis.stop()


def written(rt: Runtime, key: str) -> bool:
    return rt.site.etag(key) is not None


def test_a_build_out_of_time_leaves_the_rest_to_the_next_and_no_page_is_drawn_twice(big_topic):
    rt, listing = big_topic
    pages = ARTICLES // PAGE_SIZE
    first_batch = site_build.ARCHIVE_BATCH

    result = site_build.build(rt, lambda ids: None, budget=0)

    assert result["left"] == 2  # the half-drawn list and robots.txt
    assert written(rt, archive_key(listing, first_batch))
    assert not written(rt, archive_key(listing, first_batch + 1))
    assert not written(rt, "robots.txt")
    dirty = {k.decode(): int(v) for k, v in rt.redis.hgetall(DIRTY).items()}
    assert dirty == {f"list:{listing.name}": first_batch * PAGE_SIZE, "robots": 0}
    assert not rt.redis.exists(BUILDING)  # what is left is in the dirty hash, for any next build
    assert rt.redis.hget(site_build.PAGE_COUNTS, listing.name) is None  # recorded once the list is whole

    builds = 1
    while result["left"]:
        result = site_build.build(rt, lambda ids: None, budget=0)
        builds += 1
        assert builds < 10, "every build moves on"

    assert builds == 3  # the rest of the list, then robots.txt
    assert written(rt, archive_key(listing, pages)) and written(rt, "robots.txt")
    assert int(rt.redis.hget(site_build.PAGE_COUNTS, listing.name)) == pages
    assert not rt.redis.exists(DIRTY) and not rt.redis.exists(BUILDING)
    newest = rt.site.get(archive_key(listing, pages)).body.decode()
    assert f"Story {ARTICLES - 1}" in newest
    for number in range(1, pages + 1):
        assert int(rt.redis.hget(UPLOADS, archive_key(listing, number))) == 1, number
    assert int(rt.redis.hget(UPLOADS, listing_keys(listing)["front"])) == 1  # redrawn, same bytes, not re-sent


def test_a_build_within_its_budget_does_everything_at_once(big_topic):
    rt, listing = big_topic
    index = SiteIndex(rt.redis)
    index.mark(f"list:{listing.name}", 0)
    index.mark("robots")
    result = site_build.build(rt, lambda ids: None)
    assert result["left"] == 0 and result["pages"] == 2
    assert not rt.redis.exists(DIRTY) and not rt.redis.exists(BUILDING)
