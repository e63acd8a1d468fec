"""`pressroom rebuild`: re-render the whole site from the article store, on the render workers.

Every published article gets a forced render task (spread over however many render
workers run); every listing, feed and sitemap is marked dirty for one site build. The
command shows progress from a Redis counter the tasks advance, then a summary.
"""

from __future__ import annotations

import sys
import time
import uuid

from services.render.site_index import TOPIC_NAMES, SiteIndex
from services.render.tasks import queue_site_build
from services.render.upload import ETAGS
from shared import keys, tasknames
from shared.celery_app import create_celery
from shared.runtime import Runtime
from shared.settings import Settings


def published_articles(rt: Runtime) -> list[tuple[str, int]]:
    found = []
    for name in rt.redis.scan_iter(match=f"{keys.PREFIX}:article:*", count=1000):
        name = name.decode()
        if name.count(":") != 2:
            continue
        status, version = rt.redis.hmget(name, ["status", "version"])
        if status in (b"published", b"failed", b"queued") and version is not None:
            found.append((name.rsplit(":", 1)[1], int(version)))
    return sorted(found)


def progress_line(done: int, total: int, started: float, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    rate = done / max(time.monotonic() - started, 1e-6)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} articles  {rate:.1f}/s"


def rebuild(settings: Settings, force: bool = False, timeout: float = 3600, out=sys.stderr) -> dict[str, int]:
    rt = Runtime(settings)
    app = create_celery(settings)
    run = uuid.uuid4().hex[:12]
    articles = published_articles(rt)
    if force:
        rt.redis.delete(ETAGS)
    for aid, version in articles:
        app.send_task(tasknames.RENDER_ARTICLE, args=[aid, version], kwargs={"force": True, "rebuild": run})
    index = SiteIndex(rt.redis)
    for name in [b"home", *rt.redis.hkeys(TOPIC_NAMES)]:
        index.mark(f"list:{name.decode()}")
    for field in ("sitemap-index", "sitemap-news", "sitemap-pages", "robots", "lists"):
        index.mark(field)
    for month in index.months():
        index.mark(f"sitemap:{month}")
    started = time.monotonic()
    counts: dict[str, int] = {}
    while True:
        counts = {k.decode(): int(v) for k, v in rt.redis.hgetall(keys.rebuild_progress(run)).items()}
        done = sum(counts.values())
        print(progress_line(done, len(articles), started), end="", file=out, flush=True)
        if done >= len(articles) or time.monotonic() - started > timeout:
            break
        time.sleep(0.5)
    print(file=out)
    queue_site_build(app, rt)
    rt.redis.expire(keys.rebuild_progress(run), 3600)
    counts["total"] = len(articles)
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts
