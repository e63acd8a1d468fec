"""The three lists on an article page: related articles, editor's choice, popular.

Each returns cards of published articles (the site index's cards), never the page's own
article. Pages embed them at render; editor's choice and popular are also published as
JSON (`lists/*.json`) that the page script reads, so a change to them never needs every
page re-rendered.
"""

from __future__ import annotations

import json

from services.render.related import RelatedIndex
from services.render.site_index import EDITORS_CHOICE, SiteIndex, listing_for
from shared import keys
from shared.runtime import Runtime

LIST_SIZE = 5
EDITORS_CHOICE_SLUG = keys.slugify(EDITORS_CHOICE)
SHOWS = keys.RELATED_SHOWS
SHOWN_IN = keys.RELATED_SHOWN_IN


def related_cards(rt: Runtime, aid: str, k: int = LIST_SIZE) -> list[dict]:
    """The engine's best matches that are still published, best first."""
    ids = RelatedIndex(rt.redis).query(aid, k * 2)
    cards = [c for c in SiteIndex(rt.redis).cards([i for i in ids if i != aid])][:k]
    remember_related(rt, aid, [c["id"] for c in cards])
    return cards


def remember_related(rt: Runtime, aid: str, shown: list[str]) -> None:
    """Keep who lists whom, so a withdrawal re-renders exactly the pages that showed it."""
    remember_related_many(rt, {aid: shown})


def remember_related_many(rt: Runtime, shown: dict[str, list[str]]) -> None:
    """`remember_related` for a batch of pages (a rebuild) in two round trips, however many."""
    if not shown:
        return
    pipe = rt.redis.pipeline(transaction=False)
    for aid in shown:
        pipe.smembers(SHOWS + aid)
    befores = pipe.execute()
    pipe = rt.redis.pipeline()
    for (aid, ids), before in zip(shown.items(), befores, strict=True):
        for other in {m.decode() for m in before} - set(ids):
            pipe.srem(SHOWN_IN + other, aid)
        for other in ids:
            pipe.sadd(SHOWN_IN + other, aid)
        pipe.delete(SHOWS + aid)
        if ids:
            pipe.sadd(SHOWS + aid, *ids)
    pipe.execute()


def pages_showing(rt: Runtime, aid: str) -> list[str]:
    return sorted(m.decode() for m in rt.redis.smembers(SHOWN_IN + aid))


def forget_related(rt: Runtime, aid: str) -> None:
    remember_related(rt, aid, [])
    rt.redis.delete(SHOWN_IN + aid)


def editors_choice_cards(rt: Runtime, exclude: str = "", k: int = LIST_SIZE) -> list[dict]:
    """The curated order if editors set one, else articles tagged "Editor's choice", newest first."""
    index = SiteIndex(rt.redis)
    curated = [i.decode() for i in rt.redis.lrange(keys.collection(EDITORS_CHOICE_SLUG), 0, 50)]
    if curated:
        cards = index.cards(curated)
    else:
        cards = index.newest(listing_for(f"collection:{EDITORS_CHOICE_SLUG}", EDITORS_CHOICE), k + 1)
    return [c for c in cards if c["id"] != exclude][:k]


def popular_cards(rt: Runtime, exclude: str = "", k: int = LIST_SIZE) -> list[dict]:
    ids = [i.decode() for i in rt.redis.zrevrange(keys.POPULAR, 0, k * 3)]
    return [c for c in SiteIndex(rt.redis).cards(ids) if c["id"] != exclude][:k]


def list_json(cards: list[dict]) -> bytes:
    """The public JSON of a list: only what a page shows."""
    items = [{"id": c["id"], "headline": c["headline"], "url": c["url"]} for c in cards]
    return json.dumps({"items": items}, ensure_ascii=False, separators=(",", ":")).encode()
