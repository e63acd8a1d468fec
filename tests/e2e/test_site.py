"""The site around the pages stays right through publication, withdrawal and bursts (real stack)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import feedparser
import lxml.html
import requests
from lxml import etree

from services.render.upload import UPLOADS
from tests.conftest import article_status, auth_headers, signed, unique_article, wait_for
from tests.render.test_site_pages import schema


def post(api, doc):
    body = json.dumps(doc).encode()
    answer = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def published(api, aid, version=None):
    return wait_for(
        lambda: (s := article_status(api, aid))["status"] == "published"
        and (version is None or s["published_version"] == version) and s,
        message=f"{aid} published",
    )


def get(rt, key) -> str:
    return rt.site.get(key).body.decode()


def topic_doc(topic: str, headline: str, **extra) -> dict:
    doc = unique_article(headline=headline, **extra)
    doc["subject"] = [{"name": "World", "scheme": "section"}, {"name": topic}]
    doc["place"], doc["person"], doc["organisation"] = [], [], []
    return doc


def wait_page(rt, key, predicate, message):
    def check():
        try:
            body = get(rt, key)
        except FileNotFoundError:
            return False
        return body if predicate(body) else False

    return wait_for(check, timeout=60, message=message)


def test_publishing_fills_home_section_topic_feeds_and_sitemaps(api, workers, rt):
    topic = f"Topic {uuid.uuid4().hex[:8]}"
    slug = topic.lower().replace(" ", "-")
    aid = post(api, topic_doc(topic, f"Story about {topic}"))
    status = published(api, aid)
    url = status["url"]
    wait_page(rt, f"topic/{slug}/index.html", lambda html: url in html, "the topic page")
    topic_page = lxml.html.fromstring(get(rt, f"topic/{slug}/index.html"))
    assert [a.get("href") for a in topic_page.findall(".//ol[@class='cards']//h2/a")] == [url]
    wait_page(rt, "index.html", lambda html: url in html, "the home page")
    wait_page(rt, "section/world/index.html", lambda html: url in html, "the section page")
    rss = feedparser.parse(get(rt, f"topic/{slug}/feed.xml"))
    assert not rss.bozo and [e.link for e in rss.entries] == [url]
    atom = feedparser.parse(get(rt, "atom.xml"))
    assert not atom.bozo and url in [e.link for e in atom.entries]
    month_key = "sitemaps/articles-2018-09.xml"
    wait_page(rt, month_key, lambda xml: url in xml, "the month sitemap")
    schema("sitemap.xsd").assertValid(etree.fromstring(rt.site.get(month_key).body))
    index = etree.fromstring(rt.site.get("sitemap.xml").body)
    schema("siteindex.xsd").assertValid(index)
    assert f"{rt.settings.site_url}/{month_key}" in etree.tostring(index).decode()
    assert "Sitemap: " in get(rt, "robots.txt")
    obj = rt.s3.get_object(Bucket=rt.settings.site_bucket, Key=f"topic/{slug}/feed.xml")
    assert obj["ContentType"] == "application/rss+xml; charset=utf-8" and "max-age=60" in obj["CacheControl"]


def test_withdrawal_leaves_every_list_feed_and_sitemap(api, workers, rt):
    topic = f"Gone {uuid.uuid4().hex[:8]}"
    slug = topic.lower().replace(" ", "-")
    keep = post(api, topic_doc(topic, "Stays"))
    gone = post(api, topic_doc(topic, "Goes away"))
    gone_url = published(api, gone)["url"]
    published(api, keep)
    wait_page(rt, f"topic/{slug}/feed.xml", lambda xml: gone_url in xml, "the topic feed")
    assert requests.delete(f"{api}/v1/articles/{gone}", headers=auth_headers(), timeout=10).status_code == 202
    wait_for(lambda: article_status(api, gone)["status"] == "withdrawn", message="withdrawal")
    for key in (f"topic/{slug}/index.html", f"topic/{slug}/feed.xml", f"topic/{slug}/atom.xml",
                "index.html", "sitemaps/articles-2018-09.xml"):
        wait_page(rt, key, lambda body: gone_url not in body, f"{key} without the withdrawn article")


def test_a_burst_renders_the_home_page_far_fewer_times_than_articles(api, workers, rt):
    before = int(rt.redis.hget(UPLOADS, "index.html") or 0)
    now = datetime.now(UTC)
    aids = [
        post(api, topic_doc("Burst", f"Burst story {i}", firstcreated=(now + timedelta(seconds=i)).isoformat()))
        for i in range(20)
    ]
    urls = [published(api, aid)["url"] for aid in aids]
    wait_page(rt, "index.html", lambda html: all(u in html for u in urls), "all 20 on the home page")
    # the count is recorded with the upload's MD5 once the batch's PUTs returned: a reader can see the page first
    uploads = wait_for(lambda: int(rt.redis.hget(UPLOADS, "index.html") or 0) - before, timeout=30,
                       message="the home page's uploads to be counted")
    assert 1 <= uploads < len(aids)
    archive = wait_page(rt, "topic/burst/page/1/index.html", lambda html: all(u in html for u in urls), "archive")
    assert len(lxml.html.fromstring(archive).findall(".//ol[@class='cards']/li")) == 20
    news = wait_page(rt, "sitemaps/news.xml", lambda xml: all(u in xml for u in urls), "the news sitemap")
    schema("news-urlset.xsd").assertValid(etree.fromstring(news.encode()))
    assert "sitemaps/news.xml" in get(rt, "sitemap.xml")
