"""Names of things in storage and Redis: the one place that knows every key layout."""

from __future__ import annotations

import hashlib
import re
import unicodedata

PREFIX = "pr"


def article_id(uri: str) -> str:
    """Stable, URL-safe id for an article `uri` (the same uri always maps to the same id)."""
    return "a" + hashlib.blake2b(uri.encode("utf-8"), digest_size=10).hexdigest()


ARTICLE_ID = re.compile(r"^a[0-9a-f]{20}$")
ARTICLE_ID_GLOB = "a" + "[0-9a-f]" * 20  # ARTICLE_ID as a Redis SCAN pattern: article_state(GLOB) skips the timelines


def slugify(text: str, max_length: int = 80) -> str:
    text = re.sub(r"['\u2019]", "", text).replace("ß", "ss")  # "Editor's choice" -> editors-choice
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "article"


# data bucket (private article store)
def document_key(aid: str, version: int, digest: str) -> str:
    """Versioned key of one accepted document; the digest keeps two bodies apart."""
    return f"articles/{aid}/v{version:010d}-{digest[:16]}.json"


# site bucket (public)
def page_key(path: str) -> str:
    """Object key of the page served at the clean URL `path` (e.g. '2018/09/13/slug/')."""
    return f"{path.strip('/')}/index.html" if path.strip("/") else "index.html"


def photo_key(version: int, digest: str, name: str) -> str:
    """Content-addressed key of one photo output: the source's sha256 and the processing version.

    A new processing version writes beside the old outputs instead of overwriting them, so
    pages already published keep working (e.g. 'photos/v1/ab/ab12…/640w.webp').
    """
    return f"photos/v{version}/{digest[:2]}/{digest}/{name}"


# redis
def article_state(aid: str) -> str:
    return f"{PREFIX}:article:{aid}"


def article_timeline(aid: str) -> str:
    return f"{PREFIX}:article:{aid}:timeline"


def article_lock(aid: str) -> str:
    return f"{PREFIX}:lock:article:{aid}"


def path_claim(path: str) -> str:
    return f"{PREFIX}:path:{path}"


def photo_manifest(version: int, digest: str) -> str:
    """The processed photo (renditions and crops) for a source digest."""
    return f"{PREFIX}:photo:v{version}:{digest}"


def photo_source(version: int, href: str) -> str:
    """Which source digest an href (or a whole data: URI) turned out to hold; hashed to bound its length."""
    return f"{PREFIX}:photo:v{version}:href:{hashlib.sha256(href.encode('utf-8')).hexdigest()}"


def photo_lock(version: int, digest: str) -> str:
    return f"{PREFIX}:lock:photo:v{version}:{digest}"


def idempotency(source: str, key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{PREFIX}:idem:{source}:{digest}"


OUTBOX = f"{PREFIX}:outbox"
NOTIFY_DUE = f"{PREFIX}:notify:due"  # zset: delivery id -> when it needs work (shared.deliveries)
EMBARGOES = f"{PREFIX}:embargoes"
ARTICLES_BY_STATUS = f"{PREFIX}:articles:status:"  # + status -> zset of ids scored by when they took it


def articles_by_status(status: str) -> str:
    """The ids of articles whose status is `status`, scored by when they took it (shared.article_state)."""
    return ARTICLES_BY_STATUS + status


def broker_queue(pool: str) -> str:
    """The Redis list kombu keeps a pool's waiting tasks in (the queue's own name)."""
    return pool


BROKER_UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages (all queues)

WORKERS = f"{PREFIX}:workers"  # zset: worker name -> last heartbeat (shared.heartbeat)


def worker_heartbeat(name: str) -> str:
    """A live worker's description (pools, pid, concurrency), expiring unless it is refreshed."""
    return f"{PREFIX}:worker:{name}"


POPULAR = f"{PREFIX}:popular"  # zset: article id -> forward-decayed page views


def collection(slug: str) -> str:
    """An editor-curated, ordered list of article ids (PUT /v1/collections/{name})."""
    return f"{PREFIX}:collection:{slug}"


def pageview_limit(client: str, window: int) -> str:
    return f"{PREFIX}:pv-limit:{client}:{window}"


def rebuild_progress(run: str) -> str:
    """Hash of outcome -> count for one `pressroom rebuild` run."""
    return f"{PREFIX}:rebuild:{run}"


def photo_refused(href: str) -> str:
    """Why a photo href was refused lately, so re-renders do not fetch it again and again."""
    return f"{PREFIX}:photo:refused:{hashlib.sha256(href.encode('utf-8')).hexdigest()[:32]}"


# The site index and build (services/render: site_index, site_build, lists, upload)
SITE = f"{PREFIX}:site"
SITE_CARDS = f"{SITE}:cards"  # hash: article id -> its card (JSON)
SITE_MEMBERSHIP = f"{SITE}:member:"  # + article id -> set of the list names it is in
SITE_TOPIC_NAMES = f"{SITE}:topic-names"  # hash: list name -> display name
SITE_DIRTY = f"{SITE}:dirty"  # hash: mark -> lowest rank changed, for the next site build
SITE_BUILDING = f"{SITE}:building"  # the marks a build has taken; only a finished build deletes them
SITE_BUILD_QUEUED = f"{SITE}:build-queued"
SITE_BUILD_LOCK = f"{PREFIX}:lock:site-build"
SITE_PAGE_COUNTS = f"{SITE}:page-counts"  # hash: listing name -> archive pages written
SITE_ETAGS = f"{SITE}:etags"  # hash: object key -> MD5 of the bytes last uploaded
SITE_UPLOADS = f"{SITE}:uploads"  # hash: object key -> number of uploads (for operators and benchmarks)
RELATED_SHOWS = f"{SITE}:shows:"  # + article id -> set of ids its page lists as related
RELATED_SHOWN_IN = f"{SITE}:shown-in:"  # + article id -> set of ids of the pages listing it as related
RELATED_INDEX = f"{PREFIX}:rel"  # prefix of the related-articles index (services/render/related/keys.py)
RELATED_EVAL = f"{PREFIX}:releval:"  # + run id: the throwaway index of one `pressroom related-eval` run


def site_list(name: str) -> str:
    """A listing's articles ("home", "section:news", "topic:defence"), scored by publication time."""
    return f"{SITE}:list:{name}"


# Subscriptions and deliveries (shared.subscriptions, shared.deliveries, services/notify)
SUBSCRIPTIONS = f"{PREFIX}:subs"  # set of every subscription id
SUBSCRIPTIONS_BY_CREATION = f"{PREFIX}:subs:created"  # zset: id -> created_at, for the newest-first list


def subscription(sid: str) -> str:
    return f"{PREFIX}:sub:{sid}"


def subscription_index(event: str, topic: str) -> str:
    """The ids of the subscriptions to `event` that follow `topic` (normalised, or '*')."""
    return f"{PREFIX}:subidx:{event}:{topic}"


def delivery(did: str) -> str:
    return f"{PREFIX}:dlv:{did}"


def delivery_event(aid: str, version: int, event: str) -> str:
    """The stored event a fan-out's deliveries send."""
    return f"{PREFIX}:notify:event:{aid}:{version}:{event}"


def delivery_log(sid: str) -> str:
    return f"{PREFIX}:dlvlog:{sid}"


def delivery_busy(sid: str) -> str:
    """Held while a delivery to the subscriber is in flight."""
    return f"{PREFIX}:notify:busy:{sid}"


def delivery_waiting(sid: str) -> str:
    """Deliveries that found the subscriber busy, oldest first."""
    return f"{PREFIX}:notify:waiting:{sid}"


def confirmation_sent(sid: str) -> str:
    """Set once the double opt-in email of an email subscription has gone out."""
    return f"{PREFIX}:notify:confirm-sent:{sid}"


REBUILD_ACTIVE = f"{PREFIX}:rebuild:active"  # the run id of the `pressroom rebuild` under way, if any


def rebuild_run(run: str, part: str) -> str:
    """One part of a rebuild run: meta, chunks, done, indexed, rendered, cache:N (see services/render/rebuild.py)."""
    return f"{PREFIX}:rebuild:{run}:{part}"
