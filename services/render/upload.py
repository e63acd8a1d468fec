"""Uploads to the site bucket: skip unchanged bytes, remember what changed, tell the CDN.

The MD5 of every object Pressroom wrote is kept in Redis, so deciding that a page did not
change costs no S3 request, and a new object costs one PUT. `pressroom rebuild --force`
forgets them, so every object is written again.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from shared import keys
from shared.runtime import Runtime
from shared.storage import md5_hex

log = logging.getLogger("pressroom.render")

ETAGS = keys.SITE_ETAGS
UPLOADS = keys.SITE_UPLOADS
HTML = "text/html; charset=utf-8"
SHORT_CACHE = "public, max-age=60, stale-while-revalidate=300"
CONTENT_TYPES = {
    ".html": HTML,
    ".xml": "application/xml; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
FEED_TYPES = {"feed.xml": "application/rss+xml; charset=utf-8", "atom.xml": "application/atom+xml; charset=utf-8"}


def content_type_for(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if name in FEED_TYPES:
        return FEED_TYPES[name]
    return CONTENT_TYPES.get("." + name.rsplit(".", 1)[-1], "application/octet-stream")


class Uploader:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.changed: list[str] = []

    def put(
        self, key: str, body: bytes | str, content_type: str | None = None, cache_control: str = SHORT_CACHE
    ) -> bool:
        """Upload unless the bucket already holds these bytes; True if uploaded."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        digest = md5_hex(data)
        known = self.rt.redis.hget(ETAGS, key)
        if known is not None and known.decode() == digest:
            return False
        self.rt.site.put(key, data, content_type or content_type_for(key), cache_control)
        pipe = self.rt.redis.pipeline(transaction=False)
        pipe.hset(ETAGS, key, digest)
        pipe.hincrby(UPLOADS, key, 1)
        pipe.execute()
        self.changed.append(key)
        return True

    def delete(self, key: str) -> None:
        self.rt.site.delete(key)
        self.rt.redis.hdel(ETAGS, key)
        self.changed.append(key)

    def flush(self) -> list[str]:
        """Report changed paths to the CDN (if configured); returns them."""
        changed, self.changed = self.changed, []
        distribution = self.rt.settings.cloudfront_distribution_id
        if changed and distribution:
            invalidate(self.rt, distribution, changed)
        return changed


class BatchUploader(Uploader):
    """Uploads in batches on a bounded thread pool: for site builds and rebuilds, which write thousands.

    `put` and `delete` only queue; every `batch` operations (and at `commit` / `flush`) the
    queued keys' MD5 marks are read in one round trip, the changed objects are written by
    `threads` concurrent requests on the one boto3 client (thread-safe, its connection pool
    sized to match: shared.storage.s3_client), and the new marks recorded in one more round
    trip. The last operation queued for a key wins. A failed request raises from `commit`,
    after the marks of every request that did succeed were recorded. `start` is `commit`
    without the wait: its `Writes.wait` records and raises the same way, later.
    """

    def __init__(self, rt: Runtime, threads: int | None = None, batch: int = 100) -> None:
        super().__init__(rt)
        self.threads = max(1, threads or rt.settings.s3_concurrency)
        self.batch = batch
        self.pending: dict[str, tuple | None] = {}  # key -> (data, content type, cache control) or None: delete
        self._pool: ThreadPoolExecutor | None = None

    def put(
        self, key: str, body: bytes | str, content_type: str | None = None, cache_control: str = SHORT_CACHE
    ) -> bool:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.pending[key] = (data, content_type or content_type_for(key), cache_control)
        if len(self.pending) >= self.batch:
            self.commit()
        return True

    def delete(self, key: str) -> None:
        self.pending[key] = None
        if len(self.pending) >= self.batch:
            self.commit()

    def commit(self) -> list[str]:
        """Write what is queued; returns the keys written or deleted."""
        return self.start().wait()

    def start(self) -> Writes:
        """Start writing what is queued and return at once: the caller renders on while the
        requests run, then `wait`s, which records the marks (in the caller's thread)."""
        pending, self.pending = self.pending, {}
        if not pending:
            return Writes(self, [])
        names = list(pending)
        known = dict(zip(names, self.rt.redis.hmget(ETAGS, names), strict=True))
        work = []
        for key, item in pending.items():
            if item is None:
                work.append((key, None, None))
                continue
            digest = md5_hex(item[0])
            if known[key] is None or known[key].decode() != digest:
                work.append((key, item, digest))
        if work and self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="upload")
        return Writes(self, [(key, item, digest, self._pool.submit(self._write, key, item))
                             for key, item, digest in work])

    def _write(self, key: str, item: tuple | None) -> None:
        if item is None:
            self.rt.site.delete(key)
        else:
            self.rt.site.put(key, item[0], item[1], item[2])

    def flush(self) -> list[str]:
        self.commit()
        return super().flush()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class Writes:
    """One batch of `BatchUploader` requests under way."""

    def __init__(self, uploader: BatchUploader, futures: list[tuple]) -> None:
        self.uploader = uploader
        self.futures = futures

    def wait(self) -> list[str]:
        """Block until every request ended; record the marks of those that succeeded, then raise
        the first failure, if any. Returns the keys written or deleted."""
        if not self.futures:
            return []
        futures, self.futures = self.futures, []
        done, failure = [], None
        pipe = self.uploader.rt.redis.pipeline(transaction=False)
        for key, item, digest, future in futures:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - the first failure is raised once the rest are recorded
                failure = failure or exc
                continue
            if item is None:
                pipe.hdel(ETAGS, key)
            else:
                pipe.hset(ETAGS, key, digest)
                pipe.hincrby(UPLOADS, key, 1)
            done.append(key)
        pipe.execute()
        self.uploader.changed.extend(done)
        if failure is not None:
            raise failure
        return done


def cdn_paths(changed: list[str]) -> list[str]:
    paths = set()
    for key in changed:
        paths.add("/" + key)
        if key.endswith("index.html"):
            paths.add("/" + key.removesuffix("index.html"))
    return sorted(paths)


def invalidate(rt: Runtime, distribution: str, changed: list[str]) -> None:
    """One CloudFront invalidation for a batch of changed keys (more than 100 paths: the whole site)."""
    import boto3

    paths = cdn_paths(changed)
    if len(paths) > 100:
        paths = ["/*"]
    client = boto3.client("cloudfront", endpoint_url=rt.settings.cloudfront_endpoint_url)
    client.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": f"pr-{time.time_ns()}",
        },
    )
    log.info("CDN invalidation of %d paths", len(paths))
