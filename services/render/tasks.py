"""Render-pool tasks: thin wrappers that take ids, reload state and call `publish`."""

from __future__ import annotations

import logging

from celery import shared_task
from redis.exceptions import RedisError

from services.render import publish
from shared import tasknames
from shared.runtime import runtime_for
from shared.storage import StorageUnavailable

log = logging.getLogger("pressroom.render")

TRANSIENT = (StorageUnavailable, RedisError, publish.ArticleBusy, ConnectionError, TimeoutError)


def notify(app, event: dict) -> None:
    app.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})


@shared_task(
    bind=True,
    name=tasknames.RENDER_ARTICLE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=30,
)
def render_article(self, article_id: str, version: int) -> str:
    """Publish, update or withdraw one article. Safe to run any number of times."""
    rt = runtime_for(self.app.pressroom_settings)
    try:
        outcome = publish.reconcile(rt, article_id, int(version), emit=lambda event: notify(self.app, event))
    except publish.PermanentFailure as exc:
        publish.mark_failed(rt, article_id, int(version), str(exc))
        log.error("render %s v%s failed: %s", article_id, version, exc)
        return "failed"
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            publish.mark_failed(rt, article_id, int(version), f"gave up after retries: {exc}")
        elif self.request.retries == 0:
            rt.articles.log(article_id, "retrying", int(version), reason=str(exc)[:300])
        raise
    return outcome.action
