"""Periodic tasks run by `pressroom scheduler`: re-send the outbox, lift embargoes.

Both are safe to run concurrently or twice: re-sending an (id, version) only makes the
render task reconcile again.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task

from shared import tasknames
from shared.runtime import runtime_for

log = logging.getLogger("pressroom.scheduler")

OUTBOX_GRACE_SECONDS = 15


def _send_render(app, rt, aid: str, version: int) -> None:
    app.send_task(tasknames.RENDER_ARTICLE, args=[aid, version])
    rt.articles.outbox_done(aid, version)


@shared_task(bind=True, name=tasknames.SCHEDULER_SWEEP_OUTBOX, ignore_result=True, expires=30)
def sweep_outbox(self) -> int:
    """Hand the broker accepted work whose first send failed or never happened."""
    rt = runtime_for(self.app.pressroom_settings)
    due = rt.articles.outbox_due(time.time() - OUTBOX_GRACE_SECONDS)
    for aid, version in due:
        _send_render(self.app, rt, aid, version)
    if due:
        log.info("outbox sweep re-sent %d articles", len(due))
    return len(due)


@shared_task(bind=True, name=tasknames.SCHEDULER_RELEASE_EMBARGOES, ignore_result=True, expires=5)
def release_embargoes(self) -> int:
    rt = runtime_for(self.app.pressroom_settings)
    now = time.time()
    released = 0
    for aid in rt.articles.embargoes_due(now):
        version = rt.articles.release_embargo(aid, now)
        if version is not None:
            _send_render(self.app, rt, aid, version)
            released += 1
    return released
