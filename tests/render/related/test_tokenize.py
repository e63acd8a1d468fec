"""Per-language text analysis: stop words, Snowball stemming, accent folding, elision."""

from __future__ import annotations

import threading

import snowballstemmer
from snowballstemmer.french_stemmer import FrenchStemmer
from snowballstemmer.german_stemmer import GermanStemmer
from snowballstemmer.spanish_stemmer import SpanishStemmer

from services.render.related.stopwords import ENGLISH, LANGUAGES, parse_snowball, stop_words
from services.render.related.tokenize import fold_accents, language_key, stem, terms, words


def test_stemming_conflates_inflections_per_language():
    assert terms("Wahlen", "de") == terms("Wahl", "de") == ["wahl"]
    assert terms("Bundestagswahlen", "de") == terms("Bundestagswahl", "de")
    assert terms("élections", "fr") == terms("élection", "fr")
    assert terms("électorales", "fr") == terms("électoral", "fr")
    assert terms("elecciones", "es") == terms("elección", "es")
    assert terms("presidentes", "es") == terms("presidente", "es")
    assert terms("elezioni", "it") == terms("elezione", "it")
    assert terms("governos", "pt") == terms("governo", "pt")
    assert terms("verkiezingen", "nl") == terms("verkiezing", "nl")


def test_english_keeps_plural_folding_and_no_heavier_stemming():
    assert terms("elections companies branches", "en") == ["election", "company", "branch"]
    assert terms("business busy experiment experience", "en") == ["business", "busy", "experiment", "experience"]
    assert stem("en", "business") == stem("en", "busy")  # what Porter2 would have done


def test_accents_are_folded_after_stemming_so_unaccented_spellings_meet():
    assert terms("ÉLECTIONS", "fr") == terms("ELECTIONS", "fr") == terms("elections", "fr")
    assert terms("elección", "es") == terms("eleccion", "es")
    assert terms("Müller", "de") == terms("Mueller", "de")  # Snowball German reads "ue" as "ü"
    assert all(term.isascii() for term in terms("Élections législatives à Besançon", "fr"))
    assert stem("de", "straße") == stem("de", "strasse")
    assert fold_accents("año") == "ano" and fold_accents("plain") == "plain"


def test_stop_words_are_removed_per_language():
    assert terms("Die Wahl und der Sieg", "de") == ["wahl", "sieg"]
    assert terms("Le vote et la victoire", "fr") == ["vot", "victoir"]
    assert terms("El voto y la victoria", "es") == ["vot", "victori"]
    assert terms("die", "en") == ["die"] and terms("die", "de") == []  # an English verb, a German article
    assert terms("und", "en") == ["und"]  # the German list never reaches English text


def test_newsroom_boilerplate_is_a_stop_word_in_every_language():
    assert terms("Der Minister sagte am Montag, laut Herr Weber", "de") == ["minist", "web"]
    assert terms("Le ministre a déclaré lundi, selon Mme Dubois", "fr") == ["ministr", "dubois"]
    assert terms("El ministro dijo el lunes, según la Sra. Pérez", "es") == ["ministr", "perez"]
    assert "said" in stop_words("en") and "monday" in stop_words("en-GB")


def test_spanish_estado_stays_a_term():
    # a form of "estar" in Snowball's list, but also "state": Estados Unidos must match
    assert terms("Estados Unidos", "es") == terms("los estados unidos", "es") == ["estad", "unid"]


def test_snowball_lists_are_parsed_with_their_comments():
    assert parse_snowball("aber  | but\n | son   |  omitted\nals | as, than\n\ndass\n") == {"aber", "als", "dass"}
    french = stop_words("fr")
    assert {"le", "les", "dans", "était"} <= french
    assert "son" not in french and "été" not in french  # the list leaves out "sound" and "summer"
    assert {"und", "über", "daß"} <= stop_words("de") and {"el", "los", "está"} <= stop_words("es")
    assert stop_words("de-AT") is stop_words("de")
    assert ENGLISH is stop_words("en")


def test_french_elision_is_split_off():
    assert words("L'élection qu'il gagne, d'abord jusqu'à aujourd'hui") == [
        "élection", "il", "gagne", "abord", "à", "aujourdhui"
    ]
    assert terms("l'élection", "fr") == terms("élection", "fr")
    assert words("the company's chief doesn't know O'Brien") == ["the", "company", "chief", "doesnt", "know", "obrien"]


def test_unknown_languages_get_words_as_they_are():
    assert terms("Les élections", "xx") == ["les", "élections"]  # no stop words, stemming or folding
    assert terms("Wahlen und Stimmen", "sw") == ["wahlen", "und", "stimmen"]
    assert stop_words("xx") == frozenset()
    assert "xx" not in LANGUAGES and {"en", "de", "fr", "es"} <= LANGUAGES


def test_language_keys():
    assert language_key("de-CH") == "de" and language_key("fr_CA") == "fr" and language_key("ES") == "es"
    assert language_key("") == "en" and language_key(None) == "en"  # type: ignore[arg-type]
    assert language_key("x:y") == "und" and language_key("zh-Hant-TW") == "zh"


def test_the_c_stemmer_is_in_use_and_agrees_with_the_pure_python_one():
    """Both are pinned; an index built by one must be read by the other the same way."""
    assert type(snowballstemmer.stemmer("german")).__module__ == "Stemmer"
    sample = ["wahlen", "bundestagswahlen", "regierungen", "élections", "présidentielles", "elecciones",
              "gobiernos", "ministerin", "straße", "européennes", "inflación"]
    for name, pure in [("german", GermanStemmer()), ("french", FrenchStemmer()), ("spanish", SpanishStemmer())]:
        native = snowballstemmer.stemmer(name)
        assert [native.stemWord(w) for w in sample] == [pure.stemWord(w) for w in sample], name


def test_stemming_from_many_threads_gives_the_same_terms():
    text = "Die Bundestagswahlen und die Landtagswahlen: Regierungen, Ministerinnen, Parteien " * 20
    expected = terms(text, "de")
    stem.cache_clear()
    results: list[list[str]] = []

    def work() -> None:
        results.append(terms(text, "de"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 8
