"""`process_photo`: a photo is fetched, checked and rendered once, then remembered.

Two Redis entries make repeats free: href -> source digest (so the same href is not
fetched again) and digest -> manifest (so the same bytes under another href are not
rendered again). Outputs are content-addressed and immutable: an existing object is
never written again, and the manifest is cached only once every output is stored, so a
crash half-way leaves nothing that points at a missing object.
"""

from __future__ import annotations

import hashlib
import logging
import time

from redis.exceptions import LockError

from services.render.photos import imaging
from services.render.photos.model import VERSION, PhotoError, ProcessedPhoto, Rendition, dumps, loads
from services.render.photos.source import read_source
from shared import keys
from shared.ninjs import Photo
from shared.runtime import Runtime
from shared.storage import StorageUnavailable

log = logging.getLogger("pressroom.render.photos")

IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_TTL = 180 * 86400  # refreshed on every use; an expired entry only costs one more fetch
LOCK_TIMEOUT = 120
LOCK_WAIT = 60


def process_photo(rt: Runtime, photo: Photo) -> ProcessedPhoto:
    """Renditions and crops of `photo.href` in the site bucket, processed at most once.

    Raises PhotoError with a one-line reason (not fetched, refused, not stored); its
    `transient` flag says whether trying later may help. Redis errors propagate: without
    Redis the render task cannot run at all and is retried as a whole.
    """
    href = photo.href.strip()
    source_key = keys.photo_source(VERSION, href)
    digest = rt.redis.get(source_key)
    if digest is not None:
        cached = _manifest(rt, digest.decode())
        if cached is not None:
            rt.redis.expire(source_key, CACHE_TTL)
            return cached
    started = time.monotonic()
    data = read_source(rt.settings, href)
    digest = hashlib.sha256(data).hexdigest()
    processed = _manifest(rt, digest)
    if processed is None:
        lock = rt.redis.lock(keys.photo_lock(VERSION, digest), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)
        # Without the lock (a slow holder) we go ahead anyway: the work is idempotent, only wasted.
        held = lock.acquire()
        try:
            processed = _manifest(rt, digest) or _render_and_store(rt, data, digest)
        finally:
            if held:
                try:
                    lock.release()
                except LockError:
                    log.warning("photo lock for %s expired before release", digest)
        log.info("photo %s from %s: %dx%d in %.2fs", digest[:12], _describe(href), processed.width,
                 processed.height, time.monotonic() - started)
    rt.redis.set(source_key, digest, ex=CACHE_TTL)
    return processed


def _manifest(rt: Runtime, digest: str) -> ProcessedPhoto | None:
    key = keys.photo_manifest(VERSION, digest)
    raw = rt.redis.get(key)
    if raw is None:
        return None
    rt.redis.expire(key, CACHE_TTL)
    return loads(raw, rt.settings.site_url)


def _render_and_store(rt: Runtime, data: bytes, digest: str) -> ProcessedPhoto:
    rendered = imaging.render(data, rt.settings.photo_max_pixels)
    jpeg: list[Rendition] = []
    webp: list[Rendition] = []
    crops: dict[str, Rendition] = {}
    for out in rendered.outputs:
        key = keys.photo_key(VERSION, digest, out.name)
        try:
            if rt.site.etag(key) is None:
                rt.site.put(key, out.body, out.mimetype, IMMUTABLE)
        except StorageUnavailable as exc:
            raise PhotoError(f"photo not stored: {exc} (may be temporary)", transient=True) from None
        rendition = Rendition(out.width, out.height, key, f"{rt.settings.site_url}/{key}", out.mimetype)
        if out.kind == "crop":
            crops[out.label] = rendition
        else:
            (jpeg if out.kind == "jpeg" else webp).append(rendition)
    processed = ProcessedPhoto(digest, rendered.width, rendered.height, tuple(jpeg), tuple(webp), crops)
    rt.redis.set(keys.photo_manifest(VERSION, digest), dumps(processed), ex=CACHE_TTL)
    return processed


def _describe(href: str) -> str:
    return f"a data: URI of {len(href)} characters" if href[:5].lower() == "data:" else href[:200]
