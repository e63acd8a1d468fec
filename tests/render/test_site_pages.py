"""Listings, feeds and sitemaps: parsed with feedparser and validated against the sitemap schemas."""

from pathlib import Path

import feedparser
import lxml.html
from lxml import etree

from services.render import site_pages
from services.render.pages import SiteContext
from services.render.site_index import HOME, listing_for

SITE = SiteContext(site_url="https://news.example.test")
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def cards(n: int, start: float = 1_700_000_000) -> list[dict]:
    return [
        {"id": f"a{i:020x}", "headline": f"Headline {i} & <more>", "summary": f"Summary {i}", "byline": "Desk",
         "url": f"https://news.example.test/2023/11/14/story-{i}/", "path": f"2023/11/14/story-{i}",
         "language": "en", "section": "News", "section_path": "section/news", "published": start + i * 60,
         "updated": start + i * 60 + 30, "topics": [], "image": None}
        for i in reversed(range(n))
    ]


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def test_rss_feed_parses_cleanly_with_every_item():
    items = cards(5)
    feed = feedparser.parse(site_pages.rss_feed(SITE, HOME, items))
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "rss20"
    assert [e.title for e in feed.entries] == [c["headline"] for c in items]
    assert feed.entries[0].link == items[0]["url"] and feed.entries[0].id == items[0]["url"]
    assert feed.feed.link == "https://news.example.test/"


def test_atom_feed_parses_cleanly_with_dates():
    items = cards(3)
    listing = listing_for("topic:defence", "Defence")
    feed = feedparser.parse(site_pages.atom_feed(SITE, listing, items))
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Defence | Pressroom"
    assert feed.feed.id == "https://news.example.test/topic/defence/atom.xml"
    assert feed.entries[0].published_parsed is not None and feed.entries[0].author == "Desk"


def test_sitemaps_validate_against_the_sitemaps_org_schemas():
    urlset = site_pages.sitemap([{"loc": c["url"], "lastmod": c["updated"]} for c in cards(3)])
    schema("sitemap.xsd").assertValid(etree.fromstring(urlset.encode()))
    index = site_pages.sitemap_index([{"loc": "https://news.example.test/sitemaps/pages.xml", "lastmod": None}])
    schema("siteindex.xsd").assertValid(etree.fromstring(index.encode()))


def test_news_sitemap_validates_with_the_google_news_extension():
    news = site_pages.news_sitemap(SITE, cards(2))
    schema("news-urlset.xsd").assertValid(etree.fromstring(news.encode()))
    tree = etree.fromstring(news.encode())
    ns = {"n": "http://www.google.com/schemas/sitemap-news/0.9"}
    assert tree.findall(".//n:title", ns)[0].text == "Headline 1 & <more>"


def test_a_broken_sitemap_fails_the_schema():
    bad = b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><lastmod>x</lastmod></url></urlset>'
    assert not schema("sitemap.xsd").validate(etree.fromstring(bad))


def test_listing_front_page_links_articles_feeds_and_older_pages():
    listing = listing_for("section:news", "News")
    html = site_pages.listing_page(SITE, listing, cards(20), None, 3)
    tree = lxml.html.fromstring(html)
    assert tree.findtext(".//h1").strip() == "News"
    links = [a.get("href") for a in tree.findall(".//ol[@class='cards']//h2/a")]
    assert len(links) == 20 and links[0].endswith("story-19/")
    assert tree.find(".//link[@type='application/rss+xml']").get("href") == "https://news.example.test/section/news/feed.xml"
    assert tree.find(".//a[@rel='next']").get("href") == "https://news.example.test/section/news/page/3/"
    assert tree.find(".//a[@rel='prev']") is None


def test_archive_pages_link_both_ways():
    html = site_pages.listing_page(SITE, HOME, cards(20), 2, 3)
    tree = lxml.html.fromstring(html)
    assert tree.find(".//link[@rel='canonical']").get("href") == "https://news.example.test/page/2/"
    assert tree.find(".//a[@rel='next']").get("href") == "https://news.example.test/page/1/"
    assert tree.find(".//a[@rel='prev']").get("href") == "https://news.example.test/page/3/"


def test_robots_points_at_the_sitemap_index():
    assert "Sitemap: https://news.example.test/sitemap.xml" in site_pages.robots(SITE)


def test_listing_cards_show_the_articles_thumbnail_when_it_has_one():
    items = cards(3)
    items[1]["image"] = {"url": "https://news.example.test/photos/x/640w.jpg", "width": 640, "height": 360}
    html = site_pages.listing_page(SITE, HOME, items, None, 1)
    thumbs = lxml.html.fromstring(html).findall(".//li[@class='card']//img[@class='thumb']")
    assert [(t.get("src"), t.get("width"), t.get("alt")) for t in thumbs] == [
        ("https://news.example.test/photos/x/640w.jpg", "640", "")
    ]
