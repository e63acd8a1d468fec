"""Render- and site-pool tasks: thin wrappers that take ids, reload state and call the domain modules."""

from __future__ import annotations

import logging

from celery import Celery, shared_task
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from services.render import publish, site_build
from services.render import rebuild as rebuild_module
from services.render.site_index import SiteIndex
from shared import keys, tasknames
from shared.storage import StorageUnavailable

log = logging.getLogger("pressroom.render")

# OperationalError: the broker refused a follow-up task (notify event, site build)
TRANSIENT = (StorageUnavailable, RedisError, OperationalError, site_build.BuildBusy, ConnectionError, TimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "max_retries": 30}  # backoff: shared.tasks.PressroomTask
BUILD_DEBOUNCE_SECONDS = 1
BUSY_RETRY_SECONDS = 3
BUSY_MAX_RETRIES = 400  # 20 minutes of someone else holding the article
BUILD_BUSY_RETRY_SECONDS = 2
BUILD_BUSY_MAX_RETRIES = 1800  # an hour of builds queued behind a long one


class CeleryEffects:
    """Effects of a reconcile, sent through the broker."""

    def __init__(self, app: Celery, rt) -> None:
        self.app, self.rt = app, rt

    def notify(self, event: dict) -> None:
        self.app.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})

    def notify_many(self, events: list[dict]) -> None:
        """A batch of events in one message: a rebuild's thousands cost the broker a message per batch."""
        self.app.send_task(tasknames.NOTIFY_ARTICLE_EVENTS, kwargs={"events": events})

    def build_site(self) -> None:
        queue_site_build(self.app, self.rt)

    def refresh_related(self, aid: str) -> None:
        self.app.send_task(tasknames.RENDER_RELATED_FANOUT, args=[aid], priority=tasknames.BACKGROUND)


def queue_site_build(app: Celery, rt) -> bool:
    return site_build.request_build(
        rt, lambda: app.send_task(tasknames.SITE_BUILD, countdown=BUILD_DEBOUNCE_SECONDS)
    )


@shared_task(bind=True, name=tasknames.RENDER_ARTICLE, **RETRY)
def render_article(self, article_id: str, version: int, force: bool = False, rebuild: str = "") -> str:
    """Publish, update or withdraw one article. Safe to run any number of times.

    `rebuild` names a `pressroom rebuild` run, whose progress counter this task advances.
    """
    rt = self.rt
    try:
        outcome = publish.reconcile(rt, article_id, int(version), CeleryEffects(self.app, rt), force=force)
    except publish.PermanentFailure as exc:
        publish.mark_failed(rt, article_id, int(version), str(exc))
        log.error("render %s v%s failed: %s", article_id, version, exc)
        if rebuild:
            rebuild_module.record(rt, rebuild, [(article_id, "failed")])
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
        rebuild_module.record(rt, rebuild, [(article_id, outcome.action)])
    return outcome.action


@shared_task(bind=True, name=tasknames.RENDER_RELATED_FANOUT, **RETRY)
def related_fanout(self, article_id: str) -> int:
    """A publication's fan-out (`publish.refresh_related_lists`), after its page is live."""
    rt = self.rt
    affected = publish.refresh_related_lists(rt, article_id)
    if affected:
        queue_site_build(self.app, rt)
    return len(affected)


def _send_article(app: Celery, run: str):
    def send(aid: str, version: int) -> None:
        app.send_task(tasknames.RENDER_ARTICLE, args=[aid, int(version)], kwargs={"force": True, "rebuild": run})

    return send


def _chunk_task(task, phase: str, run: str, number: int, work) -> dict:
    """Run one rebuild chunk; when it cannot finish, its articles go to the per-article task."""
    rt = task.rt
    send = _send_article(task.app, run)
    try:
        return work(rt, send)
    except TRANSIENT:
        if task.request.retries < task.max_retries:
            raise
        return {"gave_up": rebuild_module.give_up_chunk(rt, run, phase, int(number), send)}
    except Exception:
        log.exception("rebuild %s: chunk %s failed in phase %s", run, number, phase)
        return {"gave_up": rebuild_module.give_up_chunk(rt, run, phase, int(number), send)}


@shared_task(bind=True, name=tasknames.RENDER_REBUILD_INDEX, **RETRY)
def rebuild_index(self, run: str, number: int) -> dict:
    """Phase 1 of `pressroom rebuild` for one chunk of articles (services/render/rebuild.py)."""
    return _chunk_task(self, "indexed", run, number,
                       lambda rt, send: rebuild_module.index_chunk(rt, run, int(number), send))


@shared_task(bind=True, name=tasknames.RENDER_REBUILD_PAGES, **RETRY)
def rebuild_pages(self, run: str, number: int) -> dict:
    """Phase 2 of `pressroom rebuild` for one chunk: each page rendered once with its final lists."""

    def work(rt, send):
        effects = CeleryEffects(self.app, rt)
        return rebuild_module.render_chunk(rt, run, int(number), send, effects.notify_many)

    return _chunk_task(self, "rendered", run, number, work)


@shared_task(bind=True, name=tasknames.SITE_BUILD, **RETRY)
def build_site(self, rebuild: str = "") -> dict:
    """Render the shared pages marked dirty since the last build (the `site` pool).

    `rebuild` names a `pressroom rebuild` run that waits for this build to finish. A build
    that stopped at its time budget sends the next one: a rebuild's straight away with the
    run's name (whatever build is queued already, the run is done once one of its own
    finds nothing left), anyone else's through the coalescing `queue_site_build`.
    """
    rt = self.rt

    def rerender(article_ids: list[str]) -> None:
        for aid in article_ids:
            version = rt.redis.hget(keys.article_state(aid), "version")
            if version is not None:
                self.app.send_task(tasknames.RENDER_ARTICLE, args=[aid, int(version)], kwargs={"force": True},
                                   priority=tasknames.BACKGROUND)

    try:
        result = site_build.build(rt, rerender)
    except site_build.BuildBusy as exc:
        raise self.retry(exc=exc, countdown=BUILD_BUSY_RETRY_SECONDS, max_retries=BUILD_BUSY_MAX_RETRIES) from None
    if result["left"]:
        if rebuild:
            self.app.send_task(tasknames.SITE_BUILD, kwargs={"rebuild": rebuild})
        else:
            queue_site_build(self.app, rt)
    if rebuild:
        run_meta = keys.rebuild_run(rebuild, "meta")
        pipe = rt.redis.pipeline()
        pipe.hincrbyfloat(run_meta, "site_cpu_s", result.get("cpu_s", 0))
        pipe.hincrby(run_meta, "site_uploaded", result["uploaded"])
        if not result["left"]:
            pipe.hset(run_meta, "site_done", 1)
        pipe.execute()
    return result


@shared_task(bind=True, name=tasknames.SITE_REFRESH, expires=60)
def refresh_site(self) -> None:
    """The scheduler's site tick (every 30 s): lists/*.json (Popular decays), the news sitemap
    (it holds two days), the sitemap index; and a build if marks wait but none is queued."""
    rt = self.rt
    index = SiteIndex(rt.redis)
    for field in ("lists", "sitemap-news", "sitemap-index"):
        index.mark(field)
    if rt.redis.exists(keys.SITE_DIRTY, keys.SITE_BUILDING):
        queue_site_build(self.app, rt)


@shared_task(bind=True, name=tasknames.RENDER_COLLECTION)
def collection_changed(self, slug: str) -> None:
    """Editors reordered a collection: its list page and lists/*.json change."""
    rt = self.rt
    index = SiteIndex(rt.redis)
    index.mark(f"list:collection:{slug}")
    index.mark("lists")
    queue_site_build(self.app, rt)


@shared_task(bind=True, name=tasknames.RENDER_SITE)
def render_site(self) -> bool:
    """The site build's old name, on the render queue: a message sent before an upgrade moves to `site`."""
    return queue_site_build(self.app, self.rt)
