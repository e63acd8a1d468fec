"""Accepting an article: store it durably, record the version, hand the work to the broker.

Order matters: the document goes to the data bucket first (content-addressed, so a retry
or a racing request never overwrites another body), then one Lua call records the version
and queues the render task, atomically, so a 202 is only ever given for work that cannot
be lost. When the task cannot be pushed by that call (the broker is not the state Redis,
or the message cannot be built), the call records an outbox entry instead, the task is
sent through Celery, and a failed send leaves the entry for the scheduler to re-send.

The document is stored as the bytes that were posted (and signed), not re-serialised;
its key carries their digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from celery import Celery

from services.ingest import idempotency
from services.ingest.articles.enqueue import task_messages
from shared import keys, tasknames
from shared.article_state import ArticleState, Decision, initial_status
from shared.ninjs import Article
from shared.runtime import Runtime

log = logging.getLogger("pressroom.ingest")


@dataclass(frozen=True)
class Accepted:
    article: Article
    decision: Decision
    remembered: bool = False  # the idempotency answer was stored with the state


@dataclass(frozen=True)
class Stored:
    """What Redis holds for the article before this request: its version (None: none) and status."""

    version: int | None
    status: str = ""


def accept_article(
    rt: Runtime,
    celery: Celery,
    article: Article,
    body: bytes | dict,
    stored: Stored | None = None,
    remember: tuple[str, Callable[[Decision], tuple[int, dict]]] | None = None,
) -> Accepted:
    """Store and queue one validated article; raises StorageUnavailable / redis errors.

    `body` is the document as posted (bytes) or parsed. `stored` is the article's state
    already read by the caller (else it is read here): an equal or newer stored version
    means nothing is written. `remember` is (idempotency key, answer builder): the answer
    of an accepted version is stored in the same atomic step as the state.
    """
    if stored is None:
        version, status = rt.redis.hmget(keys.article_state(article.id), ["version", "status"])
        stored = Stored(int(version) if version is not None else None, status.decode() if status else "")
    if stored.version is not None and stored.version >= article.version:
        return Accepted(article, Decision("stale", stored.version, stored.status))
    raw = body if isinstance(body, bytes) else _serialise(body)
    doc_key = keys.document_key(article.id, article.version, hashlib.sha256(raw).hexdigest())
    rt.data.put(doc_key, raw, "application/json", metadata={"uri": uri_header(article.uri)})
    now = time.time()
    embargo = article.embargoed.timestamp() if article.embargoed else None
    status = initial_status(article.withdrawn, embargo, now)
    answer = None
    if remember is not None:
        name, build = remember
        code, answer_body = build(Decision("accepted", article.version, status))
        answer = (name, idempotency.answer(code, answer_body), rt.settings.idempotency_ttl)
    messages = task_messages(celery, rt.settings.redis_url) if status == "queued" else None
    enqueue = messages.render(article.id, article.version) if messages else None
    decision = rt.own(ArticleState).accept(
        article.id, article.uri, article.version, doc_key, withdraw=article.withdrawn, embargo=embargo,
        now=now, answer=answer, enqueue=enqueue,
    )
    if decision.outcome == "accepted" and decision.status == "queued" and not decision.sent:
        send_render(rt, celery, article.id, article.version)
    return Accepted(article, decision, remembered=answer is not None and decision.outcome == "accepted")


def uri_header(uri: str) -> str:
    """The uri as S3 user metadata can carry it: headers take printable ASCII only, so the
    rest is percent-encoded as UTF-8 (RFC 3987's IRI-to-URI mapping), at most 1,000 chars."""
    return quote(uri, safe=_PRINTABLE)[:1000]


_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))


def _serialise(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


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
