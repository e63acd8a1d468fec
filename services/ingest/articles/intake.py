"""Accepting an article: store it durably, record the version, hand the work to the broker.

Order matters: the document goes to the data bucket first (content-addressed, so a retry
or a racing request never overwrites another body), then the version is recorded in
Redis together with an outbox entry, then the task is sent. A crash or broker failure
after the Redis step leaves the outbox entry, which the scheduler re-sends; so a 202 is
only ever given for work that cannot be lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from celery import Celery

from shared import keys, tasknames
from shared.article_state import Decision
from shared.ninjs import Article
from shared.runtime import Runtime

log = logging.getLogger("pressroom.ingest")


@dataclass(frozen=True)
class Accepted:
    article: Article
    decision: Decision


def accept_article(rt: Runtime, celery: Celery, article: Article, body: dict) -> Accepted:
    """Store and queue one validated article; raises StorageUnavailable / redis errors."""
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()
    doc_key = keys.document_key(article.id, article.version, digest)
    current = rt.redis.hget(keys.article_state(article.id), "version")
    if current is not None and int(current) >= article.version:
        return Accepted(article, Decision("stale", int(current), _status(rt, article.id)))
    rt.data.put(doc_key, raw, "application/json", metadata={"uri": article.uri[:1000]})
    embargo = article.embargoed.timestamp() if article.embargoed else None
    decision = rt.articles.accept(
        article.id, article.uri, article.version, doc_key, withdraw=article.withdrawn, embargo=embargo
    )
    if decision.outcome == "accepted" and decision.status == "queued":
        send_render(rt, celery, article.id, article.version)
    return Accepted(article, decision)


def send_render(rt: Runtime, celery: Celery, aid: str, version: int) -> bool:
    """Hand (aid, version) to the render pool; on failure the outbox keeps it for the sweep."""
    try:
        celery.send_task(tasknames.RENDER_ARTICLE, args=[aid, version])
    except Exception as exc:  # broker down: the scheduler's outbox sweep re-sends it
        log.warning("broker unavailable, %s v%s left in outbox: %s", aid, version, exc)
        return False
    rt.articles.outbox_done(aid, version)
    return True


def withdraw_article(rt: Runtime, celery: Celery, aid: str) -> Decision:
    decision = rt.articles.request_withdraw(aid, now=time.time())
    if decision.outcome == "accepted" and decision.version is not None:
        send_render(rt, celery, aid, decision.version)
    return decision


def _status(rt: Runtime, aid: str) -> str:
    value = rt.redis.hget(keys.article_state(aid), "status")
    return value.decode() if value else ""
