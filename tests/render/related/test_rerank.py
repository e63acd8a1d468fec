"""The second stage: full vectors, exact BM25 over every shared term, feedback, and order independence."""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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


def test_weights_are_the_same_with_an_idf_cache_shared_across_calls():
    rng = random.Random(5)
    idfs: dict[float, float] = {}
    for _ in range(50):
        vector = rerank.Vector.of({f"w{rng.randrange(40)}": float(rng.randint(1, 6)) for _ in range(20)},
                                  tuple(f"@e{rng.randrange(5)}" for _ in range(2)), 30.0)
        df = {term: float(rng.randint(1, 9)) for term in vector.terms()}
        assert rerank.weights_of(vector, df, 200.0, DEFAULT, idfs) == rerank.weights_of(vector, df, 200.0, DEFAULT)
    assert idfs and all(idf == rerank.idf(d, 200.0) for d, idf in idfs.items())


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


def _random_vectors(rng: random.Random, count: int, vocabulary: list[str]) -> list[rerank.Vector]:
    vectors = []
    for _ in range(count):
        words = rng.sample(vocabulary, rng.randint(0, 40))
        tf = {w: float(rng.randint(1, 9)) for w in words}
        entities = tuple(f"@e{i}" for i in rng.sample(range(20), rng.randint(0, 3)))
        blob = rerank.blob_of(tf, entities) if rng.random() < 0.7 else None
        vectors.append(rerank.Vector.from_blob(blob, float(rng.randint(5, 900))) if blob
                       else rerank.Vector.of(tf, entities, float(rng.randint(5, 900))))
    return vectors


def test_scoring_all_candidates_at_once_gives_the_very_floats_of_bm25():
    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(120)]
    terms = rerank.Terms(limit=50)  # small: trimmed between batches, as a long rebuild's is
    for _ in range(60):
        terms.trim()
        vectors = _random_vectors(rng, rng.randint(0, 30), vocabulary)
        weights = {t: rng.random() * 5 for t in rng.sample([*vocabulary, "@e1", "@e2", "absent"], 50)}
        avg = rng.random() * 500 + 1
        batch = rerank.Candidates(vectors, avg, DEFAULT, terms)
        assert batch.bm25(weights) == [rerank.bm25(weights, v, avg, DEFAULT) for v in vectors]
        assert batch.bm25({}) == [0.0] * len(vectors)
    assert len(terms) <= 50 + 30


def test_term_ids_stay_distinct_when_threads_code_at_once():
    vectors = _random_vectors(random.Random(5), 400, [f"w{i}" for i in range(3000)])
    terms = rerank.Terms()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(terms.code, vectors))
    assert sorted(terms.index.values()) == list(range(len(terms.index)))
    for vector in vectors:
        ids, _ = terms.code(vector)
        assert [terms.index[t] for t in vector.terms()] == ids.tolist()


def test_a_stored_vector_scores_as_its_decoded_form_and_is_decoded_once_per_process():
    rng = random.Random(9)
    vectors = [v for v in _random_vectors(rng, 40, [f"w{i}" for i in range(80)]) if v.source is not None]
    stored = [rerank.StoredVector(v.source, v.length) for v in vectors]
    terms = rerank.Terms()
    weights = {f"w{i}": rng.random() for i in range(0, 80, 3)} | {"@e1": 1.5}
    assert rerank.Candidates(stored, 120.0, DEFAULT, terms).bm25(weights) == \
           [rerank.bm25(weights, v, 120.0, DEFAULT) for v in vectors]
    assert [s.terms() for s in stored] == [v.terms() for v in vectors]
    met_again = [rerank.StoredVector(v.source, v.length) for v in vectors]
    rerank.Candidates(met_again, 120.0, DEFAULT, terms)
    assert all(s._vector is None for s in met_again), "coded already: nothing to decode"
    assert rerank.weights_of(met_again[0], {"w0": 3.0}, 10.0, DEFAULT) == rerank.weights_of(vectors[0], {"w0": 3.0},
                                                                                            10.0, DEFAULT)


def test_weights_and_expansion_by_term_id_are_the_very_floats_of_the_dict_versions():
    rng = random.Random(13)
    for _ in range(40):
        terms = rerank.Terms()
        vectors = [
            rerank.Vector.of({f"w{rng.randrange(40)}": float(rng.choice([1, 2, 3, 1.5, 0.7])) for _ in range(25)},
                             tuple(dict.fromkeys(f"@e{rng.randrange(6)}" for _ in range(3))), 30.0)
            for _ in range(6)
        ]
        coded = [terms.code(v) for v in vectors]
        df = {name: float(rng.choice([1, 2, 3, 5, 8])) for name in terms.names if rng.random() < 0.9}
        frequencies = rerank.Frequencies(terms.names)
        ids = np.arange(len(terms.names))
        frequencies.update(ids, [str(int(df[name])).encode() if name in df else None for name in terms.names])
        n = float(rng.choice([20, 200]))
        by_id = [frequencies.weights(c, n, DEFAULT) for c in coded]
        by_name = [rerank.weights_of(v, df, n, DEFAULT) for v in vectors]
        assert [list(w.named(terms).items()) for w in by_id] == [list(w.items()) for w in by_name]
        assert [w.total() for w in by_id] == [sum(w.values()) for w in by_name]
        scores = [rng.choice([0.5, 1.0, 2.0, 3.3]) for _ in vectors]  # repeated scores make ties
        expected = rerank.expansion(list(zip(scores, by_name, strict=True)), DEFAULT)
        got = rerank.expansion_of(list(zip(scores, by_id, strict=True)), DEFAULT)
        assert list(got.named(terms).items()) == list(expected.items())
    assert len(rerank.expansion_of([], DEFAULT)) == 0
