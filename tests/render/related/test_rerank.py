"""The second stage: full vectors, exact BM25 over every shared term, feedback, and order independence."""

from __future__ import annotations

import math

from services.render.related import rerank
from services.render.related.document import RelatedDoc as Doc
from services.render.related.scoring import DEFAULT, analyse
from tests.render.related.conftest import corpus_docs, lists_after_indexing


def test_the_full_vector_survives_its_blob_with_every_term():
    body = " ".join(f"word{i} " * (1 + i % 3) for i in range(150))  # far more terms than are posted
    analysis = analyse(Doc("a", "en", "Harbour strike", body, ("Port Authority",)))
    vector = rerank.Vector.from_blob(rerank.blob_of(analysis.tf, analysis.entities), analysis.length)
    assert vector.tf == analysis.tf and len(vector.tf) > DEFAULT.posted_terms
    assert vector.entities == ("@port authority",)
    assert set(vector.terms()) == {*analysis.tf, "@port authority"}


def test_bm25_is_the_documented_formula_over_shared_terms_only():
    weights = {"harbour": 2.0, "strike": 1.0, "@port authority": 3.0}
    other = rerank.Vector.of({"harbour": 3.0, "crane": 5.0}, ("@port authority",), length=40.0)
    k1, b = DEFAULT.k1, DEFAULT.b
    norm = k1 * (1 - b + b * 40.0 / 20.0)
    assert math.isclose(rerank.bm25(weights, other, 20.0, DEFAULT), 2.0 * 3.0 * (k1 + 1) / (3.0 + norm) + 3.0)


def test_terms_no_other_article_has_carry_no_weight():
    vector = rerank.Vector.of({"harbour": 1.0, "zyx": 1.0}, ("@port authority",), 2.0)
    weights = rerank.weights_of(vector, {"harbour": 4.0, "zyx": 1.0, "@port authority": 2.0}, 100.0, DEFAULT)
    assert set(weights) == {"harbour", "@port authority"}
    assert weights["@port authority"] == DEFAULT.entity_weight * rerank.idf(2.0, 100.0)


def test_feedback_adds_the_vocabulary_of_the_top_results_in_proportion_to_their_scores():
    feedback = [(3.0, {"harbour": 1.0, "dockers": 1.0}), (1.0, {"harbour": 1.0, "tourism": 1.0})]
    terms = rerank.expansion(feedback, DEFAULT)
    assert terms["harbour"] > terms["dockers"] > terms["tourism"] > 0
    assert math.isclose(sum(terms.values()), 1.0)
    assert rerank.expansion([], DEFAULT) == {}


def test_lists_do_not_depend_on_the_order_articles_arrived_in(rclient):
    """Incremental indexing gives the lists a reindex from scratch (here: the reverse order) gives."""
    docs = [doc for _, doc in corpus_docs()]
    forward = lists_after_indexing(rclient, docs)
    assert all(forward.values())
    assert lists_after_indexing(rclient, list(reversed(docs))) == forward
