"""`pressroom reindex`: rebuild the related index from the article store.

The article state in Redis says which articles are published and which stored document
version is live (`published_doc_key`); the data bucket holds the documents. Rebuilding
in place keeps every list answering while it runs: each published article is re-indexed
(a no-op when nothing changed), then articles that are no longer published are removed.
`fresh` drops the index first, for when tuning changed or the index is suspect.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from services.render.related.document import RelatedDoc, related_doc_from_article
from services.render.related.engine import RelatedIndex
from services.render.related.progress import Progress
from shared import keys

if TYPE_CHECKING:
    import redis

    from shared.storage import Storage

log = logging.getLogger("pressroom.related")

FETCH_THREADS = 8  # S3 GETs are latency-bound; indexing itself stays on one thread
SCAN_BATCH = 1000


@dataclass(frozen=True)
class ReindexReport:
    published: int
    indexed: int
    missing: int  # stored document gone or unreadable
    removed: int  # indexed but no longer published


def published_articles(client: redis.Redis) -> list[tuple[str, str]]:
    """(article id, published document key) of every published article, oldest first.

    Oldest first because that is the order the live index saw them in: the statistics
    each article's weights are computed with then grow the way they did in production.
    """
    found: list[tuple[float, str, str]] = []
    batch: list[str] = []

    def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for aid in batch:
            pipe.hmget(keys.article_state(aid), ["status", "published_doc_key", "created_at"])
        for aid, (status, doc_key, created) in zip(batch, pipe.execute(), strict=True):
            if status == b"published" and doc_key:
                found.append((float(created or 0), aid, doc_key.decode("utf-8")))
        batch.clear()

    prefix = keys.article_state("")
    for raw in client.scan_iter(match=f"{prefix}*", count=SCAN_BATCH):
        aid = raw.decode("utf-8")[len(prefix) :]
        if keys.ARTICLE_ID.match(aid):  # skips :timeline and anything else under the prefix
            batch.append(aid)
            if len(batch) >= SCAN_BATCH:
                flush()
    if batch:
        flush()
    return [(aid, doc_key) for _, aid, doc_key in sorted(found)]


def _load(data: Storage, aid: str, doc_key: str) -> RelatedDoc | None:
    from marshmallow import ValidationError

    from shared.ninjs import load_article

    try:
        article = load_article(json.loads(data.get(doc_key).body))
    except FileNotFoundError:
        log.warning("reindex: %s: stored document %s is missing", aid, doc_key)
        return None
    except (ValueError, ValidationError) as exc:
        log.warning("reindex: %s: stored document %s is unreadable: %s", aid, doc_key, exc)
        return None
    return related_doc_from_article(article)


def _documents(data: Storage, articles: list[tuple[str, str]]) -> Iterator[tuple[str, RelatedDoc | None]]:
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        yield from zip(
            (aid for aid, _ in articles),
            pool.map(lambda item: _load(data, *item), articles),
            strict=True,
        )


def reindex(
    client: redis.Redis, data: Storage, index: RelatedIndex, fresh: bool = False, progress: TextIO | None = None
) -> ReindexReport:
    """Make the index hold exactly the published articles; see the module docstring."""
    articles = published_articles(client)
    if fresh:
        index.drop()
    bar = Progress(len(articles), "reindex", progress)
    indexed = missing = 0
    for _aid, doc in _documents(data, articles):
        if doc is None:
            missing += 1
        else:
            index.index(doc)
            indexed += 1
        bar.advance()
    bar.finish()
    published = {aid for aid, _ in articles}
    stale = [aid.decode("utf-8") for aid in client.hkeys(index.keys.ids)]
    removed = 0
    for aid in stale:
        if aid not in published:
            index.remove(aid)
            removed += 1
    return ReindexReport(published=len(articles), indexed=indexed, missing=missing, removed=removed)
