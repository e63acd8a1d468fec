"""Term weighting: BM25 with a weighted headline, entity terms, and the knobs that bound the work.

Pure functions, no I/O: the engine calls `analyse` once per article and `vectors` once the
corpus statistics (document frequencies, article count, total length) are read from Redis.

Similarity of a page's article q to a candidate d is BM25 with q's own terms as the query:

    score(q, d) = sum over the top terms t of q:  idf(t) * sat(tf_q(t)) * w_d(t)

where w_d(t) is d's BM25 term weight, stored in t's posting list when d is indexed (its
length normalisation uses the average length at that moment, so nothing is recomputed
later), and idf comes from the live document frequencies at query time. The headline
counts `title_weight` times the body (a BM25F-style field weight). Shared NINJS topics
(subject, person, place, organisation) are terms too ("@" + name), with a fixed weight,
so metadata overlap and text overlap add up in one ranking.

The query is then expanded once with the best terms of its top results (pseudo-relevance
feedback, as in RM3): on short news texts a headline and a standfirst share few words with
another story on the same subject, and feedback supplies the missing vocabulary.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from dataclasses import dataclass

from services.render.related import minhash
from services.render.related.document import RelatedDoc
from services.render.related.tokenize import language_key, terms, words

# Bump when analysis changes, so re-indexing an unchanged article still replaces its terms.
ANALYZER_VERSION = "1"
ENTITY_MARK = "@"  # tokens never contain '@', so entity terms cannot collide with words


@dataclass(frozen=True)
class Tuning:
    """Every knob in one place. Defaults were tuned on ../shared/data/dev_news.jsonl."""

    title_weight: float = 1.5
    k1: float = 1.2
    b: float = 0.75
    entity_weight: float = 2.0  # query weight of a shared topic, in saturated-tf units
    max_entities: int = 16
    posted_terms: int = 48  # postings written per article: its highest tf-idf terms
    query_terms: int = 30  # terms of the page's article that are looked up
    posting_reads: int = 200  # entries read per posting list, highest weights first
    posting_cap: int = 2000  # entries kept per posting list; the lowest weights fall off
    feedback_docs: int = 10
    expansion_terms: int = 20
    feedback_mix: float = 0.7  # share of the expanded query that comes from feedback
    candidates: int = 40  # scored candidates handed back for near-duplicate collapsing
    duplicate_threshold: float = minhash.THRESHOLD


DEFAULT = Tuning()


@dataclass(frozen=True)
class Analysis:
    """One article, ready to index: term frequencies, length, sketch and content digest."""

    language: str
    tf: dict[str, float]  # headline-weighted term frequency of words; entity terms separately
    entities: tuple[str, ...]  # entity terms ("@name")
    length: float
    sketch: tuple[int, ...]
    digest: str


def analyse(doc: RelatedDoc, tuning: Tuning = DEFAULT) -> Analysis:
    language = language_key(doc.language)
    tf: Counter[str] = Counter()
    title_terms = terms(doc.title, language)
    body_terms = terms(doc.body, language)
    for term in title_terms:
        tf[term] += tuning.title_weight
    tf.update(body_terms)
    entities = tuple(dict.fromkeys(entity_term(name) for name in doc.entities if name.strip()))
    digest = hashlib.sha256(
        "\x1f".join(
            [ANALYZER_VERSION, repr(tuning), language, doc.title, doc.body, *doc.entities, repr(doc.published_at)]
        ).encode("utf-8")
    ).hexdigest()[:24]
    return Analysis(
        language=language,
        tf=dict(tf),
        entities=entities[: tuning.max_entities],
        length=tuning.title_weight * len(title_terms) + len(body_terms),
        sketch=minhash.sketch(words(doc.title) + words(doc.body)),
        digest=digest,
    )


def entity_term(name: str) -> str:
    return ENTITY_MARK + " ".join(name.lower().split())


def idf(df: int, n: int) -> float:
    """BM25's idf, kept positive (Lucene's form) so common terms never count against a match."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def saturate(tf: float, k1: float) -> float:
    return tf * (k1 + 1.0) / (tf + k1)


@dataclass(frozen=True)
class Vectors:
    postings: dict[str, float]  # term -> this article's weight in the term's posting list
    stored: list[list]  # [term, query weight before idf, feedback weight] for the article record


def vectors(analysis: Analysis, df: dict[str, int], n: int, total_length: float, tuning: Tuning = DEFAULT) -> Vectors:
    """Posting weights and the stored query vector, given corpus statistics that include this article.

    Only the `posted_terms` highest tf-idf words are posted: they carry nearly all of an
    article's similarity mass, and posting every word of long articles would multiply
    the index size for terms that never decide a list.
    """
    avg = total_length / n if n and total_length else max(analysis.length, 1.0)
    norm = tuning.k1 * (1.0 - tuning.b + tuning.b * analysis.length / avg)
    weights = {t: f * (tuning.k1 + 1.0) / (f + norm) for t, f in analysis.tf.items()}
    ranked = {t: weights[t] * idf(df.get(t, 1), n) for t in weights}
    chosen = heapq.nlargest(tuning.posted_terms, ranked, key=lambda t: (ranked[t], t))
    postings = {t: weights[t] for t in chosen}
    query = {t: saturate(analysis.tf[t], tuning.k1) for t in chosen}
    for entity in analysis.entities:
        postings[entity] = 1.0
        query[entity] = tuning.entity_weight
    mass = {t: query[t] * idf(df.get(t, 1), n) for t in query}
    total = sum(mass.values()) or 1.0
    stored = [[t, round(query[t], 4), round(mass[t] / total, 5)] for t in query]
    return Vectors(postings=postings, stored=stored)
