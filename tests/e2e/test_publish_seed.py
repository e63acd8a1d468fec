"""End to end: the seed article, signed with the standardwebhooks library, becomes a page."""

import json

import requests

from tests.conftest import article_status, signed, unique_article, wait_for


def test_seed_article_is_published_to_the_site_bucket(api, workers, rt):
    doc = unique_article()
    body = json.dumps(doc).encode()
    answer = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "queued" and accepted["version"] == 1

    status = wait_for(
        lambda: (s := article_status(api, accepted["id"]))["status"] == "published" and s,
        message="the article to be published",
    )
    assert status["url"] == "https://news.example.test/" + status["key"].removesuffix("index.html")
    page = rt.s3.get_object(Bucket=rt.settings.site_bucket, Key=status["key"])
    assert page["ContentType"] == "text/html; charset=utf-8"
    assert "max-age=60" in page["CacheControl"]
    html = page["Body"].read().decode()
    assert "Israeli Defence Minister visits Georgia and Azerbaijan" in html
    events = [e["event"] for e in status["timeline"]]
    assert events[0] == "accepted" and events[-1] == "published"
