"""The scheduler's periodic tasks (`pressroom scheduler`: Celery beat and the `scheduler` pool).

The scheduler decides when, the pools do the work: it re-sends the outbox and lifts
embargoes itself (both are a few Redis reads and a render task per article, through
`shared/` contracts only), and for the site and notifications it sends their pool's task
(`site.refresh`, `notify.dispatch`). All are safe to run concurrently or twice:
re-sending an (id, version) only makes the render task reconcile again.
"""

from __future__ import annotations

import logging
import math
import time

from celery import shared_task

from shared import keys, tasknames

log = logging.getLogger("pressroom.scheduler")

OUTBOX_GRACE_SECONDS = 15
POPULAR_HALF_LIFE = 6 * 3600
SITE_TICK_SECONDS = 30  # how often beat sends site_tick (shared.celery_app's beat_schedule)


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
    """Decay page views (Popular halves every six hours), then have the site pool refresh what ages."""
    factor = math.exp(-math.log(2) * SITE_TICK_SECONDS / POPULAR_HALF_LIFE)
    pipe = self.rt.redis.pipeline()
    pipe.zunionstore(keys.POPULAR, {keys.POPULAR: factor})
    pipe.zremrangebyscore(keys.POPULAR, "-inf", 0.05)
    pipe.execute()
    self.app.send_task(tasknames.SITE_REFRESH, expires=60)


@shared_task(bind=True, name=tasknames.SCHEDULER_NOTIFY_RETRIES, expires=5)
def notify_retries(self) -> None:
    """Have the notify pool queue the deliveries that are due (new, retries, lapsed leases)."""
    self.app.send_task(tasknames.NOTIFY_DISPATCH, expires=5)
