"""Bring one article's public page, and the site around it, in line with its recorded state.

`reconcile` is what the render task runs. It reads the desired state from Redis under a
per-article lock, so whatever order or how many times tasks arrive, the page ends up
showing the newest accepted version, or gone if the article was withdrawn. What the page
changes elsewhere (lists, feeds, sitemaps, other articles' related lists) is recorded as
dirty marks for the coalesced site build.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from marshmallow import ValidationError

from services.render import lists
from services.render.pages import SiteContext, article_page
from services.render.photos import PhotoError, ProcessedPhoto, process_photo
from services.render.related import RelatedIndex, related_doc_from_article
from services.render.site_index import SiteIndex, card
from services.render.upload import Uploader
from shared import keys
from shared.locks import LeaseBusy, lease
from shared.ninjs import Article, load_article
from shared.runtime import Runtime

log = logging.getLogger("pressroom.render")

FANOUT = 10
REFUSAL_TTL = 3600  # a refused photo is not fetched again for this long
REFUSAL_TTL_TRANSIENT = 300


class Effects(Protocol):
    """What reconciling asks of the outside world (Celery in production, a recorder in tests)."""

    def notify(self, event: dict) -> None: ...

    def build_site(self) -> None: ...

    def refresh_related(self, aid: str) -> None:
        """Later, re-render the pages whose related lists now include `aid` (`refresh_related_lists`)."""


class ArticleBusy(Exception):
    """Another worker holds this article's lock; retry shortly."""


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. the stored document is gone); the article is marked failed."""


@dataclass(frozen=True)
class Outcome:
    action: str  # published | unchanged | withdrawn | superseded | embargoed | missing
    url: str | None = None


def reconcile(rt: Runtime, aid: str, version: int, effects: Effects, force: bool = False) -> Outcome:
    """Publish, update or withdraw. `force` re-renders a page that is already current."""
    try:
        with lease(rt.redis, keys.article_lock(aid)):
            return _reconcile_locked(rt, aid, version, effects, force)
    except LeaseBusy:
        raise ArticleBusy(aid) from None


def _reconcile_locked(rt: Runtime, aid: str, version: int, effects: Effects, force: bool) -> Outcome:
    state = rt.articles.get(aid)
    if state is None:
        return Outcome("missing")
    action = next_action(state, version, force)
    if action == "withdraw":
        return withdraw(rt, aid, int(state["version"]), state, effects)
    if action == "publish":
        return publish(rt, aid, int(state["version"]), state, effects)
    if action == "unchanged" and state.get("withdraw") != "1":
        return Outcome("unchanged", state.get("url"))
    return Outcome(action)


def next_action(state: dict, version: int, force: bool = False) -> str:
    """What a task for `version` does with the recorded state: superseded, withdraw, embargoed, unchanged or publish.

    The one place these rules live: `pressroom rebuild` asks it too, so it renders in bulk
    exactly what the per-article task would publish and hands the rest to that task.
    """
    current = int(state["version"])
    if current > version:
        return "superseded"
    if state.get("withdraw") == "1":
        return "unchanged" if state.get("status") == "withdrawn" and not force else "withdraw"
    if float(state.get("embargo") or 0) > time.time():
        return "embargoed"
    if state.get("status") == "published" and state.get("published_version") == str(current) and not force:
        return "unchanged"
    return "publish"


def public_path(rt: Runtime, state: dict, article: Article) -> tuple[str, str]:
    """The article's path (claimed at its first publication) and public URL."""
    return public_paths(rt, [(state, article)])[0]


def public_paths(rt: Runtime, items: list[tuple[dict, Article]]) -> list[tuple[str, str]]:
    """`public_path` for many articles: the new ones' paths claimed together (`claim_paths`)."""
    new = [article for state, article in items if not state.get("path")]
    claimed = dict(zip([a.id for a in new], claim_paths(rt, new), strict=True))
    paths = [state.get("path") or claimed[article.id] for state, article in items]
    return [(path, f"{rt.settings.site_url}/{path}/") for path in paths]


def publication_event(state: dict, version: int, article: Article, url: str) -> dict | None:
    """The event subscribers get for publishing `version`; None for a forced refresh of the published one."""
    previous = state.get("published_version")
    if previous == str(version):
        return None
    return article_event("article.updated" if previous else "article.published", article, url)


def published_fields(state: dict, version: int, path: str, url: str) -> dict:
    """What a publication records in the article's state (`ArticleStates.finish`)."""
    return {
        "published_version": version, "published_doc_key": state["doc_key"], "path": path, "url": url,
        "key": keys.page_key(path), "reason": "",
    }


def publish(rt: Runtime, aid: str, version: int, state: dict, effects: Effects) -> Outcome:
    article = _load(rt, state["doc_key"])
    path, url = public_path(rt, state, article)
    photo = featured_photo(rt, article)
    index = SiteIndex(rt.redis)
    entry = card(article, url, path, thumbnail(photo))
    related_changed = RelatedIndex(rt.redis).upsert(related_doc_from_article(article))
    index.add(article, entry)
    site = SiteContext(
        site_url=rt.settings.site_url,
        api_url=rt.settings.public_api_url,
        related=lists.related_cards(rt, aid),
        editors_choice=lists.editors_choice_cards(rt, exclude=aid),
        popular=lists.popular_cards(rt, exclude=aid),
    )
    key = keys.page_key(path)
    uploader = Uploader(rt)
    uploader.put(key, article_page(article, path, site, photo))
    uploader.flush()  # a correction must reach readers behind a CDN too
    if related_changed or state.get("published_version") != str(version):  # a run that died after the upsert
        effects.refresh_related(aid)
    effects.build_site()
    event = publication_event(state, version, article, url)
    if event is not None:
        effects.notify(event)
    rt.articles.finish(aid, version, "published", "published", **published_fields(state, version, path, url))
    log.info("published %s v%s at %s", aid, version, url)
    return Outcome("published", url)


def refresh_related_lists(rt: Runtime, aid: str) -> list[str]:
    """Mark for re-rendering the pages whose shown related list now includes `aid`; returns them.

    The fan-out of a publication, run after its page is live and at background priority:
    it costs `FANOUT` + 1 related queries, several times the rest of a publication, so
    doing it before the page went up made every article wait for its neighbours. It may
    run before the publication that sent it has recorded its state; an article that is no
    longer in the related index (withdrawn meanwhile) has no neighbours to refresh.
    """
    affected = [other for other in RelatedIndex(rt.redis).affected_by(aid, FANOUT) if other != aid]
    index = SiteIndex(rt.redis)
    for other in affected:
        index.mark(f"article:{other}")
    return affected


def withdraw(rt: Runtime, aid: str, version: int, state: dict, effects: Effects) -> Outcome:
    """Remove the page and take the article out of every list, feed, sitemap and related list."""
    if state.get("key"):
        uploader = Uploader(rt)
        uploader.delete(state["key"])
        uploader.flush()
    index = SiteIndex(rt.redis)
    index.remove(aid)
    RelatedIndex(rt.redis).remove(aid)
    for other in lists.pages_showing(rt, aid):
        index.mark(f"article:{other}")
    lists.forget_related(rt, aid)
    effects.build_site()
    if state.get("published_version"):
        article = _load(rt, state.get("published_doc_key") or state["doc_key"])
        effects.notify(article_event("article.withdrawn", article, state.get("url", "")))
    rt.articles.finish(aid, version, "withdrawn", "withdrawn", published_version="", reason="")
    log.info("withdrew %s", aid)
    return Outcome("withdrawn")


def featured_photo(rt: Runtime, article: Article) -> ProcessedPhoto | None:
    """The processed featured photo, or None: a bad photo never blocks the article."""
    if not article.photo:
        return None
    refused = keys.photo_refused(article.photo.href)
    reason = rt.redis.get(refused)
    if reason is None:
        try:
            return process_photo(rt, article.photo)
        except PhotoError as exc:
            reason = str(exc)[:300].encode()
            rt.redis.set(refused, reason, ex=REFUSAL_TTL_TRANSIENT if exc.transient else REFUSAL_TTL)
    rt.articles.log(article.id, "photo skipped", article.version, reason=reason.decode())
    log.warning("article %s published without its photo: %s", article.id, reason.decode())
    return None


def thumbnail(photo: ProcessedPhoto | None) -> dict | None:
    if photo is None:
        return None
    best = next((r for r in photo.jpeg if r.width >= 640), photo.jpeg[-1])
    return {"url": best.url, "width": best.width, "height": best.height}


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
    return parse_document(doc_key, raw)


def parse_document(doc_key: str, raw: bytes) -> Article:
    """The stored document as an Article; PermanentFailure if it is unreadable."""
    try:
        return load_article(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise PermanentFailure(f"stored document {doc_key} is unreadable: {str(exc)[:200]}") from None


def page_path(article: Article) -> str:
    when = article.published_at or datetime.now(UTC)
    slug = keys.slugify(article.slugline or article.headline)
    return f"{when:%Y/%m/%d}/{slug}"


def claim_paths(rt: Runtime, articles: list[Article]) -> list[str]:
    """Each article's public path, fixed at first publication; a clash gets the id appended."""
    wanted = [page_path(article) for article in articles]
    won = rt.articles.claim_paths([(a.id, path) for a, path in zip(articles, wanted, strict=True)])
    clashed = {i: f"{wanted[i]}-{articles[i].id[1:9]}" for i, ok in enumerate(won) if not ok}
    rt.articles.claim_paths([(articles[i].id, path) for i, path in clashed.items()])
    return [clashed.get(i, path) for i, path in enumerate(wanted)]
