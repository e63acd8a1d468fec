"""Render-pool tasks: thin wrappers that take ids, reload state and call the domain modules."""

from __future__ import annotations

import logging

from celery import Celery, shared_task
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from services.render import publish, site_build
from shared import keys, tasknames
from shared.runtime import runtime_for
from shared.storage import StorageUnavailable

log = logging.getLogger("pressroom.render")

# OperationalError: the broker refused a follow-up task (notify event, site build)
TRANSIENT = (StorageUnavailable, RedisError, OperationalError, site_build.BuildBusy, ConnectionError, TimeoutError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 30,
}
BUILD_DEBOUNCE_SECONDS = 1
BUSY_RETRY_SECONDS = 3
BUSY_MAX_RETRIES = 400  # 20 minutes of someone else holding the article


class CeleryEffects:
    """Effects of a reconcile, sent through the broker."""

    def __init__(self, app: Celery, rt) -> None:
        self.app, self.rt = app, rt

    def notify(self, event: dict) -> None:
        self.app.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})

    def build_site(self) -> None:
        queue_site_build(self.app, self.rt)


def queue_site_build(app: Celery, rt) -> bool:
    return site_build.request_build(
        rt, lambda: app.send_task(tasknames.RENDER_SITE, countdown=BUILD_DEBOUNCE_SECONDS)
    )


@shared_task(bind=True, name=tasknames.RENDER_ARTICLE, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True, **RETRY)
def render_article(self, article_id: str, version: int, force: bool = False, rebuild: str = "") -> str:
    """Publish, update or withdraw one article. Safe to run any number of times.

    `rebuild` names a `pressroom rebuild` run, whose progress counter this task advances.
    """
    rt = runtime_for(self.app.pressroom_settings)
    try:
        outcome = publish.reconcile(rt, article_id, int(version), CeleryEffects(self.app, rt), force=force)
    except publish.PermanentFailure as exc:
        publish.mark_failed(rt, article_id, int(version), str(exc))
        log.error("render %s v%s failed: %s", article_id, version, exc)
        if rebuild:
            rt.redis.hincrby(keys.rebuild_progress(rebuild), "failed", 1)
        return "failed"
    except publish.ArticleBusy as exc:
        # another run holds the article's lease (renewed while alive): look again soon
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS, max_retries=BUSY_MAX_RETRIES) from None
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            publish.mark_failed(rt, article_id, int(version), f"gave up after retries: {exc}")
        elif self.request.retries == 0:
            rt.articles.log(article_id, "retrying", int(version), reason=str(exc)[:300])
        raise
    except Exception as exc:  # a bug, not the article: say so where operators look, then fail loudly
        publish.mark_failed(rt, article_id, int(version), f"unexpected {type(exc).__name__}: {str(exc)[:300]}")
        raise
    if rebuild:
        rt.redis.hincrby(keys.rebuild_progress(rebuild), outcome.action, 1)
    return outcome.action


@shared_task(bind=True, name=tasknames.RENDER_SITE, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True, **RETRY)
def render_site(self) -> dict:
    """Render the shared pages marked dirty since the last build."""
    rt = runtime_for(self.app.pressroom_settings)

    def rerender(article_ids: list[str]) -> None:
        for aid in article_ids:
            version = rt.redis.hget(keys.article_state(aid), "version")
            if version is not None:
                self.app.send_task(tasknames.RENDER_ARTICLE, args=[aid, int(version)], kwargs={"force": True})

    return site_build.build(rt, rerender)
