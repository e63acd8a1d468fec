"""Quality floors on long articles, against batch TF-IDF computed in the same run (not absolute numbers).

The fixtures are original long-form articles (tests/render/related/fixtures/README.md):
60 English articles of 280-420 words in five desks with running stories that cross
desks, and 24 shorter German, French and Spanish ones.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.render.related import RelatedDoc, RelatedIndex, evaluate
from tests.render.related.conftest import lists_after_indexing

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def run_set(rclient):
    def run(name: str) -> evaluate.SetReport:
        records = evaluate.load_records(FIXTURES / name)
        index = RelatedIndex(rclient, prefix=f"test:relq:{uuid.uuid4().hex[:10]}")
        try:
            report = evaluate.evaluate(records, index)
        finally:
            index.drop()
        tfidf, bm25 = evaluate.references(records)
        return evaluate.SetReport(name, report, tfidf, bm25)

    return run


def test_long_articles_rank_at_least_as_well_as_batch_tfidf(run_set):
    result = run_set("long_news.jsonl")
    assert result.engine.articles == 60
    assert result.tfidf is not None and 0.5 < result.tfidf.at_5 < 1.0  # the set is neither trivial nor noise
    assert result.engine.precision_at_5 >= result.tfidf.at_5, result
    assert result.engine.precision_at_10 >= result.tfidf.at_10, result


def test_each_language_is_ranked_on_its_own_and_close_to_tfidf(run_set, rclient):
    result = run_set("long_news_multilingual.jsonl")
    # both rank each article among the 7 others of its language (3 of its desk): at most 0.6 / 0.3
    assert result.tfidf.at_5 <= 0.6 and result.engine.precision_at_5 <= 0.6
    # 24 articles: one list entry is 0.008 of P@5; allow two entries' worth below the reference
    assert result.engine.precision_at_5 >= result.tfidf.at_5 - 0.017, result
    assert result.engine.precision_at_10 >= result.tfidf.at_10 - 0.009, result


def test_lists_of_long_articles_do_not_depend_on_arrival_order(rclient):
    """Incremental indexing gives the lists that reindexing the same articles in another order gives."""
    records = evaluate.load_records(FIXTURES / "long_news.jsonl")
    docs = [RelatedDoc(r["id"], "en", r["title"], r["body"], (), float(i)) for i, r in enumerate(records)]
    lists = [lists_after_indexing(rclient, docs), lists_after_indexing(rclient, list(reversed(docs)))]
    assert all(len(listed) == 5 for listed in lists[0].values())
    assert lists[0] == lists[1]
