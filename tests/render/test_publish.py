"""Reconciling an article's page with its state, on real Redis and S3, without Celery."""

import json
import uuid

from services.ingest.articles.intake import accept_article
from services.render import publish
from services.render.upload import Uploader
from shared import keys
from shared.ninjs import load_article
from tests.conftest import unique_article


class Recorder:
    """Effects of a reconcile, kept for the test to look at."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.builds = 0
        self.refreshed: list[str] = []

    def notify(self, event: dict) -> None:
        self.events.append(event)

    def build_site(self) -> None:
        self.builds += 1

    def refresh_related(self, aid: str) -> None:
        self.refreshed.append(aid)


class NoBroker:
    """The ingest side's send_task; the outbox keeps what it was not given."""

    def send_task(self, *args, **kwargs):
        raise ConnectionError("no broker in this test")


def accept(rt, doc):
    article = load_article(doc)
    accept_article(rt, NoBroker(), article, doc)
    return article


def test_reconcile_twice_has_the_effect_of_once(rt):
    effects = Recorder()
    article = accept(rt, unique_article())
    first = publish.reconcile(rt, article.id, 1, effects)
    second = publish.reconcile(rt, article.id, 1, effects)
    assert first.action == "published" and second.action == "unchanged"
    assert [e["type"] for e in effects.events] == ["article.published"]
    state = rt.articles.get(article.id)
    assert [e["event"] for e in state["timeline"]].count("published") == 1


def test_an_old_task_never_overwrites_a_newer_page(rt):
    doc = unique_article()
    article = accept(rt, doc)
    accept(rt, {**doc, "version": "2", "headline": "Newer"})
    assert publish.reconcile(rt, article.id, 1, Recorder()).action == "superseded"
    assert publish.reconcile(rt, article.id, 2, Recorder()).action == "published"
    key = rt.articles.get(article.id)["key"]
    assert "Newer" in rt.site.get(key).body.decode()


def test_update_event_then_withdrawal_event(rt):
    effects = Recorder()
    events = effects.events
    doc = unique_article()
    article = accept(rt, doc)
    publish.reconcile(rt, article.id, 1, effects)
    accept(rt, {**doc, "version": "2"})
    publish.reconcile(rt, article.id, 2, effects)
    assert publish.reconcile(rt, article.id, 2, effects, force=True).action == "published"
    rt.articles.request_withdraw(article.id)
    assert publish.reconcile(rt, article.id, 2, effects).action == "withdrawn"
    assert publish.reconcile(rt, article.id, 2, effects).action == "unchanged"
    assert [e["type"] for e in events] == ["article.published", "article.updated", "article.withdrawn"]
    assert events[-1]["headline"] == doc["headline"] and events[-1]["url"].startswith("https://news.example.test/")
    assert "Defence" in events[0]["topics"] and "Editor's choice" not in events[0]["topics"]
    assert effects.builds == 4


def test_same_slug_for_two_articles_gets_two_paths(rt):
    a = accept(rt, unique_article())
    b = accept(rt, unique_article())
    publish.reconcile(rt, a.id, 1, Recorder())
    publish.reconcile(rt, b.id, 1, Recorder())
    assert rt.articles.get(a.id)["path"] != rt.articles.get(b.id)["path"]


def test_missing_document_is_a_permanent_failure(rt):
    article = accept(rt, unique_article())
    doc_key = rt.articles.get(article.id)["doc_key"]
    rt.data.delete(doc_key)
    try:
        publish.reconcile(rt, article.id, 1, Recorder())
    except publish.PermanentFailure as exc:
        assert doc_key in str(exc)
    else:
        raise AssertionError("expected PermanentFailure")


def test_outbox_keeps_what_the_broker_did_not_take(rt):
    article = accept(rt, unique_article())
    assert rt.redis.zscore(keys.OUTBOX, f"{article.id}:1") is not None
    rt.articles.outbox_done(article.id, 1)


def test_unchanged_bytes_are_not_uploaded_again(rt):
    body = json.dumps({"a": 1}).encode()
    assert Uploader(rt).put("test/unchanged.json", body)
    assert not Uploader(rt).put("test/unchanged.json", body)
    assert rt.site.get("test/unchanged.json").content_type == "application/json"


def test_a_refused_photo_does_not_block_the_article_and_is_not_fetched_again(rt):
    effects = Recorder()
    article = accept(rt, unique_article())
    assert publish.reconcile(rt, article.id, 1, effects).action == "published"
    state = rt.articles.get(article.id)
    [skipped] = [e for e in state["timeline"] if e["event"] == "photo skipped"]
    assert "photos.example.org" in skipped["reason"]
    assert rt.redis.ttl(keys.photo_refused(article.photo.href)) > 0
    rt.redis.set(keys.photo_refused(article.photo.href), b"remembered refusal")
    publish.reconcile(rt, article.id, 1, effects, force=True)
    assert rt.articles.get(article.id)["timeline"][-2]["reason"] == "remembered refusal"
    html = rt.site.get(state["key"]).body.decode()
    assert "<img" not in html and article.photo.caption in html  # the caption and credit stay


def test_a_forced_rerender_of_an_unchanged_article_marks_no_list(rt):
    from services.render.site_index import SiteIndex

    article = accept(rt, unique_article())
    publish.reconcile(rt, article.id, 1, Recorder())
    index = SiteIndex(rt.redis)
    assert "list:home" in index.take_dirty()
    index.done_building()
    publish.reconcile(rt, article.id, 1, Recorder(), force=True)
    assert not [m for m in index.take_dirty() if m.startswith("list:")]


def test_marks_taken_by_a_build_that_died_are_built_by_the_next(rt):
    from services.render import site_build
    from services.render.site_index import BUILDING, SiteIndex

    topic = f"Crash {uuid.uuid4().hex[:8]}"
    doc = unique_article()
    doc["subject"] = [{"name": topic}]
    article = accept(rt, doc)
    publish.reconcile(rt, article.id, 1, Recorder())
    index = SiteIndex(rt.redis)
    taken = index.take_dirty()  # a build took these marks, then its process was killed
    assert "list:home" in taken and f"list:topic:{keys.slugify(topic)}" in taken
    result = site_build.build(rt, lambda ids: None)
    assert result["pages"] >= len(taken)
    assert not rt.redis.hexists(BUILDING, "list:home")  # done: nothing left over
    url = rt.articles.get(article.id)["url"]
    assert url in rt.site.get(f"topic/{keys.slugify(topic)}/index.html").body.decode()


def test_a_publication_asks_once_for_its_fan_out_which_marks_the_neighbours_that_now_list_it(rt):
    from services.render.site_index import SiteIndex

    words = [f"qx{uuid.uuid4().hex[:8]}" for _ in range(16)]

    def story(order: list[int]) -> dict:
        text = " ".join(words[i] for i in order)
        return unique_article(headline=f"{words[order[0]]} {words[order[1]]}", body_html=f"<p>{text} {text}</p>",
                              subject=[], place=[], person=[], organisation=[])  # shared topics relate every copy

    effects = Recorder()
    first = accept(rt, story(list(range(16))))
    publish.reconcile(rt, first.id, 1, effects)
    second = accept(rt, story([15, 3, 9, 0, 12, 6, 1, 14, 4, 10, 7, 2, 13, 5, 11, 8]))
    publish.reconcile(rt, second.id, 1, effects)
    publish.reconcile(rt, second.id, 1, effects, force=True)  # same text: no lists change
    assert effects.refreshed == [first.id, second.id]

    index = SiteIndex(rt.redis)
    index.take_dirty()
    index.done_building()
    assert publish.refresh_related_lists(rt, second.id) == [first.id]
    assert f"article:{first.id}" in index.take_dirty()
    index.done_building()
    rt.articles.request_withdraw(second.id)
    publish.reconcile(rt, second.id, 1, effects)
    assert publish.refresh_related_lists(rt, second.id) == []  # withdrawn: out of the index, nothing to do


def test_a_publication_whose_first_run_died_after_indexing_still_asks_for_its_fan_out(rt):
    from services.render.related import RelatedIndex, related_doc_from_article

    article = accept(rt, unique_article())
    RelatedIndex(rt.redis).upsert(related_doc_from_article(article))  # the dead run got this far
    effects = Recorder()
    assert publish.reconcile(rt, article.id, 1, effects).action == "published"
    assert effects.refreshed == [article.id]
    publish.reconcile(rt, article.id, 1, effects, force=True)  # a refresh of the finished one asks nothing
    assert effects.refreshed == [article.id]
