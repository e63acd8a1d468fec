import copy
import json

import pytest
from marshmallow import INCLUDE, Schema, ValidationError, fields

from services.render.pages import article_page
from shared import keys
from shared.ninjs import (
    _HOOKS,
    NinjsArticle,
    Picture,
    Qcode,
    Qcodes,
    Rendition,
    _NotPlain,
    _plain_schema,
    article_from_json,
    article_to_json,
    error_list,
    load_article,
    load_ninjs,
)
from tests.conftest import SAMPLES, sample
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


def _documents() -> list:
    """Real articles and, for every field the schemas know at each level, each kind of value a
    client could send in it (or its absence): what the plain load must load as the schema does."""
    samples = [sample(), sample("editors-choice-article")]
    samples += [json.loads(p.read_text()) for p in sorted((SAMPLES / "superdesk").glob("*.ninjs.json"))]
    values = [None, "", "x", "x" * 1001, "x" * 20001, 0, 1, 9, 10, -1, True, 1.5, [], {}, ["a"], {"a": 1}, "12",
              "1" * 16, " 7 ", "2026-01-01T00:00:00", "2026-01-01T00:00:00+02:00", "2026-13-01", "en", "pt-BR",
              "en_US", "usable", "canceled", "withheld", "composite", "picture", "video", "image/jpeg",
              "https://x.example/a.jpg", "ftp://x.example/a", "data:image/png;base64,AAA", "data:text/plain,x",
              [{"name": "a"}], [{"scheme": "x"}], {"featuremedia": None}, {"original": {"href": "https://x.example/"}}]
    docs: list = [None, [], "doc", 5]
    seed = sample()
    media = seed["associations"]["featuremedia"]
    rendition = media["renditions"]["original"]
    for name in [*NinjsArticle().fields, "unknown"]:
        docs.append({k: v for k, v in seed.items() if k != name})
        docs += [{**seed, name: value} for value in values]
    for name in [*Picture().fields, "unknown"]:
        docs += [{**seed, "associations": {"featuremedia": {**media, name: value}}} for value in values]
        docs.append({**seed, "associations": {"featuremedia": {k: v for k, v in media.items() if k != name}}})
    for name in [*Rendition().fields, "unknown"]:
        for value in [*values, 100_000, 100_001]:
            renditions = {"original": {**rendition, name: value}, "thumb": {"href": "https://x.example/t.jpg"}}
            docs.append({**seed, "associations": {"featuremedia": {**media, "renditions": renditions}}})
    docs.append({**seed, "associations": {"featuremedia": {**media, "renditions": {5: rendition}}}})
    docs.append({**seed, "associations": {"featuremedia": {**media, "type": "video"}, "other": [1]}})
    return samples + docs


def test_the_plain_load_loads_and_refuses_what_the_schema_does():
    schema = NinjsArticle()

    def outcome(load, doc):
        try:
            return "loaded", load(copy.deepcopy(doc))
        except ValidationError as exc:
            return "refused", exc.messages

    documents = _documents()
    outcomes = [(outcome(load_ninjs, doc), outcome(schema.load, doc)) for doc in documents]
    for doc, (plain, slow) in zip(documents, outcomes, strict=True):
        assert plain == slow, doc
    loaded = sum(slow[0] == "loaded" for _, slow in outcomes)
    assert 150 < loaded < len(documents) - 150  # both kinds are many


def test_the_plain_load_takes_most_documents_itself_and_never_returns_the_callers_objects():
    seed = sample()
    loaded = _plain_schema(NinjsArticle(), seed)  # raises _NotPlain if the seed were left to the schema
    assert loaded == NinjsArticle().load(sample())
    media = loaded["associations"]["featuremedia"]
    assert media is not seed["associations"]["featuremedia"]
    assert media["renditions"]["original"] is not seed["associations"]["featuremedia"]["renditions"]["original"]
    with pytest.raises(_NotPlain):
        _plain_schema(NinjsArticle(), {**seed, "version": "three"})


def test_the_plain_load_runs_every_hook_the_schemas_declare():
    for schema, (before, after) in _HOOKS.items():
        declared = {kind: [name for name, *_ in hooks] for kind, hooks in schema._hooks.items() if hooks}
        assert declared == {k: [v] for k, v in (("pre_load", before), ("validates_schema", after)) if v}, schema
        for _, many, options in (hook for hooks in schema._hooks.values() for hook in hooks):
            assert not many and not options.get("pass_original"), schema  # called as the plain load calls it
        assert schema.Meta.unknown == INCLUDE
    nested = {type(f.schema) for f in NinjsArticle().fields.values() if isinstance(f, fields.Nested)}
    nested |= {type(f.schema) for f in Picture().fields.values() if isinstance(f, fields.Nested)}
    nested |= {type(f.value_field.schema) for f in Picture().fields.values() if isinstance(f, fields.Dict)}
    assert nested <= set(_HOOKS)
