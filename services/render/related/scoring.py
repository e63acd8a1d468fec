"""What is scored and how: BM25 with a weighted headline, entity terms, feedback, and the caps.

Similarity of a page's article q to a candidate d is BM25 with q's own terms as the query:

    score(q, d) = sum over the top terms t of q:  idf(t) * sat(tf_q(t)) * w_d(t)
    w_d(t)      = tf_d(t) * (k1 + 1) / (tf_d(t) + k1 * (1 - b + b * len_d / avg_len))
    idf(t)      = ln(1 + (n - df(t) + 0.5) / (df(t) + 0.5))           (Lucene's, never negative)

w_d(t) is written into t's posting list when d is indexed, with the average length of
that moment, so nothing is recomputed later; idf comes from the live document
frequencies at query time. The headline counts `title_weight` times the body (a
BM25F-style field weight). Shared NINJS topics (subject, person, place, organisation)
are terms too ("@" + name) with a fixed weight, so metadata overlap and text overlap add
up in one ranking.

The query is then expanded once with the best terms of its top results (pseudo-relevance
feedback, as in RM3): a headline and a standfirst share few words with another story on
the same subject, and feedback supplies the missing vocabulary.

The arithmetic runs in Redis (`lua.py`), next to the statistics it needs; this module
prepares each article's input (`analyse`) and holds the knobs (`Tuning`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from services.render.related import minhash
from services.render.related.document import RelatedDoc
from services.render.related.tokenize import language_key, strip_dateline, terms_of, words

# Bump when analysis changes, so re-indexing an unchanged article still replaces its terms.
ANALYZER_VERSION = "3"
ENTITY_MARK = "@"  # words never contain '@', so entity terms cannot collide with them


@dataclass(frozen=True)
class Tuning:
    """Every knob in one place. Quality defaults were tuned on ../shared/data/dev_news.jsonl,
    the work caps on bench/related.py at 100,000 articles."""

    title_weight: float = 1.5
    k1: float = 1.2
    b: float = 0.75
    entity_weight: float = 2.0  # query weight of a shared topic, in saturated-tf units
    max_entities: int = 16
    posted_terms: int = 32  # postings written per article: its highest tf-idf terms
    posting_cap: int = 1000  # entries kept per posting list; the lowest weights fall off
    query_terms: int = 30  # terms of the page's article that are looked up
    posting_reads: int = 1000  # posting entries read for the query, shared by weight
    min_reads: int = 10  # ... but at least this many per term
    feedback_docs: int = 5
    expansion_terms: int = 10
    expansion_reads: int = 250  # posting entries read for expansion terms not yet read
    feedback_mix: float = 0.5  # share of the expanded query that comes from feedback
    candidates: int = 60  # first-stage candidates scored again with full vectors (rerank.py)
    rerank_expansion_terms: int = 30  # feedback terms added to the full-vector query (rerank.py)
    min_score_share: float = 0.05  # of the best score: weaker candidates are never listed
    duplicate_threshold: float = minhash.THRESHOLD


DEFAULT = Tuning()


@dataclass(frozen=True)
class Analysis:
    """One article, ready to index: term frequencies, length, sketch and content digest."""

    language: str
    tf: dict[str, float]  # headline-weighted frequency of each word term
    entities: tuple[str, ...]  # entity terms ("@name")
    length: float
    sketch: tuple[int, ...]
    digest: str

    def terms_arg(self) -> str:
        """Word terms and frequencies as one "term<TAB>tf" line each: one argument, not hundreds."""
        return "\n".join(f"{t}\t{f:g}" for t, f in self.tf.items())


def analyse(doc: RelatedDoc, tuning: Tuning = DEFAULT) -> Analysis:
    language = language_key(doc.language)
    title_words = words(doc.title)
    body_words = words(strip_dateline(doc.body))
    title_terms = terms_of(title_words, language)
    body_terms = terms_of(body_words, language)
    tf: Counter[str] = Counter()
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
        sketch=minhash.sketch(title_words + body_words),
        digest=digest,
    )


def entity_term(name: str) -> str:
    return ENTITY_MARK + " ".join(name.lower().split())
