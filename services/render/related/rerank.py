"""Second stage: score the first stage's candidates with every term of both articles.

The first stage (`lua.QUERY`) reads posting lists, which hold only each article's best
`Tuning.posted_terms` terms and are read to a budget, so its score is BM25 cut short. That is
cheap and finds the right neighbourhood, but on long articles (hundreds of words, many
shared terms of middling weight) the cut decides too much: on full-length news the
first stage alone fell well behind batch TF-IDF. So the best `Tuning.candidates` of the
first stage are scored again here with the exact BM25 of `scoring.py` over the full term
vectors (stored compressed in each article's record), with the live document frequencies
and average length, and once more with the query expanded by the best terms of its top
results (`expansion`); the first stage's own score is only used to pick the candidates.

Both passes use statistics as they are at query time (the full vectors hold raw term
frequencies, not weights), so a list does not depend on the order articles arrived in
beyond which candidates the first stage finds.
"""

from __future__ import annotations

import array
import heapq
import math
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from services.render.related.scoring import Tuning


@dataclass(frozen=True)
class Vector:
    """An article's full term vector: its word terms with their frequencies, and its entity terms.

    Kept as parallel sequences rather than a dict: a query decodes up to a hundred of
    these, and splitting one string and reading one float array is several times
    cheaper than building a dict (or decoding JSON) each time.
    """

    words: list[str]
    freqs: Sequence[float]
    entities: tuple[str, ...]
    length: float

    @classmethod
    def of(cls, tf: dict[str, float], entities: tuple[str, ...] = (), length: float = 0.0) -> Vector:
        return cls(list(tf), array.array("f", tf.values()), tuple(entities), length)

    @classmethod
    def from_blob(cls, blob: bytes | None, length: float) -> Vector:
        if not blob:
            return cls([], (), (), length)
        words, entities, freqs = zlib.decompress(blob).split(b"\0", 2)
        values = array.array("f")
        values.frombytes(freqs)
        if sys.byteorder == "big":
            values.byteswap()
        return cls(words.decode("utf-8").split(), values, tuple(e for e in entities.decode("utf-8").split("\t") if e),
                   length)

    @property
    def tf(self) -> dict[str, float]:
        return dict(zip(self.words, self.freqs, strict=True))

    def terms(self) -> list[str]:
        """Every term counted in document frequencies: words and entities."""
        return [*self.words, *self.entities]


def blob_of(tf: dict[str, float], entities: tuple[str, ...]) -> bytes:
    """The stored form `Vector.from_blob` reads: words, entities, then little-endian float32 frequencies."""
    values = array.array("f", tf.values())
    if sys.byteorder == "big":
        values.byteswap()
    names = "\t".join(e.replace("\0", "").replace("\t", " ") for e in entities)
    return zlib.compress(b"\0".join([" ".join(tf).encode("utf-8"), names.encode("utf-8"), values.tobytes()]))


def idf(df: float, n: float) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def weights_of(vector: Vector, df: dict[str, float], n: float, tuning: Tuning) -> dict[str, float]:
    """idf * saturated tf of each of the article's terms that another article shares (df > 1)."""
    k1 = tuning.k1
    weights: dict[str, float] = {}
    idfs: dict[float, float] = {}  # many terms share a document frequency
    for term, tf in zip(vector.words, vector.freqs, strict=True):
        d = df.get(term, 1.0)
        if d > 1:
            i = idfs.get(d)
            if i is None:
                i = idfs[d] = idf(d, n)
            weights[term] = i * tf * (k1 + 1) / (tf + k1)
    for entity in vector.entities:
        d = df.get(entity, 1.0)
        if d > 1:
            weights[entity] = tuning.entity_weight * idf(d, n)
    return weights


def expansion(feedback: list[tuple[float, dict[str, float]]], tuning: Tuning) -> dict[str, float]:
    """The best terms of a query's top results, summing to 1 (RM3's relevance model, over full vectors).

    `feedback` holds (score, term weights) of the top results; each gives its terms in
    proportion to its score and to their share of its own weight. The query the second
    stage ranks by is then (1 - feedback_mix) * query + feedback_mix * expansion, the
    query scaled to sum 1 too; BM25 is linear in the query weights, so that is scored as
    the same mix of the two scores.
    """
    total = sum(score for score, _ in feedback)
    if total <= 0 or tuning.rerank_expansion_terms <= 0:
        return {}
    terms: dict[str, float] = {}
    for score, weights in feedback:
        share = score / (total * (sum(weights.values()) or 1.0))
        for term, w in weights.items():
            terms[term] = terms.get(term, 0.0) + share * w
    best = heapq.nlargest(tuning.rerank_expansion_terms, terms.items(), key=lambda x: x[1])
    mass = sum(w for _, w in best) or 1.0
    return {t: w / mass for t, w in best}


def bm25(weights: dict[str, float], other: Vector, avg_length: float, tuning: Tuning) -> float:
    """score(q, d) of `scoring.py` over every shared term; entities weigh 1 in d, as in postings."""
    k1, b = tuning.k1, tuning.b
    norm = k1 * (1 - b + b * other.length / (avg_length or 1.0))
    score = 0.0
    get = weights.get
    for term, f in zip(other.words, other.freqs, strict=True):
        w = get(term)
        if w is not None:
            score += w * f * (k1 + 1) / (f + norm)
    for entity in other.entities:
        score += weights.get(entity, 0.0)
    return score
