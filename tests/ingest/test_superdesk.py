"""Superdesk's HTTP Push, as its transmitter sends it, against the API under gunicorn."""

import json
import uuid

import pytest
import requests
from marshmallow import ValidationError

from services.ingest.articles import superdesk
from shared import keys
from shared.ninjs import choose_rendition, load_article
from shared.settings import Settings, SettingsError
from tests.conftest import OLD_SUPERDESK_SECRET, ROOT, SUPERDESK_SECRET
from tests.ingest.test_articles import assert_nothing_stored, stored_objects

SAMPLES = ROOT / "tests" / "samples" / "superdesk"


def fixture(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.ninjs.json").read_text())


def unique(name: str = "text-featuremedia", **changes) -> dict:
    doc = fixture(name)
    doc["guid"] = f"{doc['guid']}-{uuid.uuid4().hex[:10]}"
    doc.update(changes)
    return doc


def push(api: str, doc: dict, secret: str | None = SUPERDESK_SECRET, signature: str | None = None):
    """POST exactly as superdesk-core's HTTPPushService._push_item does: json.dumps, then sign the str."""
    data = json.dumps(doc)
    headers = {"Content-type": "application/json", "Accept": "application/json"}
    if signature is not None:
        headers[superdesk.HEADER] = signature
    elif secret is not None:
        headers[superdesk.HEADER] = superdesk.sign(secret, data.encode("utf-8"))
    return requests.post(f"{api}/v1/articles", data=data, headers=headers, timeout=60)  # a hang guard only


# --- signature -------------------------------------------------------------------------


def test_signature_matches_superdesk_core_test_vector():
    # tests/publish/transmitters/http_push_transmitter_tests.py::test_get_headers
    assert superdesk.sign("123456789", b"test payload") == "sha1=8be62a607898504f87559cb52dc23f9ebee65a21"
    superdesk.verify(["another-secret-000000", "123456789"], "sha1=8be62a607898504f87559cb52dc23f9ebee65a21",
                     b"test payload")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("8be62a607898504f87559cb52dc23f9ebee65a21", "must be 'sha1=<hex digest>'"),
        ("sha256=8be62a607898504f87559cb52dc23f9ebee65a21", "must be 'sha1=<hex digest>'"),
        ("sha1=", "must be 'sha1=<hex digest>'"),
        ("sha1=zz", "not a hex digest"),
        ("sha1=8be62a", "not a SHA-1 digest"),
        ("sha1=0000000000000000000000000000000000000000", "no signature matches"),
    ],
)
def test_bad_signature_headers_are_refused_with_a_reason(header, message):
    with pytest.raises(superdesk.SignatureError, match=message):
        superdesk.verify(["123456789"], header, b"test payload")


def test_no_configured_secret_refuses_every_push():
    with pytest.raises(superdesk.SignatureError, match="PRESSROOM_SUPERDESK_SECRETS"):
        superdesk.verify([], superdesk.sign("123456789", b"x"), b"x")


def test_superdesk_secrets_setting_is_comma_separated_checked_and_hidden():
    settings = Settings.from_env({"PRESSROOM_SUPERDESK_SECRETS": " first-secret-0123456789 , second-secret-abcdefgh,"})
    assert settings.superdesk_secrets == ("first-secret-0123456789", "second-secret-abcdefgh")
    assert "first-secret" not in repr(settings) and "superdesk_secrets=<2 hidden>" in repr(settings)
    assert Settings.from_env({}).superdesk_secrets == ()
    with pytest.raises(SettingsError, match="^PRESSROOM_SUPERDESK_SECRETS: each secret must be at least 16"):
        Settings.from_env({"PRESSROOM_SUPERDESK_SECRETS": "short"})


# --- NINJS as Superdesk formats it -----------------------------------------------------


def test_superdesk_text_item_loads_with_photo_caption_credit_and_topics():
    article = load_article(fixture("text-featuremedia"))
    assert article.uri == "tag:aap.com.au:20150613:12345" and article.version == 1
    assert (article.headline, article.byline, article.located, article.slugline) == (
        "This is a test headline", "joe", "Sydney", "slugline")
    assert article.versioncreated.isoformat() == "2015-06-13T10:05:00+00:00"  # Superdesk's "+0000"
    assert article.published_at.isoformat() == "2015-06-13T10:05:00+00:00"  # firstpublished
    assert article.photo.href.endswith("/55b078b21d41c8e974d17ec5/raw?_schema=http")  # original
    assert (article.photo.width, article.photo.height) == (2784, 4176)
    assert article.photo.caption == "Foo picture"
    assert article.photo.credit == "MICKEY MOUSE / Foo ltd."
    assert [t.name for t in article.topics if t.kind == "subject"] == ["international court or tribunal",
                                                                       "extradition"]
    assert [t.name for t in article.topics if t.kind == "place"] == ["New South Wales"]


def test_subject_schemes_and_non_latin_names_are_kept():
    article = load_article(fixture("subject-schemes"))
    assert [(t.scheme, t.code, t.name) for t in article.topics][0] == (
        "subject_custom", "subject:01000002", "アウトカム・オリエンティッド")
    assert article.language == "ja"


def test_without_original_the_largest_rendition_is_the_photo_source():
    renditions = fixture("text-featuremedia")["associations"]["featuremedia"]["renditions"]
    del renditions["original"]
    assert choose_rendition(renditions)["width"] == 933  # baseImage, not viewImage or thumbnail


def test_video_featuremedia_is_valid_but_gives_no_photo():
    doc = fixture("text-featuremedia")
    doc["associations"]["featuremedia"] = {"type": "video", "guid": "urn:video", "renditions": {"original": {}}}
    assert load_article(doc).photo is None


def test_a_picture_without_an_href_is_still_invalid():
    doc = fixture("text-featuremedia")
    del doc["associations"]["featuremedia"]["renditions"]["original"]["href"]
    with pytest.raises(ValidationError) as exc:
        load_article(doc)
    assert "renditions" in exc.value.messages["associations"]["featuremedia"]


# --- the push, over HTTP under gunicorn ------------------------------------------------


def test_signed_push_is_accepted_and_stored_as_sent(api, rt):
    doc = unique()
    answer = push(api, doc)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    aid = keys.article_id(doc["guid"])
    assert (body["id"], body["uri"], body["version"], body["outcome"]) == (aid, doc["guid"], 1, "accepted")
    [key] = stored_objects(rt, aid)
    stored = json.loads(rt.data.get(key).body)
    assert stored["associations"]["featuremedia"]["renditions"]["baseImage"]["width"] == 933
    assert stored["signal"] == doc["signal"]


def test_an_old_secret_still_verifies_during_rotation(api):
    assert push(api, unique(), secret=OLD_SUPERDESK_SECRET).status_code == 202


@pytest.mark.parametrize(
    ("secret", "signature", "message"),
    [
        ("not-the-configured-secret-000", None, "no signature matches"),
        (None, "sha1=", "must be 'sha1=<hex digest>'"),
        (None, "sha1=not-hex", "not a hex digest"),
    ],
)
def test_bad_signature_is_401_and_stores_nothing(api, rt, secret, signature, message):
    doc = unique()
    answer = push(api, doc, secret=secret, signature=signature)
    assert answer.status_code == 401
    assert "Invalid Superdesk signature" in answer.json()["message"] and message in answer.json()["message"]
    assert_nothing_stored(rt, keys.article_id(doc["guid"]))


def test_signature_over_another_body_is_401(api, rt):
    doc = unique()
    other = superdesk.sign(SUPERDESK_SECRET, json.dumps({**doc, "headline": "Forged"}).encode())
    assert push(api, doc, signature=other).status_code == 401
    assert_nothing_stored(rt, keys.article_id(doc["guid"]))


def test_a_retried_push_replays_the_first_answer_and_does_no_work(api, rt):
    doc = unique()
    first = push(api, doc)
    assert first.status_code == 202
    aid = first.json()["id"]
    again = push(api, doc)
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stored_objects(rt, aid)) == 1
    # render workers may be running (whole suite), so count acceptances rather than compare timelines
    assert [e["event"] for e in rt.articles.get(aid)["timeline"]].count("accepted") == 1


def test_an_older_version_is_stale_and_a_newer_one_accepted(api, rt):
    doc = unique(version="3")
    assert push(api, doc).status_code == 202
    older = push(api, {**doc, "version": "2", "headline": "Older"})
    assert older.status_code == 200 and older.json()["outcome"] == "stale" and older.json()["version"] == 3
    newer = push(api, {**doc, "version": "4", "headline": "Corrected"})
    assert newer.status_code == 202 and newer.json()["version"] == 4
    assert len(stored_objects(rt, keys.article_id(doc["guid"]))) == 2


@pytest.mark.parametrize("name", ["picture", "composite"])
def test_media_and_package_items_are_answered_200_ignored_and_not_stored(api, rt, name):
    doc = unique(name)
    answer = push(api, doc)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored" and answer.json()["id"] == keys.article_id(doc["guid"])
    assert_nothing_stored(rt, keys.article_id(doc["guid"]))


def test_an_ignored_type_still_needs_a_valid_signature(api, rt):
    doc = unique("picture")
    assert push(api, doc, secret="not-the-configured-secret-000").status_code == 401


def test_an_invalid_superdesk_item_is_422_with_the_field(api, rt):
    doc = unique(body_html="")
    answer = push(api, doc)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "body_html", "message": "A published article needs body_html or "
                                                                        "body_text."}]
    assert_nothing_stored(rt, keys.article_id(doc["guid"]))
