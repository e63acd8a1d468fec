"""Languages in the related index on a real Redis: each language lists only its own articles."""

from __future__ import annotations

import pytest

from services.render.related import RelatedDoc, scoring, tokenize
from services.render.related.keys import Keys

# One subject (a French election won by Macron) in three languages, two stories each,
# with the same topic names, so only the language can keep the lists apart.
TOPICS = ("Emmanuel Macron", "France", "Elections")
STORIES = {
    "en": [
        ("Macron wins French presidential election", "Emmanuel Macron won the French presidential election "
         "with a clear majority, and his party expects gains in the parliamentary elections."),
        ("Macron's party leads parliamentary elections", "The party of President Emmanuel Macron leads the "
         "parliamentary elections in France after the first round, polls show."),
    ],
    "de": [
        ("Macron gewinnt die Präsidentschaftswahl", "Emmanuel Macron hat die französische Präsidentschaftswahl "
         "mit klarer Mehrheit gewonnen; seine Partei erwartet Gewinne bei den Parlamentswahlen."),
        ("Macrons Partei führt bei den Parlamentswahlen", "Die Partei von Präsident Emmanuel Macron liegt bei "
         "der Parlamentswahl in Frankreich nach der ersten Runde vorn, zeigen Umfragen."),
    ],
    "fr": [
        ("Macron remporte l'élection présidentielle", "Emmanuel Macron a remporté l'élection présidentielle "
         "avec une nette majorité, et son parti espère des gains aux élections législatives."),
        ("Le parti de Macron en tête des législatives", "Le parti du président Emmanuel Macron arrive en tête "
         "des élections législatives en France après le premier tour, selon les sondages."),
    ],
    "sw": [  # no rules for Swahili: indexed all the same, listed among its own
        ("Macron ashinda uchaguzi wa urais", "Emmanuel Macron ameshinda uchaguzi wa urais wa Ufaransa kwa "
         "wingi mkubwa, na chama chake kinatarajia ushindi katika uchaguzi wa bunge."),
        ("Chama cha Macron chaongoza uchaguzi wa bunge", "Chama cha Rais Emmanuel Macron kinaongoza uchaguzi "
         "wa bunge nchini Ufaransa baada ya duru ya kwanza, kura za maoni zinaonyesha."),
    ],
}
TAGS = {"en": ["en", "en-GB"], "de": ["de", "de-CH"], "fr": ["fr-FR", "fr"], "sw": ["sw", "sw-KE"]}


def story_docs() -> list[RelatedDoc]:
    docs = []
    for language, stories in STORIES.items():
        for i, (title, body) in enumerate(stories):
            docs.append(RelatedDoc(f"{language}-{i}", TAGS[language][i], title, body, TOPICS, 1_700_000_000.0 + i))
    return docs


@pytest.fixture
def election(index):
    for doc in story_docs():
        index.index(doc)
    return index


def test_each_language_lists_only_its_own_articles(election):
    for language in STORIES:
        assert election.query(f"{language}-0", k=10) == [f"{language}-1"]
        assert election.query(f"{language}-1", k=10) == [f"{language}-0"]


def test_regional_tags_share_their_language_index(election, rclient, prefix):
    keys = Keys(prefix)
    assert {k.decode() for k in rclient.scan_iter(match=f"{prefix}:stats:*")} == {
        keys.stats(lang) for lang in STORIES
    }
    for lang in STORIES:
        assert rclient.hget(keys.stats(lang), "n") == b"2"


def test_terms_are_stemmed_in_the_index(election, rclient, prefix):
    df = Keys(prefix).df
    assert rclient.hget(df("de"), "parlamentswahl") == b"2"  # "Parlamentswahlen" and "Parlamentswahl"
    assert rclient.hget(df("de"), "parlamentswahlen") is None
    assert rclient.hget(df("fr"), "elect") == b"2"  # "l'élection", "élections"
    assert rclient.hget(df("fr"), "le") is None and rclient.hget(df("de"), "die") is None
    assert rclient.hget(df("sw"), "uchaguzi") == b"2" and rclient.hget(df("sw"), "wa") == b"2"


def test_analyzer_version_bump_makes_reindexing_replace_terms(index, rclient, prefix, monkeypatch):
    """An index written by the previous analyser (German words unstemmed) is rewritten, not kept."""
    df = Keys(prefix).df("de")
    doc = RelatedDoc("de-old", "de", "Parlamentswahlen in Frankreich", "Die Parlamentswahlen in Frankreich.")

    def index_with_old_analyser(version: str) -> None:
        with monkeypatch.context() as m:
            m.setattr(scoring, "ANALYZER_VERSION", version)
            m.setattr(tokenize, "stemmer", lambda language: tokenize.s_stem if language == "en" else str)
            m.setattr(tokenize, "_TERM_TABLES", {})  # terms the current rules gave are remembered
            index.index(doc)

    index_with_old_analyser(scoring.ANALYZER_VERSION)
    assert rclient.hget(df, "parlamentswahlen") == b"1"
    index.index(doc)  # same version, same text: taken as unchanged, the old terms stay
    assert rclient.hget(df, "parlamentswahlen") == b"1" and rclient.hget(df, "parlamentswahl") is None

    index.remove(doc.id)
    index_with_old_analyser("2")
    index.index(doc)  # the bumped version changes the digest: out with the old terms, in with the new
    assert rclient.hget(df, "parlamentswahlen") is None
    assert rclient.hget(df, "parlamentswahl") == b"1"
    assert rclient.hget(Keys(prefix).stats("de"), "n") == b"1"
    assert not list(rclient.scan_iter(match=f"{prefix}:t:de:parlamentswahlen"))
