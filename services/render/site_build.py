"""The coalesced site build: render the shared pages that the dirty marks name, once.

Publishing N articles in a burst marks the home page dirty N times but queues at most one
build at a time (`request_build`), and each build renders every dirty page once from the
index as it is then. Builds run one at a time under a lock, so the last upload of a page
always comes from the newest index state; marks taken by a build that fails are put back.
Builds run on their own `site` queue and pool, so the home page never waits behind a
backlog of article renders, and a build's uploads go out on a bounded thread pool
(`upload.BatchUploader`).

A build stops at its time budget (half the task time limit) and puts back the marks it
did not reach, a half-drawn listing with the rank of its first page not written, so the
next build continues where it stopped. A big site (a rebuild marks every archive page of
every list) is drawn by a few builds in turn instead of one that the time limit kills and
that restarts from the beginning every time.
"""

from __future__ import annotations

import calendar
import logging
import math
import time
from collections.abc import Callable

from services.render import lists, site_pages
from services.render.pages import SiteContext
from services.render.site_index import HOME, PAGE_SIZE, TOPIC_NAMES, SiteIndex, listing_for
from services.render.upload import BatchUploader, Uploader
from shared import keys
from shared.locks import LeaseBusy, lease
from shared.runtime import Runtime

log = logging.getLogger("pressroom.render")

BUILD_QUEUED = keys.SITE_BUILD_QUEUED
BUILD_LOCK = keys.SITE_BUILD_LOCK
PAGE_COUNTS = keys.SITE_PAGE_COUNTS
FEED_SIZE = 20
NEWS_WINDOW = 2 * 24 * 3600
LIST_CACHE = "public, max-age=30"


class BuildBusy(Exception):
    """Another build holds the lock; the task retries shortly."""


def request_build(rt: Runtime, send: Callable[[], None]) -> bool:
    """Queue one site build unless one is already queued; True if this call queued it."""
    if rt.redis.set(BUILD_QUEUED, "1", nx=True, ex=120):
        try:
            send()
        except Exception:
            rt.redis.delete(BUILD_QUEUED)
            raise
        return True
    return False


def build(rt: Runtime, rerender: Callable[[list[str]], None], budget: float | None = None) -> dict[str, int]:
    """Render the dirty pages for up to `budget` seconds; `rerender` queues article pages whose lists changed.

    The answer's `left` counts the marks put back for the next build (0: all done).
    """
    budget = rt.settings.task_time_limit / 2 if budget is None else budget
    try:
        with lease(rt.redis, BUILD_LOCK, wait=1):  # never hold a worker process just to wait
            return _build(rt, rerender, time.monotonic() + budget)
    except LeaseBusy:
        raise BuildBusy() from None


def _build(rt: Runtime, rerender: Callable[[list[str]], None], deadline: float) -> dict[str, int]:
    rt.redis.delete(BUILD_QUEUED)
    index = SiteIndex(rt.redis)
    marks = index.take_dirty()
    if not marks:
        return {"pages": 0, "uploaded": 0, "left": 0}
    uploader = BatchUploader(rt)
    try:
        try:
            began = time.thread_time()
            articles, left = _build_marks(rt, index, uploader, marks, deadline)
            cpu = time.thread_time() - began  # rendering and its Redis reads; the uploads run on the pool
            uploader.commit()
        except Exception:
            index.restore_dirty(marks)
            raise
        if articles:
            rerender(articles)
        if left:
            index.restore_dirty(left)
        else:
            index.done_building()
        changed = uploader.flush()
    finally:
        uploader.close()
    log.info("site build: %d marks, %d objects changed, %d marks left for the next build",
             len(marks) - len(left), len(changed), len(left))
    return {"pages": len(marks) - len(left), "uploaded": len(changed), "cpu_s": round(cpu, 3), "left": len(left)}


def _build_marks(rt: Runtime, index: SiteIndex, uploader: Uploader, marks: dict[str, int],
                 deadline: float = math.inf) -> tuple[list[str], dict[str, int]]:
    """Build marks in order until the deadline; returns the article marks and the marks left over."""
    site = SiteContext(site_url=rt.settings.site_url)
    titles = {k.decode(): v.decode() for k, v in rt.redis.hgetall(TOPIC_NAMES).items()}
    articles = []
    ordered = sorted(marks.items(), key=_build_order)
    for done, (field, rank) in enumerate(ordered):
        if done and time.monotonic() > deadline:  # the first mark always runs: every build moves on
            return articles, dict(ordered[done:])
        kind, _, name = field.partition(":")
        if kind == "list":
            resume = build_listing(rt, index, uploader, site, name, rank, titles.get(name), deadline)
            if resume is not None:
                return articles, {field: resume, **dict(ordered[done + 1:])}
            if name.startswith("collection:") and "lists" not in marks:
                publish_lists(rt, uploader)
        elif kind == "sitemap":
            build_month_sitemap(index, uploader, site, name)
        elif kind == "sitemap-index":
            build_sitemap_index(index, uploader, site)
        elif kind == "sitemap-news":
            build_news_sitemap(index, uploader, site)
        elif kind == "sitemap-pages":
            build_pages_sitemap(index, uploader, site)
        elif kind == "robots":
            uploader.put("robots.txt", site_pages.robots(site))
        elif kind == "lists":
            publish_lists(rt, uploader)
        elif kind == "article":
            articles.append(name)
    return articles, {}


ORDER = ("list", "sitemap", "sitemap-news", "sitemap-pages", "sitemap-index", "robots", "lists", "article")


def _build_order(item: tuple[str, int]) -> tuple[int, str]:
    """Sitemaps after the lists; the sitemap index after the sitemaps it names."""
    kind = item[0].partition(":")[0]
    return (ORDER.index(kind) if kind in ORDER else len(ORDER), item[0])


ARCHIVE_BATCH = 50  # archive pages read per pipeline


def build_listing(rt: Runtime, index: SiteIndex, uploader: Uploader, site: SiteContext, name: str, rank: int,
                  title: str | None = None, deadline: float = math.inf) -> int | None:
    """Front page, feeds and the archive pages from `rank` on; past the deadline, the rank to continue from."""
    listing = HOME if name == "home" else listing_for(name, title or index.title(name))
    pipe = rt.redis.pipeline(transaction=False)
    pipe.zcard(listing.key)
    pipe.hget(PAGE_COUNTS, name)
    pipe.zrevrange(listing.key, 0, max(PAGE_SIZE, FEED_SIZE) - 1)
    total, previous, newest_ids = pipe.execute()
    page_count = math.ceil(total / PAGE_SIZE)
    previous = int(previous or 0)
    keys_ = site_pages.listing_keys(listing)
    if total == 0 and listing is not HOME:
        for key in keys_.values():
            uploader.delete(key)
    else:
        newest = index.cards([a.decode() for a in newest_ids])
        uploader.put(keys_["front"], site_pages.listing_page(site, listing, newest[:PAGE_SIZE], None, page_count))
        uploader.put(keys_["rss"], site_pages.rss_feed(site, listing, newest[:FEED_SIZE]))
        uploader.put(keys_["atom"], site_pages.atom_feed(site, listing, newest[:FEED_SIZE]))
    first = max(1, rank // PAGE_SIZE + 1)
    numbers = list(range(min(first, max(page_count, 1)), page_count + 1))
    for start in range(0, len(numbers), ARCHIVE_BATCH):
        if start and time.monotonic() > deadline:
            return (numbers[start] - 1) * PAGE_SIZE  # the page count is recorded once the listing is whole
        for number, items in index.archive_pages(listing, numbers[start:start + ARCHIVE_BATCH]).items():
            uploader.put(site_pages.archive_key(listing, number),
                         site_pages.listing_page(site, listing, items, number, page_count))
    for number in range(page_count + 1, previous + 1):
        uploader.delete(site_pages.archive_key(listing, number))
    rt.redis.hset(PAGE_COUNTS, name, page_count)
    return None


def _month_bounds(month: str) -> tuple[float, float]:
    year, mon = (int(x) for x in month.split("-"))
    ny, nm = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return calendar.timegm((year, mon, 1, 0, 0, 0)), calendar.timegm((ny, nm, 1, 0, 0, 0)) - 0.001


def month_sitemap_key(month: str) -> str:
    return f"sitemaps/articles-{month}.xml"


def build_month_sitemap(index: SiteIndex, uploader: Uploader, site: SiteContext, month: str) -> None:
    items = index.published_between(*_month_bounds(month))
    if not items:
        uploader.delete(month_sitemap_key(month))
        return
    entries = [{"loc": i["url"], "lastmod": i["updated"]} for i in items]
    uploader.put(month_sitemap_key(month), site_pages.sitemap(entries))


def build_news_sitemap(index: SiteIndex, uploader: Uploader, site: SiteContext) -> None:
    now = time.time()
    items = [i for i in index.published_between(now - NEWS_WINDOW, now + 60)][-1000:]
    if items:
        uploader.put("sitemaps/news.xml", site_pages.news_sitemap(site, items))
    else:
        uploader.delete("sitemaps/news.xml")
    index.redis.hset(PAGE_COUNTS, "news-sitemap", len(items))


def build_pages_sitemap(index: SiteIndex, uploader: Uploader, site: SiteContext) -> None:
    """Home, every section and every topic with its newest article's time; three round trips for them all."""
    titles = {k.decode(): v.decode() for k, v in index.redis.hgetall(TOPIC_NAMES).items()}
    names = sorted(n for n in titles if n.startswith(("section:", "topic:")))
    listings = [HOME, *(listing_for(n, titles[n]) for n in names if n.startswith("section:")),
                *(listing_for(n, titles[n]) for n in names if n.startswith("topic:"))]
    pipe = index.redis.pipeline(transaction=False)
    for listing in listings:
        pipe.zrevrange(listing.key, 0, 0)
    newest = [ids[0].decode() if ids else None for ids in pipe.execute()]
    cards = {c["id"]: c for c in index.cards([i for i in newest if i])}
    entries = []
    for listing, aid in zip(listings, newest, strict=True):
        if listing is not HOME and aid is None:
            continue  # an empty section or topic has no page
        lastmod = cards[aid]["updated"] if aid in cards else None
        entries.append({"loc": site_pages.url_of(site, listing.path), "lastmod": lastmod})
    uploader.put("sitemaps/pages.xml", site_pages.sitemap(entries))


def build_sitemap_index(index: SiteIndex, uploader: Uploader, site: SiteContext) -> None:
    sitemaps = [{"loc": site_pages.file_url(site, "sitemaps/pages.xml"), "lastmod": None}]
    for month in index.months():
        newest = index.published_between(*_month_bounds(month), newest_only=True)
        if newest:
            loc = site_pages.file_url(site, month_sitemap_key(month))
            sitemaps.append({"loc": loc, "lastmod": newest[0]["updated"]})
    if int(index.redis.hget(PAGE_COUNTS, "news-sitemap") or 0):
        sitemaps.append({"loc": site_pages.file_url(site, "sitemaps/news.xml"), "lastmod": None})
    uploader.put("sitemap.xml", site_pages.sitemap_index(sitemaps))


def publish_lists(rt: Runtime, uploader: Uploader) -> None:
    """lists/*.json, which article pages read to keep Popular and Editor's choice current."""
    size = lists.LIST_SIZE + 1  # a page drops its own article
    uploader.put("lists/editors-choice.json", lists.list_json(lists.editors_choice_cards(rt, k=size)),
                 cache_control=LIST_CACHE)
    uploader.put("lists/popular.json", lists.list_json(lists.popular_cards(rt, k=size)), cache_control=LIST_CACHE)
