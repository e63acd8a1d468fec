"""Tokenising benchmark: what per-language Snowball stemming costs per article.

Every article of ../shared/data/dev_news.jsonl (title and body) is cut into index terms
the way `scoring.analyse` does it, several times over, with each stemmer set-up in turn:

    s-stemmer            English plural folding, the English analyser (the baseline)
    s-stemmer, terms     the same behind `terms_of`'s word -> term table: what indexing runs
    snowball C, cached   PyStemmer behind functools.lru_cache: what de/fr/es/it/pt/nl use
    snowball C           PyStemmer, no cache
    snowball py, cached  snowballstemmer's pure-Python stemmer behind the cache
    snowball py          pure Python, no cache

The data is English, so the Snowball rows run the English (Porter2) algorithm: the cost
of a Snowball stemmer on a newsroom's real vocabulary, which is what other languages pay.
Each figure is the best pass in ms per article, with its ratio to the s-stemmer row of
the same run; passes take every set-up in turn, so a busy machine slows them alike.
Cached rows start from an empty cache each pass, so they include the misses. Every row but
"terms" keeps `terms_of`'s table to one call (one title or body), so the stemmers are
compared on every word; "terms" keeps it across the pass, as a worker does.

    python bench/tokenizing.py [--passes 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snowballstemmer.english_stemmer import EnglishStemmer  # noqa: E402

from services.render.related import tokenize  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dev_news.jsonl"


def articles() -> list[tuple[str, str]]:
    if not DATA.exists():
        raise SystemExit(f"bench: {DATA} not found (the data set is never in the repository)")
    with open(DATA, encoding="utf-8") as fh:
        return [(r["title"], r["body"]) for r in map(json.loads, fh) if r]


def one_pass(docs: list[tuple[str, str]]) -> float:
    """Mean ms per article over every article, the caches emptied first."""
    getattr(tokenize.stem, "cache_clear", lambda: None)()
    tokenize._TERM_TABLES.clear()
    started = time.perf_counter()
    for title, body in docs:
        tokenize.terms_of(tokenize.words(title), "en")
        tokenize.terms_of(tokenize.words(tokenize.strip_dateline(body)), "en")
    return (time.perf_counter() - started) * 1000 / len(docs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    docs = articles()
    cached, uncached, native = tokenize.stem, tokenize.stem.__wrapped__, tokenize._snowball
    pure = EnglishStemmer()
    table = tokenize.TERM_CACHE
    setups = [
        ("s-stemmer", "s", cached, native, -1),
        ("s-stemmer, terms", "s", cached, native, table),
        ("snowball C, cached", "snowball", cached, native, -1),
        ("snowball C", "snowball", uncached, native, -1),
        ("snowball py, cached", "snowball", cached, lambda language: pure, -1),
        ("snowball py", "snowball", uncached, lambda language: pure, -1),
    ]
    print(f"tokenising {len(docs)} articles of {DATA.name}, best of {args.passes} interleaved passes")
    best = {name: float("inf") for name, *_ in setups}
    try:
        for _ in range(args.passes):  # every set-up once per pass, so load on the machine hits them alike
            for name, english, stem, snowball, terms in setups:
                tokenize.ENGLISH_STEMMER, tokenize.stem, tokenize._snowball = english, stem, snowball
                tokenize.TERM_CACHE = terms  # -1: a fresh table every call
                best[name] = min(best[name], one_pass(docs))
    finally:
        tokenize.ENGLISH_STEMMER, tokenize.stem, tokenize._snowball = "s", cached, native
        tokenize.TERM_CACHE = table
        tokenize._TERM_TABLES.clear()
    baseline = best["s-stemmer"]
    for name, ms in best.items():
        print(f"{name:<22} {ms:7.3f} ms/article  {ms / baseline:5.2f}x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
