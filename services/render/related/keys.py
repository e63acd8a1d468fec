"""The related index's Redis key layout: the one place (with the Lua in `lua.py`) that knows it.

Articles get a small integer number on indexing; posting lists hold numbers, not 21-character
article ids, which keeps the lists (most of the index's memory) compact.

    {prefix}:ids                    hash   article id -> number
    {prefix}:seq                    string last number handed out
    {prefix}:d:{number}             hash   the article's record: id, lang, ts, dl, v, u, sig, h
    {prefix}:stats:{lang}           hash   n (articles), len (sum of weighted lengths)
    {prefix}:df:{lang}              hash   term -> number of articles containing it
    {prefix}:m:{lang}               set    numbers of the language's articles (small languages are ranked whole)
    {prefix}:t:{lang}:{term}        zset   number -> the article's BM25 weight for the term

The query script derives `d:`, `df:`, `stats:` and `t:` names from the prefix itself (it
cannot know expansion terms in advance), so the index lives on one Redis node; it is not
laid out for Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def ids(self) -> str:
        return f"{self.prefix}:ids"

    def doc(self, number: int | str) -> str:
        return f"{self.prefix}:d:{number}"

    def stats(self, lang: str) -> str:
        return f"{self.prefix}:stats:{lang}"

    def df(self, lang: str) -> str:
        return f"{self.prefix}:df:{lang}"

    def members(self, lang: str) -> str:
        return f"{self.prefix}:m:{lang}"

    def posting(self, lang: str, term: str) -> str:
        return f"{self.prefix}:t:{lang}:{term}"

    @property
    def pattern(self) -> str:
        """Every key of this index, for SCAN when it is dropped."""
        return f"{self.prefix}:*"
