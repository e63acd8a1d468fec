"""Corrections, withdrawals, embargoes and out-of-order arrivals on the real stack."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import article_status, auth_headers, signed, unique_article, wait_for


def post(api, doc):
    body = json.dumps(doc).encode()
    answer = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10)
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def wait_status(api, aid, status, version=None, timeout=60):
    return wait_for(
        lambda: (s := article_status(api, aid))["status"] == status
        and (version is None or s.get("published_version") == version)
        and s,
        timeout=timeout,
        message=f"{aid} to be {status}",
    )


def page(rt, key):
    return rt.s3.get_object(Bucket=rt.settings.site_bucket, Key=key)["Body"].read().decode()


def page_exists(rt, key) -> bool:
    return rt.site.etag(key) is not None


def test_a_correction_rerenders_at_the_same_url(api, workers, rt):
    doc = unique_article()
    aid = post(api, doc)["id"]
    first = wait_status(api, aid, "published", 1)
    post(api, {**doc, "version": "2", "headline": "Corrected headline",
               "versioncreated": "2018-09-14T09:00:00+00:00"})
    second = wait_status(api, aid, "published", 2)
    assert second["url"] == first["url"] and second["key"] == first["key"]
    html = page(rt, second["key"])
    assert "Corrected headline" in html and "Updated" in html


def test_delete_withdraws_the_page(api, workers, rt):
    aid = post(api, unique_article())["id"]
    published = wait_status(api, aid, "published")
    answer = requests.delete(f"{api}/v1/articles/{aid}", headers=auth_headers(), timeout=10)
    assert answer.status_code == 202
    wait_status(api, aid, "withdrawn")
    assert not page_exists(rt, published["key"])


def test_pubstatus_canceled_withdraws_the_page(api, workers, rt):
    doc = unique_article()
    aid = post(api, doc)["id"]
    published = wait_status(api, aid, "published")
    post(api, {"uri": doc["uri"], "version": "2", "pubstatus": "canceled"})
    wait_status(api, aid, "withdrawn")
    assert not page_exists(rt, published["key"])


def test_out_of_order_versions_end_with_the_newest_published(api, workers, rt):
    doc = unique_article()
    aid = post(api, {**doc, "version": "5", "headline": "Version five"})["id"]
    stale = post(api, {**doc, "version": "4", "headline": "Version four"})
    assert stale["outcome"] == "stale"
    status = wait_status(api, aid, "published", 5)
    assert "Version five" in page(rt, status["key"])


def test_embargo_holds_the_article_until_its_time(api, workers, rt):
    embargo = datetime.now(UTC) + timedelta(seconds=4)
    doc = unique_article(embargoed=embargo.isoformat())
    accepted = post(api, doc)
    assert accepted["status"] == "scheduled"
    time.sleep(1)
    assert article_status(api, accepted["id"])["status"] == "scheduled"
    status = wait_status(api, accepted["id"], "published", timeout=60)
    assert datetime.fromisoformat(status["timeline"][-1]["at"]) >= embargo
    assert any(e["event"] == "embargo lifted" for e in status["timeline"])


@pytest.mark.parametrize("field", ["headline", "body_html", "byline", "caption"])
def test_script_injection_never_reaches_the_page_as_markup(api, workers, rt, field):
    doc = unique_article()
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    if field == "caption":
        doc["associations"]["featuremedia"]["description_text"] = evil
        doc["associations"]["featuremedia"]["renditions"]["original"]["href"] = TINY_JPEG
    else:
        doc[field] = evil + doc[field]
    aid = post(api, doc)["id"]
    html = page(rt, wait_status(api, aid, "published")["key"])
    tags = parse_tags(html)
    scripts = [attrs.get("type") for name, attrs in tags if name == "script"]
    assert scripts == ["application/ld+json", None]  # only the page's own two
    if field == "caption":
        assert any(name == "figcaption" for name, _ in tags)
    assert not [attrs for _, attrs in tags if any(k.startswith("on") for k in attrs)]
    assert not [attrs for name, attrs in tags if name == "img" and attrs.get("src") == "x"]
    text = html.replace("&#34;", '"').replace("&quot;", '"')
    if field == "body_html":
        assert 'alert("x")' not in text  # script content is dropped with the tag
    else:
        assert 'alert("x")' in text  # plain-text fields show it as text


def tiny_jpeg() -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 30, 30)).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


TINY_JPEG = tiny_jpeg()


def parse_tags(html: str) -> list[tuple[str, dict]]:
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


def test_an_unreadable_stored_document_fails_the_article_with_a_reason(api, workers, rt, settings):
    from shared import tasknames
    from shared.celery_app import create_celery

    aid = post(api, unique_article())["id"]
    wait_status(api, aid, "published")
    doc_key = rt.articles.get(aid)["doc_key"]
    rt.data.put(doc_key, b"{not json", "application/json")
    create_celery(settings).send_task(tasknames.RENDER_ARTICLE, args=[aid, 1], kwargs={"force": True})
    status = wait_status(api, aid, "failed")
    assert "is unreadable" in status["reason"] and status["timeline"][-1]["event"] == "failed"
