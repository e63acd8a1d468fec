"""`pressroom rebuild`: re-render the whole site from the article store, batch-first, on the workers.

The command plans a run (every article to render, in chunks), records it in Redis and
drives its phases (services/render/rebuild.py): one index task per chunk on the render
pool; once all are done, every list, feed and sitemap is marked and one site build is sent
to the site pool, and one page task per chunk renders each article page once with its
final lists. It shows a progress bar with an ETA from Redis counters the tasks advance.

A run survives its command: if the command is stopped (or times out), running it again
continues the same run instead of starting over, and the workers finish what they hold.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from services.render import rebuild as batch
from services.render.site_index import TOPIC_NAMES, SiteIndex
from services.render.upload import ETAGS
from shared import keys, tasknames
from shared.celery_app import create_celery
from shared.runtime import Runtime
from shared.settings import Settings

SCAN_BATCH = 1000
REBUILD_STATUSES = {"published", "failed", "queued"}


def published_articles(rt: Runtime) -> list[str]:
    """Ids of every article a rebuild renders (published, failed or queued), in id order."""
    prefix = keys.article_state("")
    found: list[str] = []
    batch_ids: list[str] = []

    def flush() -> None:
        pipe = rt.redis.pipeline(transaction=False)
        for aid in batch_ids:
            pipe.hmget(keys.article_state(aid), ["status", "version"])
        for aid, (status, version) in zip(batch_ids, pipe.execute(), strict=True):
            if status is not None and status.decode() in REBUILD_STATUSES and version is not None:
                found.append(aid)
        batch_ids.clear()

    for raw in rt.redis.scan_iter(match=f"{prefix}*", count=SCAN_BATCH):
        aid = raw.decode()[len(prefix):]
        if keys.ARTICLE_ID.match(aid):
            batch_ids.append(aid)
            if len(batch_ids) >= SCAN_BATCH:
                flush()
    if batch_ids:
        flush()
    return sorted(found)


def progress_line(phase: str, done: int, total: int, started: float, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    eta = f"ETA {_clock((total - done) / rate)}" if 0 < done < total else ("done" if done >= total else "ETA …")
    return f"\r{phase:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} articles  {rate:.1f}/s  {eta}   "


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def plan(rt: Runtime, force: bool, chunk: int = batch.CHUNK) -> str:
    """Record a new run: its chunks, and (with force) forget the upload marks so every object is written."""
    run = uuid.uuid4().hex[:12]
    aids = published_articles(rt)
    chunks = [aids[i:i + chunk] for i in range(0, len(aids), chunk)]
    pipe = rt.redis.pipeline()
    if chunks:
        pipe.hset(batch.part(run, "chunks"), mapping={n: json.dumps(ids) for n, ids in enumerate(chunks)})
    pipe.hset(batch.part(run, "meta"), mapping={
        "force": int(force), "total": len(aids), "chunks": len(chunks), "created": time.time(),
    })
    pipe.expire(batch.part(run, "chunks"), batch.RUN_TTL)  # no longer than the run itself (REBUILD_ACTIVE)
    pipe.expire(batch.part(run, "meta"), batch.RUN_TTL)
    if force:
        pipe.delete(ETAGS)
    pipe.set(keys.REBUILD_ACTIVE, run, ex=batch.RUN_TTL)
    pipe.execute()
    return run


def meta(rt: Runtime, run: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in rt.redis.hgetall(batch.part(run, "meta")).items()}


def mark_everything(rt: Runtime) -> None:
    """Every list, feed and sitemap, for the run's one site build."""
    index = SiteIndex(rt.redis)
    pipe = rt.redis.pipeline(transaction=False)
    for name in [b"home", *rt.redis.hkeys(TOPIC_NAMES)]:
        index.mark(f"list:{name.decode()}", pipe=pipe)
    for field in ("sitemap-index", "sitemap-news", "sitemap-pages", "robots", "lists"):
        index.mark(field, pipe=pipe)
    for month in index.months():
        index.mark(f"sitemap:{month}", pipe=pipe)
    pipe.execute()


def rebuild(settings: Settings, force: bool = False, timeout: float = 3600, out=sys.stderr,
            chunk: int = batch.CHUNK) -> dict:
    rt = Runtime(settings)
    app = create_celery(settings)
    run = (rt.redis.get(keys.REBUILD_ACTIVE) or b"").decode()
    info = meta(rt, run) if run else {}
    if info:
        print(f"continuing rebuild {run} (started {time.ctime(float(info['created']))}); "
              f"{rt.redis.scard(batch.part(run, 'done'))}/{info['total']} articles done", file=out)
    else:
        run = plan(rt, force, chunk)
        info = meta(rt, run)
    total, chunks = int(info["total"]), int(info["chunks"])
    started = time.monotonic()
    deadline = started + timeout

    def wait(phase: str, done, finished) -> bool:
        began = time.monotonic()
        while True:
            count = done()
            print(progress_line(phase, count, total, began), end="", file=out, flush=True)
            if finished():
                print(file=out)
                return True
            if time.monotonic() > deadline:
                print(file=out)
                return False
            time.sleep(0.5)

    if info.get("index_sent") != "1":
        indexed = {int(n) for n in rt.redis.smembers(batch.part(run, "indexed"))}
        for number in range(chunks):
            if number not in indexed:
                app.send_task(tasknames.RENDER_REBUILD_INDEX, args=[run, number])
        rt.redis.hset(batch.part(run, "meta"), "index_sent", 1)
    phase_began = time.monotonic()
    complete = wait("indexing", lambda: int(rt.redis.hget(batch.part(run, "meta"), "indexed_articles") or 0),
                    lambda: rt.redis.scard(batch.part(run, "indexed")) >= chunks)
    phases = {"indexing_s": round(time.monotonic() - phase_began, 1)}
    phase_began = time.monotonic()
    if complete and info.get("pages_sent") != "1":
        mark_everything(rt)
        app.send_task(tasknames.SITE_BUILD, kwargs={"rebuild": run})
        rendered = {int(n) for n in rt.redis.smembers(batch.part(run, "rendered"))}
        for number in range(chunks):
            if number not in rendered:
                app.send_task(tasknames.RENDER_REBUILD_PAGES, args=[run, number])
        rt.redis.hset(batch.part(run, "meta"), "pages_sent", 1)
    if complete:
        complete = wait("rendering", lambda: rt.redis.scard(batch.part(run, "done")),
                        lambda: rt.redis.scard(batch.part(run, "done")) >= total
                        and rt.redis.hget(batch.part(run, "meta"), "site_done") == b"1")
    if complete:
        phases["rendering_s"] = round(time.monotonic() - phase_began, 1)
    counts = {k.decode(): int(v) for k, v in rt.redis.hgetall(keys.rebuild_progress(run)).items()}
    final = meta(rt, run)
    counts["total"] = total
    counts["seconds"] = round(time.monotonic() - started, 1)
    counts["run"] = run
    counts["complete"] = complete
    counts["render_cpu_s"] = round(float(final.get("render_cpu_s", 0)), 2)
    counts["site_cpu_s"] = round(float(final.get("site_cpu_s", 0)), 2)
    counts.update(phases)  # wall seconds this command waited on each phase
    if complete:
        finish_run(rt, run)
    return counts


def finish_run(rt: Runtime, run: str) -> None:
    """The run is over: a new `rebuild` starts afresh; its records stay a day for operators."""
    pipe = rt.redis.pipeline(transaction=False)
    pipe.delete(keys.REBUILD_ACTIVE)
    for name in ("meta", "chunks", "done", "indexed", "rendered"):
        pipe.expire(batch.part(run, name), 24 * 3600)
    pipe.expire(keys.rebuild_progress(run), 24 * 3600)
    pipe.execute()
