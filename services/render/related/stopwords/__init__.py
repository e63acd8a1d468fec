"""Stop words per language for the related-articles index.

Words that say nothing about a story's topic. Keeping them out of the index saves posting
memory (they would be in every list) and keeps them from diluting similarity; their idf
would be near zero anyway.

English is the classic Glasgow-style list that scikit-learn ships, less the words of it
that carry news topics ("fire", "bill", "interest", "system", "move", "top", ...). German,
French, Spanish, Italian, Portuguese and Dutch are the Snowball project's lists, the
companions of the stemmers `tokenize` uses, vendored unchanged in `snowball/` (BSD, see
snowball/LICENSE) less `KEPT`. Every language also gets newsroom boilerplate: reporting
verbs, weekdays and courtesy titles, which appear across every desk and so link
unrelated stories. Lists are matched against lower-cased, accented words before stemming.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

GENERAL = frozenset(
    """
    a about above across after afterwards again against all almost alone along already also although always am
    among amongst an and another any anyhow anyone anything anyway anywhere are around as at
    be became because become becomes becoming been before beforehand behind being below beside besides between
    beyond both but by can cannot cant co could couldnt de did do does
    doing done down due during each eg eight either eleven else elsewhere enough etc even ever every everyone
    everything everywhere except few fifteen fifty first five for former formerly forty four
    from further get give go had has hasnt have having he hence her here hereafter hereby herein
    hereupon hers herself him himself his how however hundred i ie if in inc indeed into is it its itself
    just keep last latter latterly least less ltd made many may me meanwhile might mine more moreover most
    mostly much must my myself namely neither never nevertheless next nine no nobody none noone nor not
    nothing now nowhere of off often on once one only onto or other others otherwise our ours ourselves out over
    own per perhaps please put rather re same see seem seemed seeming seems several she should
    since six sixty so some somehow someone something sometime sometimes somewhere still such
    take ten than that the their theirs them themselves then thence there thereafter thereby therefore therein
    thereupon these they thick thin third this those though three through throughout thru thus to together too
    top toward towards twelve twenty two un under until up upon us very via was we well were what whatever when
    whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while whither who
    whoever whole whom whose why will with within without would yet you your yours yourself yourselves
    s t d ll m re ve don doesn didn isn wasn weren won wouldn shouldn couldn hasn haven hadn aren ain
    """.split()
)

NEWSROOM = frozenset(
    """
    said says told tells according
    monday tuesday wednesday thursday friday saturday sunday
    mr mrs ms
    """.split()
)

ENGLISH = GENERAL | NEWSROOM

# Snowball file name of each language with a vendored list.
SNOWBALL_FILES = {
    "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese", "nl": "dutch",
}

# Words of the Snowball lists kept as terms because news uses them as nouns: Spanish
# "estado(s)" is a form of "estar" but also "state(s)" (Estados Unidos).
KEPT: dict[str, frozenset[str]] = {"es": frozenset({"estado", "estados", "estada", "estadas"})}

NEWSROOM_BY_LANGUAGE: dict[str, frozenset[str]] = {
    "en": NEWSROOM,
    "de": frozenset(
        """
        sagte sagten sagt erklärte erklärten teilte teilten hieß laut zufolge
        montag dienstag mittwoch donnerstag freitag samstag sonnabend sonntag
        herr frau
        """.split()
    ),
    "fr": frozenset(
        """
        dit déclaré affirmé indiqué expliqué selon
        lundi mardi mercredi jeudi vendredi samedi dimanche
        mme mmes mlle
        """.split()
    ),
    "es": frozenset(
        """
        dijo dijeron afirmó aseguró señaló explicó indicó según
        lunes martes miércoles jueves viernes sábado domingo
        sr sra srta don doña
        """.split()
    ),
    "it": frozenset(
        """
        detto dichiarato secondo
        lunedì martedì mercoledì giovedì venerdì sabato domenica
        sig signor signora
        """.split()
    ),
    "pt": frozenset(
        """
        disse afirmou declarou segundo
        segunda terça quarta quinta sexta sábado domingo feira
        sr sra
        """.split()
    ),
    "nl": frozenset(
        """
        zei zegt verklaarde volgens
        maandag dinsdag woensdag donderdag vrijdag zaterdag zondag
        dhr mevrouw
        """.split()
    ),
}

LANGUAGES = frozenset({"en", *SNOWBALL_FILES})


def parse_snowball(text: str) -> frozenset[str]:
    """Words of a Snowball stop list: '|' starts a comment, words are whitespace-separated."""
    return frozenset(word for line in text.splitlines() for word in line.split("|", 1)[0].split())


def stop_words(language: str) -> frozenset[str]:
    """Stop words for a language tag ('en', 'de-CH'); unknown languages get none and lean on idf."""
    return _for_key(language.replace("_", "-").split("-", 1)[0].lower())


@cache
def _for_key(language: str) -> frozenset[str]:
    if language == "en":
        return ENGLISH
    name = SNOWBALL_FILES.get(language)
    if name is None:
        return frozenset()
    text = resources.files(__package__).joinpath("snowball", f"{name}.txt").read_text(encoding="utf-8")
    return (parse_snowball(text) - KEPT.get(language, frozenset())) | NEWSROOM_BY_LANGUAGE[language]
