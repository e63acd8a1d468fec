"""Text to index terms, and text to the word stream that near-duplicate shingles are cut from.

Two views of the same text because they answer different questions: index terms drop stop
words and fold plurals so that "election" and "elections" meet; shingles keep every word
in order, because near-duplicates are about the same sentences, not the same topic.
"""

from __future__ import annotations

import re

from services.render.related.stopwords import stop_words

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# "LOS ANGELES (Reuters) - " or "By JANE DOE WASHINGTON (AP) -- ": the place and the wire
# credit say where a story was filed, not what it is about.
DATELINE = re.compile(r"^\s*(?:By [A-Z][\w.' ]{1,60}?\s+)?[A-Z][A-Z .,'-]{2,60}\([^)]{1,40}\)\s*[-–—]+\s*")
MIN_LENGTH = 2


def language_key(language: str) -> str:
    """The primary subtag ('en-GB' -> 'en'): lists match on language, not on regional spelling."""
    return (language or "en").split("-", 1)[0].strip().lower() or "en"


def words(text: str) -> list[str]:
    """Lower-cased words in order, apostrophes folded; the raw material for shingles."""
    return [_fold(w) if "'" in w or "’" in w else w for w in WORD.findall(text.lower())]


def _fold(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    return word.replace("'", "")


def strip_dateline(text: str) -> str:
    return DATELINE.sub(" ", text, count=1)


def terms(text: str, language: str) -> list[str]:
    """Index terms in order: words minus stop words and bare numbers, English plurals folded.

    Bare numbers go because scores, years and prices link stories only by accident.
    """
    return terms_of(words(strip_dateline(text)), language)


def terms_of(word_list: list[str], language: str) -> list[str]:
    """`terms` for text already split by `words`."""
    lang = language_key(language)
    stops = stop_words(lang)
    stem = s_stem if lang == "en" else _same
    out = []
    for word in word_list:
        if len(word) < MIN_LENGTH or word in stops or word.isdigit():
            continue
        word = stem(word)
        if word not in stops:
            out.append(word)
    return out


def s_stem(word: str) -> str:
    """Folds English plurals only, after Harman's S-stemmer ("-ches", "-shes", "-xes" too).

    Heavier stemmers (Porter) conflate words a reader would not ("news"/"new",
    "university"/"universe"); on the tuning set they gained nothing over plural folding.
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
