"""A site build queued under its old name (`render.site`, before builds had their own queue) still runs.

Its own redis-server, so the message waiting in the `render` queue and the marks are only
this test's, and no scheduler whose site tick could queue a build in the forwarder's place;
moto's S3 server over HTTP; a real worker for the render and site pools, started after the
old message was queued, as an upgraded worker finds it.
"""

from __future__ import annotations

import json
import os

from services.render.site_build import BUILD_QUEUED
from services.render.site_index import BUILDING, DIRTY, SiteIndex
from shared import tasknames
from shared.celery_app import create_celery
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import make_env, start_process, start_redis, stop_process, wait_for


def test_an_old_render_site_message_is_forwarded_to_the_site_pool_and_builds(s3_server):
    redis = start_redis()
    worker = None
    try:
        env = make_env(redis.url, s3_server.url)
        settings = Settings.from_env({**os.environ, **env})
        ensure_buckets(settings)
        rt = Runtime(settings)
        SiteIndex(rt.redis).mark("robots")
        create_celery(settings).send_task(tasknames.RENDER_SITE)
        waiting = [json.loads(m)["headers"]["task"] for m in rt.redis.lrange("render", 0, -1)]
        assert waiting == [tasknames.RENDER_SITE]  # where a worker of the old version left it
        assert not rt.redis.exists(BUILD_QUEUED) and rt.site.etag("robots.txt") is None

        worker = start_process(["worker", "render", "site", "--concurrency", "1"], env, "site-queue-worker")

        wait_for(lambda: rt.site.etag("robots.txt") is not None, timeout=90, message="robots.txt from the build")
        assert b"Sitemap:" in rt.site.get("robots.txt").body
        wait_for(lambda: not rt.redis.exists(DIRTY, BUILDING), timeout=30, message="the marks to be done")
        assert rt.redis.llen("render") == 0 and rt.redis.llen("site") == 0
    finally:
        if worker is not None:
            stop_process(worker)
        redis.stop()
