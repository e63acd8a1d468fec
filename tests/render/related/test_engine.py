"""The related index on a real Redis: the list properties the render service relies on."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from services.render.related import RelatedDoc, RelatedIndex
from services.render.related.keys import Keys
from tests.render.related.conftest import CORPUS, corpus_docs

DESK = {doc.id: desk for desk, doc in corpus_docs()}


def test_lists_are_on_topic_and_never_hold_the_article_itself(newsroom):
    for desk, doc in corpus_docs():
        listed = newsroom.query(doc.id, k=10)
        assert doc.id not in listed
        assert len(listed) >= 3
        assert [DESK[other] for other in listed[:3]] == [desk] * 3, (doc.id, listed)


def test_k_bounds_the_list(newsroom):
    assert len(newsroom.query("football-0", k=2)) == 2
    assert newsroom.query("football-0", k=0) == []
    assert newsroom.query("no-such-article") == []


def test_rescore_reorders_the_candidates_under_the_same_picking_rules(newsroom):
    plain = newsroom.query("football-0", k=10)
    assert len(plain) >= 3
    assert newsroom.query("football-0", k=10, rescore=lambda candidates: candidates) == plain

    def reversed_scores(candidates):
        return [c._replace(score=1.0 + plain.index(c.id)) if c.id in plain else
                c._replace(score=0.0) for c in candidates]

    assert newsroom.query("football-0", k=10, rescore=reversed_scores) == plain[::-1]
    assert newsroom.query("football-0", k=3, rescore=lambda cs: [c._replace(score=0.0) for c in cs]
                          ) == []  # nothing above the score floor: the engine's own rule still applies


def test_withdrawn_article_leaves_every_list(newsroom, rclient, prefix):
    assert "football-2" in newsroom.query("football-0")
    newsroom.remove("football-2")
    for _, doc in corpus_docs():
        assert "football-2" not in newsroom.query(doc.id, k=20)
    assert newsroom.query("football-2") == []
    assert len(newsroom) == 11
    assert rclient.hget(Keys(prefix).df("en"), "diaz") == b"1"  # only football-0 still says Diaz
    newsroom.remove("football-2")  # withdrawing twice is harmless


def test_removing_every_article_leaves_no_postings_or_counts(index, rclient, prefix):
    for _, doc in corpus_docs():
        index.index(doc)
    for _, doc in corpus_docs():
        index.remove(doc.id)
    left = sorted(k.decode() for k in rclient.scan_iter(match=f"{prefix}:*"))
    assert left == [f"{prefix}:seq", f"{prefix}:stats:en"]
    assert rclient.hget(Keys(prefix).stats("en"), "n") == b"0"
    assert float(rclient.hget(Keys(prefix).stats("en"), "len")) == pytest.approx(0.0, abs=1e-6)


def test_reindexing_the_same_article_changes_nothing(newsroom, rclient, prefix):
    keys = Keys(prefix)
    before = (rclient.hgetall(keys.df("en")), rclient.hgetall(keys.stats("en")), newsroom.query("rates-0"))
    for _, doc in corpus_docs()[:5]:
        assert newsroom.index(doc, fanout=5) == []
    after = (rclient.hgetall(keys.df("en")), rclient.hgetall(keys.stats("en")), newsroom.query("rates-0"))
    assert after == before
    assert len(newsroom) == 12


def test_correction_replaces_the_old_terms(newsroom, rclient, prefix):
    keys = Keys(prefix)
    assert "football-3" in newsroom.query("football-0")
    corrected = RelatedDoc(
        "football-3", "en", "Telescope mirror unfolds in orbit",
        "Engineers at the space agency confirmed the telescope mirror unfolded in orbit, ready to study "
        "distant planets and the water vapour around them.", (), 1_700_100_000.0,
    )
    newsroom.index(corrected)
    assert "football-3" not in newsroom.query("football-0", k=20)
    assert "football-3" in newsroom.query("space-3", k=3)
    assert DESK[newsroom.query("football-3", k=1)[0]] == "space"
    # "goalkeeper" was in football-0 and football-3; now only football-0 holds it
    assert rclient.hget(keys.df("en"), "goalkeeper") == b"1"
    assert rclient.zrange(keys.posting("en", "goalkeeper"), 0, -1) == [rclient.hget(keys.ids, "football-0")]
    assert len(newsroom) == 12


def test_near_duplicates_are_not_listed_and_collapse_to_one(newsroom):
    title, body = CORPUS["rates"][0]
    refiled = RelatedDoc("rates-0-refiled", "en", title + " again", body + " Markets were calm.", (), 1_700_200_000.0)
    wire = RelatedDoc("rates-0-wire", "en", title, "UPDATE 1 - " + body, (), 1_700_300_000.0)
    newsroom.index(refiled)
    newsroom.index(wire)
    story = {"rates-0", "rates-0-refiled", "rates-0-wire"}
    for member in story:
        assert not (story & set(newsroom.query(member, k=20))), member
    for other in ("rates-1", "rates-2", "rates-3"):
        listed = newsroom.query(other, k=20)
        assert len(story & set(listed)) == 1, (other, listed)


def test_of_identical_copies_the_newest_is_listed(newsroom):
    title, body = CORPUS["rates"][0]
    newsroom.index(RelatedDoc("rates-0-copy", "en", title, body, (), 1_800_000_000.0))
    listed = newsroom.query("rates-1", k=20)
    assert "rates-0-copy" in listed
    assert "rates-0" not in listed


def test_lists_stay_within_the_language(newsroom):
    french = [
        RelatedDoc("fr-0", "fr", "Rovers bat City en coupe", "Diaz a marqué deux buts pour Rovers contre City en "
                   "coupe, le gardien et la défense ont brillé.", (), 1_700_000_500.0),
        RelatedDoc("fr-1", "fr-FR", "Diaz, joueur du mois", "Diaz, attaquant des Rovers, est élu joueur du mois "
                   "après ses buts en coupe contre City.", (), 1_700_000_600.0),
    ]
    british = RelatedDoc("gb-0", "en-GB", "Diaz double sinks City", "Rovers striker Diaz scored twice in the cup "
                         "derby as City were beaten at the stadium.", (), 1_700_000_700.0)
    for doc in [*french, british]:
        newsroom.index(doc)
    for _, doc in corpus_docs():
        assert not {"fr-0", "fr-1"} & set(newsroom.query(doc.id, k=20))
    assert newsroom.query("fr-0", k=20) == ["fr-1"]
    assert "gb-0" in newsroom.query("football-0", k=5)  # en-GB and en are one language


def test_shared_topics_rank_an_article_higher(index):
    tags = ("Central Bank", "Inflation")
    base = RelatedDoc("q", "en", "Bank holds rates", "The bank kept rates on hold in a split vote.", tags, 1.0)
    tagged = RelatedDoc("tagged", "en", "Rates decision looms", "Officials meet to decide on rates and bonds.",
                        ("central  bank",), 2.0)
    plain = RelatedDoc("plain", "en", "Rates verdict looms", "Ministers gather to settle rates and loans.", (), 3.0)
    for doc in (base, tagged, plain):
        index.index(doc)
    assert index.query("q") == ["tagged", "plain"]


@pytest.mark.parametrize("newest", ["alpha", "beta"])
def test_recency_breaks_ties(index, newest):
    # enough earlier harbour stories that two more barely move the word's statistics
    for i in range(60):
        words = " ".join(f"w{i}x{j}" for j in range(12))
        index.index(RelatedDoc(f"earlier-{i}", "en", f"Story {i}", f"{words} by the harbour.", (), float(i)))
    times = {"alpha": 100.0, "beta": 100.0}
    times[newest] = 200.0
    index.index(RelatedDoc("q", "en", "Harbour", "Harbour cranes idle.", (), 90.0))
    index.index(RelatedDoc("alpha", "en", "Harbour", "Orchard apples ripen.", (), times["alpha"]))
    index.index(RelatedDoc("beta", "en", "Harbour", "Violin strings snap.", (), times["beta"]))
    assert index.query("q", k=2) == [newest, "beta" if newest == "alpha" else "alpha"]


def test_index_survives_a_worker_restart(newsroom, redis_server, prefix):
    before = {doc.id: newsroom.query(doc.id) for _, doc in corpus_docs()}
    newsroom.redis.close()
    fresh_client = redis.Redis.from_url(redis_server.url)
    fresh_client.script_flush()  # a restarted Redis has no script cache either
    restarted = RelatedIndex(fresh_client, prefix=prefix)
    after = {doc.id: restarted.query(doc.id) for _, doc in corpus_docs()}
    assert after == before
    assert all(after.values())
    fresh_client.close()


def test_fanout_names_articles_whose_lists_now_include_the_new_one(newsroom):
    lists_before = {doc.id: newsroom.query(doc.id, k=10) for _, doc in corpus_docs()}
    new = RelatedDoc("football-new", "en", "Rovers striker Diaz signs new contract", "Diaz, the Rovers striker who "
                     "scored twice in the cup derby against City, signed a new contract with the club.", (), 2e9)
    affected = newsroom.index(new, fanout=5)
    assert affected, "a story this close to the football desk must enter some of its lists"
    assert len(affected) <= 5
    for aid in affected:
        assert "football-new" not in lists_before[aid]
        assert "football-new" in newsroom.query(aid, k=10)
    assert {"football-0", "football-1", "football-2", "football-3"} <= set(affected)
    unrelated = RelatedDoc("space-new", "en", "Comet tail photographed", "A comet tail was photographed.", (), 2e9)
    assert newsroom.index(unrelated, fanout=0) == []


def test_an_article_without_words_is_indexed_and_listed_nowhere(newsroom):
    assert newsroom.index(RelatedDoc("empty", "en", "", "", (), 1.0)) == []
    assert newsroom.query("empty") == []
    assert all("empty" not in newsroom.query(doc.id, k=20) for _, doc in corpus_docs())


def test_a_decoding_client_is_refused(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RelatedIndex(client)
    client.close()


def test_tuning_caps_posting_lists(rclient, prefix):
    from services.render.related.scoring import Tuning

    small = RelatedIndex(rclient, prefix=prefix, tuning=dataclasses.replace(Tuning(), posting_cap=3))
    for i in range(6):
        small.index(RelatedDoc(f"d{i}", "en", "Harbour strike", f"Dockers strike at the harbour, day {'x' * i}.",
                               (), float(i)))
    assert rclient.zcard(Keys(prefix).posting("en", "harbour")) == 3


def test_query_many_gives_every_article_the_list_query_gives_it(newsroom):
    ids = [doc.id for _, doc in corpus_docs()] + ["never-indexed"]
    batched = newsroom.query_many(ids, k=10, chunk=7)  # chunks that do not divide the corpus
    assert batched == {aid: newsroom.query(aid, 10) for aid in ids}
    assert batched["never-indexed"] == [] and all(batched[aid] for aid in ids[:-1])


def test_query_many_gives_the_same_lists_when_its_kept_records_are_cleared(newsroom, monkeypatch):
    from services.render.related import records

    ids = [doc.id for _, doc in corpus_docs()]
    warm = newsroom.query_many(ids, k=10, chunk=3)
    assert len(records.RECORDS) >= len(ids) - 1  # every article is some other's candidate
    monkeypatch.setattr(records.RECORDS, "limit", 0)  # cleared before every batch
    assert newsroom.query_many(ids, k=10, chunk=3) == warm == {aid: newsroom.query(aid, 10) for aid in ids}


def test_a_corrected_or_removed_candidate_is_never_served_from_the_kept_records(newsroom, monkeypatch):
    from services.render.related import records

    ids = [doc.id for _, doc in corpus_docs()]
    newsroom.query_many(ids, k=10)  # every record kept
    corrected = RelatedDoc(
        "football-3", "en", "Telescope mirror unfolds in orbit",
        "Engineers at the space agency confirmed the telescope mirror unfolded in orbit, ready to study "
        "distant planets and the water vapour around them.", (), 1_700_100_000.0,
    )
    newsroom.upsert(corrected)
    newsroom.remove("space-2")
    warm = newsroom.query_many(ids, k=10)
    assert "football-3" in warm["space-3"] and not any("space-2" in found for found in warm.values())
    monkeypatch.setattr(records, "RECORDS", records.Records())  # a process that kept nothing
    assert newsroom.query_many(ids, k=10) == warm


def test_a_candidate_removed_between_the_query_and_the_read_of_its_record_is_left_out(newsroom, rclient):
    from services.render.related import records

    raw = newsroom._query(keys=[newsroom.keys.ids], args=newsroom._query_args("space-3"))
    named = [raw[i + 2].decode() for i in range(5, len(raw), 4)]
    assert "space-1" in named
    newsroom.remove("space-1")
    reply = newsroom._replies([raw], records.Records())[0]
    assert [c.id for c, _ in reply.candidates] == [aid for aid in named if aid != "space-1"]


def test_affected_by_names_only_neighbours_that_list_the_article(newsroom):
    from services.render.related.engine import LIST_SIZE

    found = 0
    for _, doc in corpus_docs():
        affected = newsroom.affected_by(doc.id, fanout=8)  # its batch of queries reads each record once
        assert doc.id not in affected
        assert all(doc.id in newsroom.query(other, LIST_SIZE) for other in affected)
        found += len(affected)
    assert found


def test_upsert_many_indexes_as_upsert_does_with_new_unchanged_and_corrected_articles(newsroom, rclient, prefix):
    keys = Keys(prefix)
    one_by_one = {aid: newsroom.query(aid) for aid, _ in ((d.id, d) for _, d in corpus_docs())}
    batched = RelatedIndex(rclient, prefix=f"{prefix}:b")
    assert batched.upsert_many([doc for _, doc in corpus_docs()]) == [True] * 12
    assert {doc.id: batched.query(doc.id) for _, doc in corpus_docs()} == one_by_one
    assert rclient.hgetall(Keys(f"{prefix}:b").df("en")) == rclient.hgetall(keys.df("en"))

    corrected = RelatedDoc(
        "football-3", "en", "Telescope mirror unfolds in orbit",
        "Engineers at the space agency confirmed the telescope mirror unfolded in orbit, ready to study "
        "distant planets and the water vapour around them.", (), 1_700_100_000.0,
    )
    unchanged = corpus_docs()[0][1]
    assert batched.upsert_many([unchanged, corrected], [batched.analyse(unchanged), batched.analyse(corrected)]) \
        == [False, True]  # analysed by the caller, as a rebuild's phase 1 does while it reads documents
    assert "football-3" in batched.query("space-3", k=3) and len(batched) == 12
    assert rclient.hget(Keys(f"{prefix}:b").df("en"), "goalkeeper") == b"1"
    assert batched.upsert_many([]) == []


def test_a_batch_whose_term_ids_another_thread_trims_meanwhile_ranks_as_it_would_alone(newsroom):
    from services.render.related import rerank

    class TrimmedMidBatch(rerank.Terms):
        """Does, after the first vector is coded, what another thread's `trim` does: a race
        two real threads hit only by chance."""

        raced = False

        def code(self, vector):
            found = super().code(vector)
            if not self.raced:
                self.raced = True
                with self._lock:
                    self.index, self.names, self._coded = {}, [], {}
            return found

    ids = [doc.id for _, doc in corpus_docs()][:4]
    pipe = newsroom.redis.pipeline(transaction=False)
    for aid in ids:
        newsroom._query(keys=[newsroom.keys.ids], args=newsroom._query_args(aid), client=pipe)
    raw = pipe.execute()
    alone = newsroom._rank(newsroom._replies(raw), rerank.Terms())
    racy = TrimmedMidBatch()
    assert newsroom._rank(newsroom._replies(raw), racy) == alone
    assert racy.raced and all(candidates for _, candidates in alone)
