import json

import pytest
from marshmallow import Schema, ValidationError, fields

from services.render.pages import article_page
from shared import keys
from shared.ninjs import NinjsArticle, Qcode, Qcodes, article_from_json, article_to_json, error_list, load_article
from tests.conftest import sample
from tests.render.test_pages import PHOTO, SITE


def test_seed_article_loads_into_the_model():
    article = load_article(sample())
    assert article.id == keys.article_id(sample()["uri"])
    assert article.version == 1
    assert article.section == "News"
    assert article.photo.credit == "picture courtesy of the press service of the president of Azerbaijan"
    assert article.photo.caption.startswith("Israeli Defence Minister Avigdor Liberman meeting")
    assert {t.name for t in article.topics if t.kind == "person"} >= {"Avigdor Liberman", "Ilham Aliyev"}


def test_superdesk_guid_is_accepted_in_place_of_uri():
    doc = sample()
    doc["guid"] = doc.pop("uri")
    assert load_article(doc).uri == sample()["uri"]


def test_unknown_fields_are_kept():
    doc = {**sample(), "extra": {"anything": [1, 2]}}
    assert NinjsArticle().load(doc)["extra"] == {"anything": [1, 2]}


def test_ids_are_url_safe_and_stable():
    aid = keys.article_id("urn:x:1")
    assert aid == keys.article_id("urn:x:1") != keys.article_id("urn:x:2")
    assert keys.ARTICLE_ID.match(aid)


def test_error_paths_reach_nested_fields():
    doc = sample()
    doc["associations"]["featuremedia"]["renditions"]["original"]["href"] = "ftp://x/y.jpg"
    doc["subject"][1] = {"scheme": "x"}
    doc["version"] = "one"
    with pytest.raises(ValidationError) as info:
        NinjsArticle().load(doc)
    fields = {e["field"] for e in error_list(info.value.messages)}
    assert fields == {"associations.featuremedia.renditions.original.href", "subject.1.name", "version"}


def test_canceled_needs_no_body():
    article = load_article({"uri": "urn:x", "version": "3", "pubstatus": "canceled"})
    assert article.withdrawn


@pytest.mark.parametrize("name", ["seed-article", "editors-choice-article"])
def test_an_article_survives_its_json_form_and_renders_the_same_page(name):
    doc = sample(name)
    doc["embargoed"] = "2018-09-13T09:30:00+02:00"  # an offset other than UTC keeps its offset
    article = load_article(doc)
    again = article_from_json(json.loads(json.dumps(article_to_json(article))))
    assert again == article
    times = ("firstcreated", "firstpublished", "versioncreated", "embargoed")
    offsets = [(t, getattr(article, t) and getattr(article, t).utcoffset()) for t in times]
    assert [(t, getattr(again, t) and getattr(again, t).utcoffset()) for t in times] == offsets
    assert again.embargoed.utcoffset().total_seconds() == 7200
    assert article_page(again, "2018/09/13/x", SITE, PHOTO) == article_page(article, "2018/09/13/x", SITE, PHOTO)


def test_one_schema_loads_from_many_threads_as_it_loads_alone():
    from concurrent.futures import ThreadPoolExecutor

    docs = []
    for i in range(200):
        doc = sample()
        doc["uri"], doc["headline"], doc["version"] = f"urn:x:{i}", f"Story {i}", i + 1
        if i % 3 == 0:
            doc["subject"][1] = {"scheme": "x"}  # invalid: its errors must stay its own
        docs.append(doc)

    def outcome(doc):
        try:
            return load_article(doc)
        except ValidationError as exc:
            return exc.messages

    alone = [outcome(doc) for doc in docs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            assert list(pool.map(outcome, docs)) == alone
    assert sum(isinstance(o, dict) for o in alone) == 67


QCODE_LISTS = [
    [], [{"name": "Politics"}], [{"code": "11000000"}], [{"name": "x" * 500, "code": "c" * 500, "scheme": "s" * 200}],
    [{"name": "Politics", "code": "11000000", "scheme": "IPTC", "extra": {"kept": [1]}}], [{"code": "c", "scheme": ""}],
    [{"name": ""}], [{"code": ""}], [{"name": "x" * 501}], [{"code": "c" * 501}], [{"name": "a", "scheme": "s" * 201}],
    [{"scheme": "IPTC"}], [{}], [{"name": None}], [{"name": "a", "code": None}], [{"name": "a", "scheme": None}],
    [{"name": 5}], [{"code": ["c"]}], [{"name": "a"}, "b"], [None], [5], [["name", "a"]],
    [{"name": "ok"}, {"name": ""}], "not a list", {"name": "a"}, None, 5,
]


@pytest.mark.parametrize("value", QCODE_LISTS, ids=[repr(v)[:40] for v in QCODE_LISTS])
def test_qcode_lists_load_as_a_list_of_qcode_schemas_loads_them(value):
    class Slow(Schema):
        subject = fields.List(fields.Nested(Qcode), allow_none=False)

    class Fast(Schema):
        subject = Qcodes()

    def outcome(schema):
        try:
            return "loaded", schema.load({"subject": value})
        except ValidationError as exc:
            return "refused", exc.messages

    slow, fast = outcome(Slow()), outcome(Fast())
    assert fast == slow
    if slow[0] == "loaded":
        assert all(a is not b for a, b in zip(fast[1]["subject"], value, strict=True))  # a copy, as the schema makes
