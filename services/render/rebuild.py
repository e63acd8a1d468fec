"""`pressroom rebuild`, batch-first: index the whole corpus, then render every page exactly once.

A rebuild knows every article it will render. Sent as one ordinary task per article, each
would index its article, render the page with lists that later articles then change, and
queue re-renders of its neighbours (9,787 renders for 5,000 articles). Instead a rebuild
runs in two phases over chunks of about 100 articles, each chunk one task on the render pool:

1. index (`index_chunk`): read the chunk's stored documents on a bounded thread pool,
   process photos, claim paths, put every article into the related index and the site
   index (a pipeline each), and keep what phase 2 needs in a compressed, expiring Redis
   hash, so no document is read or validated twice.
2. pages (`render_chunk`), once every chunk is indexed: the related, editor's choice and
   popular lists are now final, so each page is rendered once with them, uploaded by the
   thread pool of `upload.BatchUploader` and its state finished, `SUB_BATCH` at a time,
   with the Redis work of each step pipelined. One sub-batch's pages upload while the
   next one's lists are queried and its pages rendered.

Meanwhile one site build (on the `site` pool) draws every list, feed and sitemap from the
site index, which phase 1 completed.

Resumable and idempotent: the run, its chunks and what is done live in Redis
(`keys.rebuild_run`). Chunk tasks are acked late, so a killed worker's chunk runs again;
it skips the articles this run already finished (the `done` set, and the `rebuild` field
that `finish` writes in the same script as the state), and the MD5 marks keep it from
writing pages already written. Articles whose lease someone else holds (a live publish),
or whose state is not a plain publish (withdrawal, embargo, a newer version since phase
1), go to the ordinary per-article task instead, which counts for the run's progress too.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from services.render import lists
from services.render.pages import SiteContext, article_page
from services.render.photos import model as photo_model
from services.render.publish import (
    PermanentFailure,
    featured_photo,
    mark_failed,
    next_action,
    parse_document,
    public_paths,
    publication_event,
    published_fields,
    thumbnail,
)
from services.render.related import RelatedIndex, related_doc_from_article
from services.render.site_index import SiteIndex, card
from services.render.upload import BatchUploader, Writes
from shared import keys
from shared.locks import leases
from shared.ninjs import Article, article_from_json, article_to_json
from shared.runtime import Runtime

log = logging.getLogger("pressroom.render")

CHUNK = 100
SUB_BATCH = 25  # pages rendered, uploaded and finished together; a killed chunk redoes at most two
CACHE_TTL = 24 * 3600
RUN_TTL = 7 * 24 * 3600
FALLBACK = "_fallback"  # field of a chunk's cache: ids handed to the per-article task in phase 1

SendArticle = Callable[[str, int], None]  # queue the ordinary forced render task (with the run)
Notify = Callable[[list[dict]], None]  # article events, sent in one message

# KEYS: a set, a hash; ARGV: ttl, then member, field, amount triples. Count each member once, ever.
# Keys this creates live RUN_TTL, as the run does: an abandoned run's records do not stay forever.
_ONCE = """
local added = 0
for i = 2, #ARGV, 3 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return added
"""


def part(run: str, name: str) -> str:
    return keys.rebuild_run(run, name)


def record(rt: Runtime, run: str, outcomes: list[tuple[str, str]]) -> int:
    """Count each article's outcome for the run once, however often its work is redone."""
    if not outcomes:
        return 0
    args = [x for aid, outcome in outcomes for x in (aid, outcome, 1)]
    return int(rt.redis.register_script(_ONCE)(keys=[part(run, "done"), keys.rebuild_progress(run)],
                                                args=[RUN_TTL, *args]))


def _chunk_done(rt: Runtime, run: str, phase: str, number: int, articles: int) -> None:
    rt.redis.register_script(_ONCE)(keys=[part(run, phase), part(run, "meta")],
                                    args=[RUN_TTL, number, f"{phase}_articles", articles])


def chunk_ids(rt: Runtime, run: str, number: int) -> list[str]:
    raw = rt.redis.hget(part(run, "chunks"), number)
    return json.loads(raw) if raw else []


def _pending(rt: Runtime, run: str, aids: list[str]) -> list[str]:
    """The ids this run has not finished yet."""
    if not aids:
        return []
    done = rt.redis.smismember(part(run, "done"), aids)
    return [aid for aid, seen in zip(aids, done, strict=True) if not seen]


def _states(rt: Runtime, aids: list[str]) -> dict[str, dict]:
    pipe = rt.redis.pipeline(transaction=False)
    for aid in aids:
        pipe.hgetall(keys.article_state(aid))
    return {
        aid: {k.decode(): v.decode() for k, v in raw.items()}
        for aid, raw in zip(aids, pipe.execute(), strict=True)
    }


def _plain_publish(state: dict) -> bool:
    """A state the batch can publish: what the per-article task, forced, would publish (not withdrawn or embargoed)."""
    return next_action(state, int(state["version"]), force=True) == "publish"


@dataclass
class Loaded:
    aid: str
    version: int
    doc_key: str
    raw: bytes
    article: Article | None = None


def _fetch(rt: Runtime, items: list[Loaded]) -> Iterator[tuple[Loaded, Exception | None]]:
    """Read the stored documents on a bounded thread pool on the one boto3 client."""
    store = rt.data  # created here, in this thread: boto3 client creation is not thread-safe

    def get(item: Loaded) -> tuple[Loaded, Exception | None]:
        try:
            item.raw = store.get(item.doc_key).body
        except FileNotFoundError:
            return item, PermanentFailure(f"stored document {item.doc_key} is missing")
        except Exception as exc:  # noqa: BLE001 - raised by the caller, in its own thread
            return item, exc
        return item, None

    with ThreadPoolExecutor(rt.settings.s3_concurrency, thread_name_prefix="rebuild-get") as pool:
        yield from pool.map(get, items)


def index_chunk(rt: Runtime, run: str, number: int, send: SendArticle) -> dict[str, int]:
    """Phase 1 for one chunk: documents read, photos, paths, related and site index, cache written."""
    if rt.redis.sismember(part(run, "indexed"), number):
        return {"skipped": 1}
    aids = _pending(rt, run, chunk_ids(rt, run, number))
    fallback: list[tuple[str, int]] = []
    failed: list[tuple[str, int, str]] = []
    missing: list[str] = []
    cache: dict[str, bytes] = {}
    with leases(rt.redis, [keys.article_lock(aid) for aid in aids], owner=f"rebuild:{run}:index:{number}") as held:
        states = _states(rt, aids)
        todo: list[Loaded] = []
        for aid in aids:
            state = states[aid]
            if not state:
                missing.append(aid)
            elif keys.article_lock(aid) not in held or not _plain_publish(state):
                fallback.append((aid, int(state["version"])))
            else:
                todo.append(Loaded(aid, int(state["version"]), state["doc_key"], b""))
        loaded: list[Loaded] = []
        related = RelatedIndex(rt.redis)
        docs, analyses, photo_work = [], [], []
        # each document is parsed, analysed and its photo started as it arrives, while the rest are read
        with ThreadPoolExecutor(rt.settings.s3_concurrency, thread_name_prefix="rebuild-photo") as pool:
            for item, error in _fetch(rt, todo):
                if isinstance(error, PermanentFailure):
                    failed.append((item.aid, item.version, str(error)))
                elif error is not None:
                    raise error
                else:
                    try:
                        item.article = parse_document(item.doc_key, item.raw)
                    except PermanentFailure as exc:
                        failed.append((item.aid, item.version, str(exc)))
                        continue
                    loaded.append(item)
                    photo_work.append(pool.submit(featured_photo, rt, item.article))
                    docs.append(related_doc_from_article(item.article))
                    analyses.append(related.analyse(docs[-1]))
            photos = [future.result() for future in photo_work]
        paths = public_paths(rt, [(states[item.aid], item.article) for item in loaded])
        related.upsert_many(docs, analyses)
        entries = []
        for item, photo, (path, url) in zip(loaded, photos, paths, strict=True):
            entries.append((item.article, card(item.article, url, path, thumbnail(photo))))
            cache[item.aid] = zlib.compress(json.dumps({
                "version": item.version, "doc_key": item.doc_key, "path": path, "url": url,
                "photo": photo_model.dumps(photo) if photo else None, "article": article_to_json(item.article),
            }, separators=(",", ":")).encode(), 1)
        SiteIndex(rt.redis).add_many(entries)
        cache[FALLBACK] = json.dumps([aid for aid, _ in fallback]).encode()
        pipe = rt.redis.pipeline()
        pipe.hset(part(run, f"cache:{number}"), mapping=cache)
        pipe.expire(part(run, f"cache:{number}"), CACHE_TTL)
        pipe.execute()
    for aid, version, reason in failed:
        mark_failed(rt, aid, version, reason)
        log.error("rebuild %s: %s failed: %s", run, aid, reason)
    record(rt, run, [(aid, "failed") for aid, _, _ in failed] + [(aid, "missing") for aid in missing])
    for aid, version in fallback:
        send(aid, version)
    _chunk_done(rt, run, "indexed", number, len(aids))
    return {"indexed": len(loaded), "failed": len(failed), "fallback": len(fallback)}


@dataclass
class Job:
    aid: str
    version: int
    record: dict
    state: dict
    article: Article | None = None


def render_chunk(rt: Runtime, run: str, number: int, send: SendArticle, notify: Notify) -> dict[str, float]:
    """Phase 2 for one chunk: every page rendered once with its final lists, uploaded, finished."""
    if rt.redis.sismember(part(run, "rendered"), number):
        return {"skipped": 1}
    cache_key = part(run, f"cache:{number}")
    cached = rt.redis.hgetall(cache_key)
    handed_on = set(json.loads(cached.pop(FALLBACK.encode(), b"[]")))
    records = {aid.decode(): json.loads(zlib.decompress(raw)) for aid, raw in cached.items()}
    aids = [aid for aid in _pending(rt, run, chunk_ids(rt, run, number)) if aid not in handed_on]
    fallback: list[str] = []
    finished_before: list[str] = []
    cpu = 0.0
    with leases(rt.redis, [keys.article_lock(aid) for aid in aids], owner=f"rebuild:{run}:pages:{number}") as held:
        states = _states(rt, aids)
        jobs: list[Job] = []
        for aid in aids:
            state, rec = states[aid], records.get(aid)
            if state.get("rebuild") == run and state.get("published_version") == state.get("version"):
                finished_before.append(aid)  # finished by this chunk's earlier, killed run
            elif (rec is None or "article" not in rec or keys.article_lock(aid) not in held or not state
                  or not _plain_publish(state)
                  or int(state["version"]) != rec["version"] or state.get("doc_key") != rec["doc_key"]):
                # changed since phase 1, held by a live render, or its cache expired (or is a release's before)
                fallback.append(aid)
            else:
                jobs.append(Job(aid, rec["version"], rec, state))
        choice = lists.editors_choice_cards(rt, k=lists.LIST_SIZE + 1)
        popular = lists.popular_cards(rt, k=lists.LIST_SIZE + 1)
        uploader = BatchUploader(rt, batch=SUB_BATCH * 2)
        try:
            # each sub-batch's pages upload while the next one's lists are queried and its
            # pages rendered, so S3 is kept busy; a sub-batch is finished once its pages are up
            def settle(done: list[Job], writes: Writes) -> None:
                writes.wait()
                _finish(rt, run, done, notify)

            under_way: tuple[list[Job], Writes] | None = None
            for start in range(0, len(jobs), SUB_BATCH):
                batch = jobs[start:start + SUB_BATCH]
                shown = _related_lists(rt, [job.aid for job in batch])
                lists.remember_related_many(rt, {aid: [c["id"] for c in cards] for aid, cards in shown.items()})
                began = time.thread_time()
                pages = [_page(rt, job, shown[job.aid], choice, popular) for job in batch]
                cpu += time.thread_time() - began
                for job, html in zip(batch, pages, strict=True):
                    uploader.put(keys.page_key(job.record["path"]), html)
                writes = uploader.start()
                if under_way is not None:
                    settle(*under_way)
                under_way = (batch, writes)
            if under_way is not None:
                settle(*under_way)
            uploader.flush()
        finally:
            uploader.close()
    record(rt, run, [(aid, "published") for aid in finished_before])
    for aid in fallback:
        state = states.get(aid) or {}
        if state:
            send(aid, int(state["version"]))
        else:
            record(rt, run, [(aid, "missing")])
    rt.redis.hincrbyfloat(part(run, "meta"), "render_cpu_s", cpu)
    _chunk_done(rt, run, "rendered", number, len(aids))
    rt.redis.delete(cache_key)
    return {"published": len(jobs), "fallback": len(fallback), "render_cpu_s": cpu}


def _related_lists(rt: Runtime, aids: list[str]) -> dict[str, list[dict]]:
    """Each page's related cards from the complete index: the chunk's queries batched, one HMGET for all cards."""
    found = RelatedIndex(rt.redis).query_many(aids, lists.LIST_SIZE * 2)
    ids = {aid: [i for i in found[aid] if i != aid] for aid in aids}
    wanted = sorted({i for found in ids.values() for i in found})
    cards = {c["id"]: c for c in SiteIndex(rt.redis).cards(wanted)}
    return {aid: [cards[i] for i in found if i in cards][:lists.LIST_SIZE] for aid, found in ids.items()}


def _page(rt: Runtime, job: Job, related: list[dict], choice: list[dict], popular: list[dict]) -> str:
    rec = job.record
    job.article = article = article_from_json(rec["article"])
    photo = photo_model.loads(rec["photo"], rt.settings.site_url) if rec["photo"] else None
    site = SiteContext(
        site_url=rt.settings.site_url,
        api_url=rt.settings.public_api_url,
        related=related,
        editors_choice=[c for c in choice if c["id"] != job.aid][:lists.LIST_SIZE],
        popular=[c for c in popular if c["id"] != job.aid][:lists.LIST_SIZE],
    )
    return article_page(article, rec["path"], site, photo)


def _finish(rt: Runtime, run: str, batch: list[Job], notify: Notify) -> None:
    """Tell subscribers of what is new, then record it: a kill in between repeats the event, never loses it
    (subscribers' deliveries are keyed by article, version and event type, so a repeat delivers nothing)."""
    events = [publication_event(job.state, job.version, job.article, job.record["url"]) for job in batch]
    if any(events):
        notify([event for event in events if event is not None])
    rt.articles.finish_many([
        (job.aid, job.version, "published", "published",
         {**published_fields(job.state, job.version, job.record["path"], job.record["url"]), "rebuild": run})
        for job in batch
    ])
    record(rt, run, [(job.aid, "published") for job in batch])


def give_up_chunk(rt: Runtime, run: str, phase: str, number: int, send: SendArticle) -> int:
    """A chunk task that cannot finish hands its unfinished articles to the per-article task, so none is lost."""
    aids = _pending(rt, run, chunk_ids(rt, run, number))
    cache_key = part(run, f"cache:{number}")
    if phase == "indexed":
        rt.redis.hset(cache_key, FALLBACK, json.dumps(aids))
        rt.redis.expire(cache_key, CACHE_TTL)
    else:
        already = set(json.loads(rt.redis.hget(cache_key, FALLBACK) or b"[]"))
        aids = [aid for aid in aids if aid not in already]
    states = _states(rt, aids)
    for aid in aids:
        if states[aid]:
            send(aid, int(states[aid]["version"]))
        else:
            record(rt, run, [(aid, "missing")])
    _chunk_done(rt, run, phase, number, len(aids))
    if phase == "rendered":
        rt.redis.delete(cache_key)  # this chunk is over: its documents are not needed again
    log.error("rebuild %s: chunk %d gave up in phase %s; %d articles go to the per-article task",
              run, number, phase, len(aids))
    return len(aids)

