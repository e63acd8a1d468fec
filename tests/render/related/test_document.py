"""Cutting the engine's view from a NINJS article, and the text analysis behind it."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from services.render.related import related_doc_from_article
from services.render.related.document import html_to_text
from services.render.related.minhash import near_duplicates, similarity, sketch
from services.render.related.tokenize import language_key, terms, words
from shared.ninjs import load_article
from tests.conftest import sample


def test_article_becomes_plain_text_with_topic_names():
    article = load_article(sample("seed-article"))
    doc = related_doc_from_article(article)
    assert doc.id == article.id
    assert doc.language == "en"
    assert doc.title == article.headline
    assert "<" not in doc.body and ">" not in doc.body
    assert doc.body.startswith(article.summary)
    assert "Avigdor Liberman" in doc.entities and "Azerbaijan" in doc.entities
    assert "News" not in doc.entities  # scheme 'section' says where it is filed, not what it is about
    assert doc.published_at == datetime(2018, 9, 13, 14, 0, tzinfo=UTC).timestamp()


def test_collection_topics_and_missing_dates():
    article = load_article({
        "uri": "urn:test:related-doc", "version": "1", "headline": "Harbour strike", "language": "nl-BE",
        "body_html": "<p>Dockers&nbsp;strike.</p><script>track()</script><p>Ships wait.</p>",
        "subject": [{"name": "Editor's choice", "scheme": "collection"}, {"name": "Labour"}],
    })
    doc = related_doc_from_article(article)
    assert doc.entities == ("Labour",)
    assert doc.published_at == 0.0
    assert doc.language == "nl-BE"
    assert "track" not in doc.body
    assert words(doc.body) == ["dockers", "strike", "ships", "wait"]


def test_html_blocks_never_fuse_words():
    assert words(html_to_text("<p>one</p><p>two</p><ul><li>three</li><li>four</li></ul>")) == [
        "one", "two", "three", "four"
    ]
    assert html_to_text("") == ""


def test_terms_drop_stop_words_numbers_and_datelines_and_fold_plurals():
    text = "LONDON (Reuters) - The banks said on Monday that 2004 profits rose at both companies' branches."
    assert terms(text, "en") == ["bank", "profit", "rose", "company", "branch"]
    assert terms("Les banques", "fr") == ["banqu"]  # French rules for French, not English ones
    assert language_key("en-GB") == "en" and language_key("") == "en"


def test_sketches_tell_the_same_story_from_another_story():
    story = words("The central bank raised its benchmark interest rate by a quarter point to fight inflation "
                  "and signalled that further increases were likely this year")
    refiled = ["update", *story[:-2], "next", "year"]
    other = words("The central bank held its benchmark interest rate as inflation eased and growth slowed "
                  "sharply in the third quarter of the year")
    assert similarity(sketch(story), sketch(refiled)) >= 0.5
    assert similarity(sketch(story), sketch(other)) < 0.2
    assert similarity(sketch([]), sketch(story)) == 0.0


def test_similarity_is_the_bottom_k_estimate_of_the_union():
    def bottom_k(a: frozenset[int], b: frozenset[int], k: int) -> float:
        union = sorted(a | b)[:k]
        return sum(1 for h in union if h in a and h in b) / len(union) if union else 0.0

    rng = random.Random(7)
    for _ in range(3000):
        pool = rng.sample(range(1 << 32), 150)
        a = frozenset(rng.sample(pool, rng.randint(0, 64)))
        b = frozenset(rng.sample(pool, rng.randint(0, 64)))
        assert similarity(a, b) == bottom_k(a, b, 64)
        assert similarity(tuple(sorted(a)), tuple(sorted(b))) == similarity(a, b)


def test_near_duplicates_is_the_threshold_on_similarity():
    rng = random.Random(11)
    for _ in range(3000):
        pool = rng.sample(range(1 << 32), rng.choice([70, 100, 200, 5000]))  # from near copies to strangers
        a = frozenset(rng.sample(pool, rng.randint(0, 64)))
        b = frozenset(rng.sample(pool, rng.randint(0, 64)))
        for threshold in (0.0, 0.3, 0.5, 0.9):
            assert near_duplicates(a, b, threshold) == (similarity(a, b) >= threshold), (a, b, threshold)


def test_a_sketch_is_the_smallest_crc32s_of_its_distinct_three_word_shingles():
    import zlib

    rng = random.Random(21)
    vocabulary = ["vote", "élection", "straße", "日本語", "a", "l'été", "rain", "mp", "ß"]
    for _ in range(300):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 120))]
        grams = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)} if len(words) >= 3 else \
            ({" ".join(words)} if words else set())
        for size in (3, 64):
            assert sketch(words, size) == tuple(sorted(zlib.crc32(g.encode("utf-8")) for g in grams)[:size])


def test_terms_are_the_same_from_a_full_term_table_and_an_empty_one(monkeypatch):
    from services.render.related import tokenize

    text = ("The elections in the cities: others voted. Les élections présidentielles, "
            "l'économie et les ministres. 2026 MPs' votes.")
    for language in ("en", "fr", "de", "xx"):
        first = terms(text, language)
        assert terms(text, language) == first  # from the table this time
        monkeypatch.setattr(tokenize, "TERM_CACHE", 0)  # every call starts a fresh table
        assert terms(text, language) == first
        monkeypatch.undo()
    assert terms(text, "en")[:3] == ["election", "city", "voted"]  # "others" -> "other", a stop word
