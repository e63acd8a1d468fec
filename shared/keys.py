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


REBUILD_ACTIVE = f"{PREFIX}:rebuild:active"  # the run id of the `pressroom rebuild` under way, if any


def rebuild_run(run: str, part: str) -> str:
    """One part of a rebuild run: meta, chunks, done, indexed, rendered, cache:N (see services/render/rebuild.py)."""
    return f"{PREFIX}:rebuild:{run}:{part}"
