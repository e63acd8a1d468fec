"""English stop words for the related-articles index.

Words that say nothing about a story's topic. Keeping them out of the index saves posting
memory (they would be in every list) and keeps them from diluting similarity; their idf
would be near zero anyway. The list is the classic Glasgow-style list that scikit-learn
ships, plus newsroom boilerplate: reporting verbs, weekdays and courtesy titles, which
appear across every desk and so link unrelated stories. Words of scikit-learn's list that
carry news topics ("fire", "bill", "interest", "system", "move", "top", ...) are kept as
terms.
"""

from __future__ import annotations

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

BY_LANGUAGE: dict[str, frozenset[str]] = {"en": ENGLISH}


def stop_words(language: str) -> frozenset[str]:
    """Stop words for a language tag ('en', 'en-GB'); unknown languages get none and lean on idf."""
    return BY_LANGUAGE.get(language.split("-", 1)[0].lower(), frozenset())
