"""Bring one article's public page in line with its recorded state.

`reconcile` is what the render task runs. It reads the desired state from Redis under a
per-article lock, so whatever order or how many times tasks arrive, the page ends up
showing the newest accepted version, or gone if the article was withdrawn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.render.pages import SiteContext, article_page
from shared import keys
from shared.ninjs import Article, load_article
from shared.runtime import Runtime
from shared.storage import md5_hex

log = logging.getLogger("pressroom.render")

HTML = "text/html; charset=utf-8"
HTML_CACHE = "public, max-age=60, stale-while-revalidate=300"


class ArticleBusy(Exception):
    """Another worker holds this article's lock; retry shortly."""


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. the stored document is gone); the article is marked failed."""


@dataclass(frozen=True)
class Outcome:
    action: str  # published | unchanged | withdrawn | superseded | embargoed | missing
    url: str | None = None


Emit = Callable[[dict], None]


def reconcile(rt: Runtime, aid: str, version: int, emit: Emit) -> Outcome:
    """Publish, update or withdraw; `emit` gets the ArticleEvent to notify subscribers of."""
    lock = rt.redis.lock(keys.article_lock(aid), timeout=rt.settings.task_time_limit + 30, blocking_timeout=10)
    if not lock.acquire():
        raise ArticleBusy(aid)
    try:
        return _reconcile_locked(rt, aid, version, emit)
    finally:
        try:
            lock.release()
        except Exception:  # lock expired: a newer owner runs; nothing of ours to release
            log.warning("lock for %s expired before release", aid)


def _reconcile_locked(rt: Runtime, aid: str, version: int, emit: Emit) -> Outcome:
    state = rt.articles.get(aid)
    if state is None:
        return Outcome("missing")
    current = int(state["version"])
    if current > version:
        return Outcome("superseded")
    if state.get("withdraw") == "1":
        return withdraw(rt, aid, current, state, emit)
    if float(state.get("embargo") or 0) > time.time():
        return Outcome("embargoed")
    if state.get("status") == "published" and state.get("published_version") == str(current):
        return Outcome("unchanged", state.get("url"))
    article = _load(rt, state["doc_key"])
    path = state.get("path") or claim_path(rt, article)
    html = article_page(article, path, SiteContext(site_url=rt.settings.site_url))
    key = keys.page_key(path)
    upload_if_changed(rt, key, html.encode("utf-8"), HTML, HTML_CACHE)
    url = f"{rt.settings.site_url}/{path}/"
    first = not state.get("published_version")
    emit(article_event("article.published" if first else "article.updated", article, url))
    rt.articles.finish(
        aid, current, "published", "published",
        published_version=current, published_doc_key=state["doc_key"], path=path, url=url, key=key, reason="",
    )
    log.info("published %s v%s at %s", aid, current, url)
    return Outcome("published", url)


def withdraw(rt: Runtime, aid: str, version: int, state: dict, emit: Emit) -> Outcome:
    if state.get("key"):
        rt.site.delete(state["key"])
    if state.get("published_version"):
        article = _load(rt, state.get("published_doc_key") or state["doc_key"])
        emit(article_event("article.withdrawn", article, state.get("url", "")))
    rt.articles.finish(aid, version, "withdrawn", "withdrawn", published_version="", url="", reason="")
    log.info("withdrew %s", aid)
    return Outcome("withdrawn")


def article_event(kind: str, article: Article, url: str) -> dict:
    """The ArticleEvent message (shared.messages) for subscribers."""
    return {
        "type": kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "id": article.id,
        "uri": article.uri,
        "version": article.version,
        "headline": article.headline,
        "summary": article.summary,
        "url": url,
        "topics": [t.name for t in article.topics if t.scheme != "collection"],
        "language": article.language,
    }


def mark_failed(rt: Runtime, aid: str, version: int, reason: str) -> None:
    rt.articles.finish(aid, version, "failed", "failed", reason=reason[:500])


def _load(rt: Runtime, doc_key: str) -> Article:
    try:
        raw = rt.data.get(doc_key).body
    except FileNotFoundError:
        raise PermanentFailure(f"stored document {doc_key} is missing") from None
    return load_article(json.loads(raw))


def page_path(article: Article) -> str:
    when = article.published_at or datetime.now(UTC)
    slug = keys.slugify(article.slugline or article.headline)
    return f"{when:%Y/%m/%d}/{slug}"


def claim_path(rt: Runtime, article: Article) -> str:
    """The article's public path, fixed at first publication; a clash gets the id appended."""
    path = page_path(article)
    if rt.articles.claim_path(article.id, path):
        return path
    path = f"{path}-{article.id[1:9]}"
    rt.articles.claim_path(article.id, path)
    return path


def upload_if_changed(rt: Runtime, key: str, body: bytes, content_type: str, cache_control: str) -> bool:
    """Upload unless the stored object already has these bytes; True if uploaded."""
    if rt.site.etag(key) == md5_hex(body):
        return False
    rt.site.put(key, body, content_type, cache_control)
    return True
