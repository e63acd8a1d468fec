"""Second stage: score the first stage's candidates with every term of both articles.

The first stage (`lua.QUERY`) reads posting lists, which hold only each article's best
`Tuning.posted_terms` terms and are read to a budget, so its score is BM25 cut short. That is
cheap and finds the right neighbourhood, but on long articles (hundreds of words, many
shared terms of middling weight) the cut decides too much: on full-length news the
first stage alone fell well behind batch TF-IDF. So the best `Tuning.candidates` of the
first stage are scored again here with the exact BM25 of `scoring.py` over the full term
vectors (stored compressed in each article's record), with the live document frequencies
and average length, then blended with the first stage's score, which carries the
feedback expansion the full vectors lack.

Both stages use statistics as they are at query time (the full vectors hold raw term
frequencies, not weights), so a list does not depend on the order articles arrived in
beyond what the first stage's candidates are.
"""

from __future__ import annotations

import heapq
import json
import math
import zlib
from dataclasses import dataclass

from services.render.related.scoring import Tuning


@dataclass(frozen=True)
class Vector:
    """An article's full term vector: word term -> frequency, and its entity terms."""

    tf: dict[str, float]
    entities: tuple[str, ...]
    length: float

    @classmethod
    def from_blob(cls, blob: bytes | None, length: float) -> Vector:
        if not blob:
            return cls({}, (), length)
        tf, entities = json.loads(zlib.decompress(blob))
        return cls(tf, tuple(entities), length)

    def terms(self) -> list[str]:
        """Every term counted in document frequencies: words and entities."""
        return [*self.tf, *self.entities]


def idf(df: float, n: float) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def weights_of(vector: Vector, df: dict[str, float], n: float, tuning: Tuning) -> dict[str, float]:
    """idf * saturated tf of each of the article's terms that another article shares (df > 1)."""
    k1 = tuning.k1
    weights: dict[str, float] = {}
    for term, tf in vector.tf.items():
        d = df.get(term, 1.0)
        if d > 1:
            weights[term] = idf(d, n) * tf * (k1 + 1) / (tf + k1)
    for entity in vector.entities:
        d = df.get(entity, 1.0)
        if d > 1:
            weights[entity] = tuning.entity_weight * idf(d, n)
    return weights


def _share(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values()) or 1.0
    return {t: w / total for t, w in weights.items()}


def expanded(
    query: dict[str, float], feedback: list[tuple[float, dict[str, float]]], tuning: Tuning
) -> dict[str, float]:
    """The query mixed with the best terms of its top results (RM3 over full vectors).

    `feedback` holds (score, term weights) of the top results; each gives its terms in
    proportion to its score. The mix is (1 - feedback_mix) * query + feedback_mix *
    expansion, each scaled to sum 1.
    """
    alpha = tuning.feedback_mix
    total = sum(score for score, _ in feedback)
    if alpha <= 0 or total <= 0 or tuning.rerank_expansion_terms <= 0:
        return query
    expansion: dict[str, float] = {}
    for score, weights in feedback:
        share = score / total
        for term, w in _share(weights).items():
            expansion[term] = expansion.get(term, 0.0) + share * w
    best = dict(heapq.nlargest(tuning.rerank_expansion_terms, expansion.items(), key=lambda x: x[1]))
    mixed = {t: (1 - alpha) * w for t, w in _share(query).items()}
    for term, w in _share(best).items():
        mixed[term] = mixed.get(term, 0.0) + alpha * w
    return mixed


def bm25(weights: dict[str, float], other: Vector, avg_length: float, tuning: Tuning) -> float:
    """score(q, d) of `scoring.py` over every shared term; entities weigh 1 in d, as in postings."""
    k1, b = tuning.k1, tuning.b
    norm = k1 * (1 - b + b * other.length / (avg_length or 1.0))
    tf = other.tf
    score = 0.0
    for term in weights.keys() & tf.keys():
        f = tf[term]
        score += weights[term] * f * (k1 + 1) / (f + norm)
    for entity in other.entities:
        score += weights.get(entity, 0.0)
    return score
