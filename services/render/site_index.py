"""The site's index in Redis: a card per published article and the lists that show it.

Every site page (home, sections, topics, feeds, sitemaps) is rendered from these lists,
never from a scan of the article store. Adding or removing an article records which
pages it changed in a dirty hash; the coalesced site build renders just those.

Lists are sorted sets scored by publication time. Archive pages are numbered from the
oldest article, so a new article changes only the front page and the newest archive page.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared import keys
from shared.ninjs import Article
from shared.redis_text import text

PUBLISHED = keys.site_list("home")
CARDS = keys.SITE_CARDS
MEMBERSHIP = keys.SITE_MEMBERSHIP
TOPIC_NAMES = keys.SITE_TOPIC_NAMES
DIRTY = keys.SITE_DIRTY
BUILDING = keys.SITE_BUILDING
PAGE_SIZE = 20
EDITORS_CHOICE = "Editor's choice"

# KEYS: dirty, building: move every mark into building (keeping the smaller rank), return building
_TAKE = """
local marks = redis.call('HGETALL', KEYS[1])
for i = 1, #marks, 2 do
  local cur = redis.call('HGET', KEYS[2], marks[i])
  if (not cur) or tonumber(marks[i + 1]) < tonumber(cur) then redis.call('HSET', KEYS[2], marks[i], marks[i + 1]) end
end
redis.call('DEL', KEYS[1])
return redis.call('HGETALL', KEYS[2])
"""

# KEYS: dirty; ARGV: field, rank  (keep the smallest changed rank per field)
_MARK = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or tonumber(ARGV[2]) < tonumber(cur) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Listing:
    """A list of articles with its own pages and feeds: home, a section, a topic, a collection."""

    name: str  # redis list name: "home", "section:news", "topic:defence", "collection:editors-choice"
    title: str
    path: str  # public path prefix: "" for home, "section/news", "topic/defence"

    @property
    def key(self) -> str:
        return keys.site_list(self.name)


HOME = Listing("home", "Latest news", "")


def listing_for(name: str, title: str) -> Listing:
    kind, _, slug = name.partition(":")
    return Listing(name, title, "" if kind == "home" else f"{kind}/{slug}")


def article_listings(article: Article) -> list[Listing]:
    """Home, its section, and one topic page per subject/place/person/organisation."""
    out = [HOME, listing_for(f"section:{keys.slugify(article.section)}", article.section)]
    for topic in article.topics:
        if topic.scheme == "section":
            continue
        if topic.scheme == "collection":
            out.append(listing_for(f"collection:{keys.slugify(topic.name)}", topic.name))
        else:
            out.append(listing_for(f"topic:{keys.slugify(topic.name)}", topic.name))
    seen: dict[str, Listing] = {}
    for listing in out:
        seen.setdefault(listing.name, listing)
    return list(seen.values())


def card(article: Article, url: str, path: str, photo: dict | None) -> dict:
    """What lists, feeds and sitemaps show of an article."""
    published = article.published_at.timestamp() if article.published_at else time.time()
    updated = article.versioncreated.timestamp() if article.versioncreated else published
    return {
        "id": article.id,
        "headline": article.headline,
        "summary": article.summary,
        "byline": article.byline,
        "url": url,
        "path": path,
        "language": article.language,
        "section": article.section,
        "section_path": f"section/{keys.slugify(article.section)}",
        "published": published,
        "updated": max(updated, published),
        "topics": [
            {"name": t.name, "path": f"topic/{keys.slugify(t.name)}"}
            for t in article.topics
            if t.scheme not in ("section", "collection")
        ],
        "image": photo,
    }


class SiteIndex:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._mark = client.register_script(_MARK)
        self._take = client.register_script(_TAKE)

    def mark(self, field: str, rank: int = 0, pipe=None) -> None:
        self._mark(keys=[DIRTY], args=[field, rank], client=pipe or self.redis)

    def add(self, article: Article, entry: dict) -> None:
        """Put (or refresh) an article in all its lists and mark the pages that change."""
        aid = article.id
        listings = article_listings(article)
        old = {text(m) for m in self.redis.smembers(MEMBERSHIP + aid)}
        previous = self.redis.hget(CARDS, aid)
        names = {lst.name for lst in listings}
        if previous is not None and old == names and json.loads(previous) == entry:
            return  # a forced re-render of an unchanged article changes no list
        for name in old - names:
            self._remove_from(aid, name)
        # three round trips whatever the number of lists: ranks before, move, ranks after
        pipe = self.redis.pipeline(transaction=False)
        for listing in listings:
            pipe.zrank(listing.key, aid)
        before = pipe.execute()
        pipe = self.redis.pipeline()
        pipe.hset(TOPIC_NAMES, mapping={listing.name: listing.title for listing in listings})
        for listing in listings:
            pipe.zadd(listing.key, {aid: entry["published"]})
        for listing in listings:
            pipe.zrank(listing.key, aid)
        pipe.hset(CARDS, aid, json.dumps(entry, separators=(",", ":")))
        pipe.delete(MEMBERSHIP + aid)
        pipe.sadd(MEMBERSHIP + aid, *names)
        after = pipe.execute()[1 + len(listings) : 1 + 2 * len(listings)]
        pipe = self.redis.pipeline(transaction=False)
        for listing, was, now in zip(listings, before, after, strict=True):
            self.mark(f"list:{listing.name}", min(r for r in (was, now) if r is not None), pipe=pipe)
        pipe.execute()
        self._mark_feeds_and_sitemaps(entry, previous)

    def add_many(self, items: list[tuple[Article, dict]]) -> None:
        """`add` for a batch (a rebuild), in two round trips and without dirty marks.

        The same lists, cards and memberships as `add` for each (article, card) pair; the
        caller marks the pages itself, as a rebuild marks every list, feed and sitemap.
        """
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for article, _ in items:
            pipe.smembers(MEMBERSHIP + article.id)
        olds = pipe.execute()
        pipe = self.redis.pipeline()
        for (article, entry), old in zip(items, olds, strict=True):
            aid = article.id
            listings = article_listings(article)
            names = {lst.name for lst in listings}
            for name in {text(m) for m in old} - names:
                pipe.zrem(keys.site_list(name), aid)
            pipe.hset(TOPIC_NAMES, mapping={listing.name: listing.title for listing in listings})
            for listing in listings:
                pipe.zadd(listing.key, {aid: entry["published"]})
            pipe.hset(CARDS, aid, json.dumps(entry, separators=(",", ":")))
            pipe.delete(MEMBERSHIP + aid)
            pipe.sadd(MEMBERSHIP + aid, *names)
        pipe.execute()

    def remove(self, aid: str) -> None:
        """Take a withdrawn article out of every list, feed and sitemap."""
        previous = self.redis.hget(CARDS, aid)
        for name in {text(m) for m in self.redis.smembers(MEMBERSHIP + aid)}:
            self._remove_from(aid, name)
        self.redis.delete(MEMBERSHIP + aid)
        self.redis.hdel(CARDS, aid)
        if previous:
            self._mark_feeds_and_sitemaps(None, previous)

    def _remove_from(self, aid: str, name: str) -> None:
        lkey = keys.site_list(name)
        rank = self.redis.zrank(lkey, aid)
        if rank is not None:
            self.redis.zrem(lkey, aid)
            self.mark(f"list:{name}", rank)

    def _mark_feeds_and_sitemaps(self, entry: dict | None, previous: bytes | None) -> None:
        months = set()
        for item in (entry, json.loads(previous) if previous else None):
            if item:
                months.add(time.strftime("%Y-%m", time.gmtime(item["published"])))
        for month in months:
            self.mark(f"sitemap:{month}")
        for field in ("sitemap-index", "sitemap-news", "sitemap-pages", "robots"):
            self.mark(field)

    # reading
    def cards(self, aids: list[str]) -> list[dict]:
        if not aids:
            return []
        return [json.loads(c) for c in self.redis.hmget(CARDS, aids) if c]

    def newest(self, listing: Listing, count: int, offset: int = 0) -> list[dict]:
        aids = [text(a) for a in self.redis.zrevrange(listing.key, offset, offset + count - 1)]
        return self.cards(aids)

    def size(self, listing: Listing) -> int:
        return self.redis.zcard(listing.key)

    def archive_page(self, listing: Listing, number: int) -> list[dict]:
        """Page `number` (1 = oldest) of the archive, newest first within the page."""
        start = (number - 1) * PAGE_SIZE
        aids = [text(a) for a in self.redis.zrange(listing.key, start, start + PAGE_SIZE - 1)]
        return list(reversed(self.cards(aids)))

    def archive_pages(self, listing: Listing, numbers: list[int]) -> dict[int, list[dict]]:
        """`archive_page` for many pages in two round trips (a rebuild redraws every archive page)."""
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            start = (number - 1) * PAGE_SIZE
            pipe.zrange(listing.key, start, start + PAGE_SIZE - 1)
        pages = [[text(a) for a in aids] for aids in pipe.execute()] if numbers else []
        wanted = [aid for aids in pages for aid in aids]
        cards = {c["id"]: c for c in self.cards(wanted)}
        return {n: [cards[a] for a in reversed(aids) if a in cards] for n, aids in zip(numbers, pages, strict=True)}

    def title(self, name: str) -> str:
        value = self.redis.hget(TOPIC_NAMES, name)
        return text(value) if value else name.partition(":")[2]

    def listings(self, kind: str) -> list[Listing]:
        names = [text(n) for n in self.redis.hkeys(TOPIC_NAMES) if text(n).startswith(f"{kind}:")]
        return [listing_for(n, self.title(n)) for n in sorted(names) if self.redis.zcard(keys.site_list(n))]

    def published_between(self, start: float, end: float, newest_only: bool = False) -> list[dict]:
        if newest_only:
            aids = [text(a) for a in self.redis.zrevrangebyscore(PUBLISHED, end, start, start=0, num=1)]
        else:
            aids = [text(a) for a in self.redis.zrangebyscore(PUBLISHED, start, end)]
        return self.cards(aids)

    def months(self) -> list[str]:
        first = self.redis.zrange(PUBLISHED, 0, 0, withscores=True)
        last = self.redis.zrevrange(PUBLISHED, 0, 0, withscores=True)
        if not first:
            return []
        out, (y, m) = [], time.gmtime(first[0][1])[:2]
        end = time.gmtime(last[0][1])[:2]
        while (y, m) <= end:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    def take_dirty(self) -> dict[str, int]:
        """Take every dirty mark, plus those of a build that died before finishing.

        Marks move to a `building` hash rather than vanish, so a build process killed halfway
        leaves them for the next build; `done_building` drops them once the pages are up.
        New marks start afresh in the dirty hash meanwhile.
        """
        flat = self._take(keys=[DIRTY, BUILDING])
        return {text(flat[i]): int(text(flat[i + 1])) for i in range(0, len(flat), 2)}

    def done_building(self) -> None:
        self.redis.delete(BUILDING)

    def restore_dirty(self, marks: dict[str, int]) -> None:
        """Put marks back after a failed build so nothing is forgotten."""
        pipe = self.redis.pipeline(transaction=False)
        for field, rank in marks.items():
            self.mark(field, rank, pipe=pipe)
        pipe.delete(BUILDING)
        pipe.execute()
