"""Uploads to the site bucket: skip unchanged bytes, remember what changed, tell the CDN.

The MD5 of every object Pressroom wrote is kept in Redis, so deciding that a page did not
change costs no S3 request, and a new object costs one PUT. `pressroom rebuild --force`
forgets them, so every object is written again.
"""

from __future__ import annotations

import logging
import time

from shared import keys
from shared.runtime import Runtime
from shared.storage import md5_hex

log = logging.getLogger("pressroom.render")

ETAGS = f"{keys.PREFIX}:site:etags"
UPLOADS = f"{keys.PREFIX}:site:uploads"  # key -> number of uploads (for operators and benchmarks)
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
