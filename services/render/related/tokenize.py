"""Text to index terms, and text to the word stream that near-duplicate shingles are cut from.

Two views of the same text because they answer different questions: index terms drop stop
words and fold inflections so that "election" and "elections" (or "Wahl" and "Wahlen")
meet; shingles keep every word in order, because near-duplicates are about the same
sentences, not the same topic.

Each language in `stopwords.LANGUAGES` gets its stop words and its Snowball stemmer, then
accents are folded (see `stem`). Any other language is still indexed, under its own key,
with words as they are: no stop words, no stemming, no folding, since rules for one
language mangle another and idf alone keeps common words from mattering.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import snowballstemmer

from services.render.related.stopwords import LANGUAGES, stop_words

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# "LOS ANGELES (Reuters) - " or "By JANE DOE WASHINGTON (AP) -- ": the place and the wire
# credit say where a story was filed, not what it is about.
DATELINE = re.compile(r"^\s*(?:By [A-Z][\w.' ]{1,60}?\s+)?[A-Z][A-Z .,'-]{2,60}\([^)]{1,40}\)\s*[-–—]+\s*")
MIN_LENGTH = 2
# French elided articles and pronouns: "l'élection" is the word "élection".
ELIDED = frozenset({"c", "d", "j", "l", "m", "n", "s", "t", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu"})
LANGUAGE_TAG = re.compile(r"[a-z0-9]{1,8}")
SNOWBALL_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch",
}
# Which English stemmer: "s" (plural folding, `s_stem`) or "snowball" (Porter2). Both were
# measured on dev_news.jsonl; see docs/related.md.
ENGLISH_STEMMER = "s"
STEM_CACHE = 100_000  # distinct (language, word) pairs remembered; a newsroom's vocabulary fits
TERM_CACHE = 200_000  # words remembered per language by `terms_of`


def language_key(language: str) -> str:
    """The primary subtag ('en-GB' -> 'en', 'de_CH' -> 'de'): lists match on language, not on regional spelling.

    No tag means English (the NINJS default); a tag that is not a plain subtag is kept apart
    as 'und' (undetermined) rather than let it shape a Redis key.
    """
    key = (language or "").replace("_", "-").split("-", 1)[0].strip().lower()
    if not key:
        return "en"
    return key if LANGUAGE_TAG.fullmatch(key) else "und"


def words(text: str) -> list[str]:
    """Lower-cased words in order, apostrophes folded; the raw material for shingles."""
    return [_fold(w) if "'" in w or "’" in w else w for w in WORD.findall(text.lower())]


def _fold(word: str) -> str:
    word = word.replace("’", "'")
    head, _, rest = word.partition("'")
    if head in ELIDED:
        word = rest
    if word.endswith("'s"):
        word = word[:-2]
    return word.replace("'", "")


def strip_dateline(text: str) -> str:
    return DATELINE.sub(" ", text, count=1)


def terms(text: str, language: str) -> list[str]:
    """Index terms in order: words minus stop words and bare numbers, inflections folded.

    Bare numbers go because scores, years and prices link stories only by accident.
    """
    return terms_of(words(strip_dateline(text)), language)


def terms_of(word_list: list[str], language: str) -> list[str]:
    """`terms` for text already split by `words`."""
    lang = language_key(language)
    table = _TERM_TABLES.get(lang)
    if table is None or len(table) > TERM_CACHE:
        table = _TERM_TABLES[lang] = {}
    missing = [word for word in set(word_list) if word not in table]
    if missing:
        rule = _term_rule(lang)
        for word in missing:
            table[word] = rule(word)
    return [term for term in map(table.__getitem__, word_list) if term]


# Per language, each word met -> its term ("" when it is dropped): news repeats its words,
# so a document's terms are mostly lookups. Replaced whole past TERM_CACHE words.
_TERM_TABLES: dict[str, dict[str, str]] = {}


def _term_rule(lang: str) -> Callable[[str], str]:
    stops = stop_words(lang)
    stem = stemmer(lang)
    # English stems are checked again ("others" -> "other"); Snowball stems of other
    # languages are not words, and some equal a stop word by chance ("estados" -> "estad").
    recheck = stops if lang == "en" else frozenset()

    def rule(word: str) -> str:
        if len(word) < MIN_LENGTH or word in stops or word.isdigit():
            return ""
        term = stem(word)
        return term if term and term not in recheck else ""

    return rule


def stemmer(language: str) -> Callable[[str], str]:
    """The word -> term function for a language key; the identity for languages without rules."""
    if language not in LANGUAGES:
        return _same
    if language == "en" and ENGLISH_STEMMER == "s":
        return s_stem
    return lambda word: stem(language, word)


@lru_cache(maxsize=STEM_CACHE)
def stem(language: str, word: str) -> str:
    """Snowball stem of a lower-cased word, accents then folded ('élections' -> 'elect').

    Snowball wants the accented word (accents decide its vowels and suffixes); folding
    afterwards lets spellings that drop accents, such as French capitals ("ELECTIONS") or
    ASCII feeds, meet the accented ones. 'ß' is a letter, not an accent, and stays.
    """
    return fold_accents(_snowball(language).stemWord(word))


def fold_accents(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


_local = threading.local()


def _snowball(language: str):
    """One stemmer per thread and language: PyStemmer's stemmers are not thread-safe."""
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    found = stemmers.get(language)
    if found is None:
        found = stemmers[language] = snowballstemmer.stemmer(SNOWBALL_NAMES[language])
    return found


def s_stem(word: str) -> str:
    """Folds English plurals only, after Harman's S-stemmer ("-ches", "-shes", "-xes" too).

    Porter2 (Snowball "english") conflates words a reader would not ("business"/"busy",
    "experiment"/"experience") and scored lower on dev_news.jsonl: P@5 0.768, P@10 0.741
    against 0.775, 0.746 for plural folding (docs/related.md).
    """
    if len(word) > 4 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _same(word: str) -> str:
    return word
