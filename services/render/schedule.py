"""Periodic tasks run by `pressroom scheduler`: re-send the outbox, lift embargoes, keep the site fresh.

All are safe to run concurrently or twice: re-sending an (id, version) only makes the
render task reconcile again, and a site build renders from the index as it is.
"""

from __future__ import annotations

import logging
import math
import time

from celery import shared_task

from services.render.site_index import BUILDING, DIRTY, SiteIndex
from services.render.tasks import queue_site_build
from shared import keys, tasknames

log = logging.getLogger("pressroom.scheduler")

OUTBOX_GRACE_SECONDS = 15
POPULAR_HALF_LIFE = 6 * 3600
SITE_TICK_SECONDS = 30


def _send_render(app, rt, aid: str, version: int) -> None:
    app.send_task(tasknames.RENDER_ARTICLE, args=[aid, version])
    rt.articles.outbox_done(aid, version)


@shared_task(bind=True, name=tasknames.SCHEDULER_SWEEP_OUTBOX, expires=30)
def sweep_outbox(self) -> int:
    """Hand the broker accepted work whose first send failed or never happened."""
    rt = self.rt
    due = rt.articles.outbox_due(time.time() - OUTBOX_GRACE_SECONDS)
    for aid, version in due:
        _send_render(self.app, rt, aid, version)
    if due:
        log.info("outbox sweep re-sent %d articles", len(due))
    return len(due)


@shared_task(bind=True, name=tasknames.SCHEDULER_RELEASE_EMBARGOES, expires=5)
def release_embargoes(self) -> int:
    rt = self.rt
    now = time.time()
    released = 0
    for aid in rt.articles.embargoes_due(now):
        version = rt.articles.release_embargo(aid, now)
        if version is not None:
            _send_render(self.app, rt, aid, version)
            released += 1
    if released:
        log.info("embargo release: %d sent to render", released)
    return released


@shared_task(bind=True, name=tasknames.SCHEDULER_SITE_TICK, expires=60)
def site_tick(self) -> None:
    """Decay page views, refresh lists/*.json and the news sitemap, restart a lost build."""
    rt = self.rt
    factor = math.exp(-math.log(2) * SITE_TICK_SECONDS / POPULAR_HALF_LIFE)
    pipe = rt.redis.pipeline()
    pipe.zunionstore(keys.POPULAR, {keys.POPULAR: factor})
    pipe.zremrangebyscore(keys.POPULAR, "-inf", 0.05)
    pipe.execute()
    index = SiteIndex(rt.redis)
    for field in ("lists", "sitemap-news", "sitemap-index"):
        index.mark(field)
    if rt.redis.exists(DIRTY, BUILDING):
        queue_site_build(self.app, rt)


@shared_task(bind=True, name=tasknames.RENDER_COLLECTION)
def collection_changed(self, slug: str) -> None:
    """Editors reordered a collection: its list page and lists/*.json change."""
    rt = self.rt
    index = SiteIndex(rt.redis)
    index.mark(f"list:collection:{slug}")
    index.mark("lists")
    queue_site_build(self.app, rt)
