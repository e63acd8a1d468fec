"""The article page, checked by parsing it: every element the page promises."""

import json
from types import SimpleNamespace

import lxml.html

from services.render.pages import SiteContext, article_page
from shared.ninjs import load_article
from tests.conftest import sample

SITE = SiteContext(
    site_url="https://news.example.test",
    api_url="https://api.example.test",
    related=[{"id": "a1", "headline": "Related one", "url": "https://news.example.test/r1/"}],
    editors_choice=[{"id": "a2", "headline": "Chosen one", "url": "https://news.example.test/c1/"}],
    popular=[{"id": "a3", "headline": "Popular one", "url": "https://news.example.test/p1/"}],
)


def rendition(width, height, ext):
    return SimpleNamespace(width=width, height=height, key=f"photos/x/{width}w.{ext}",
                           url=f"https://news.example.test/photos/x/{width}w.{ext}", mimetype=f"image/{ext}")


PHOTO = SimpleNamespace(
    digest="x", width=1600, height=900,
    jpeg=(rendition(320, 180, "jpg"), rendition(640, 360, "jpg"), rendition(1280, 720, "jpg")),
    webp=(rendition(320, 180, "webp"), rendition(640, 360, "webp"), rendition(1280, 720, "webp")),
    crops={
        "16x9": rendition(1200, 675, "jpg"),
        "4x3": rendition(1200, 900, "jpg"),
        "1x1": rendition(1200, 1200, "jpg"),
    },
)


def render(doc=None, photo=PHOTO):
    article = load_article(doc or sample())
    html = article_page(article, "2018/09/13/israeli-defence-minister", SITE, photo)
    return article, lxml.html.fromstring(html), html


def test_head_has_title_description_canonical_and_social_tags():
    article, tree, _ = render()
    assert tree.findtext(".//title") == f"{article.headline} | Pressroom"
    meta = {m.get("property") or m.get("name"): m.get("content") for m in tree.iter("meta")}
    canonical = "https://news.example.test/2018/09/13/israeli-defence-minister/"
    assert tree.find(".//link[@rel='canonical']").get("href") == canonical
    assert meta["description"] == article.summary
    assert meta["og:title"] == article.headline and meta["og:url"] == canonical and meta["og:type"] == "article"
    assert meta["og:image"] == PHOTO.crops["16x9"].url
    assert meta["twitter:card"] == "summary_large_image"
    assert meta["article:published_time"] == "2018-09-13T14:00:00+00:00"


def test_json_ld_is_a_news_article_with_three_image_ratios():
    article, tree, _ = render()
    [script] = [s for s in tree.iter("script") if s.get("type") == "application/ld+json"]
    ld = json.loads(script.text)
    assert ld["@type"] == "NewsArticle" and ld["headline"] == article.headline
    assert ld["image"] == [PHOTO.crops[r].url for r in ("16x9", "4x3", "1x1")]
    assert ld["datePublished"] == ld["dateModified"] == "2018-09-13T14:00:00+00:00"
    assert {"@type": "Organization", "name": "commonspace.eu"} in ld["author"]
    assert {"@type": "Organization", "name": "The Jerusalem Post"} in ld["author"]
    assert ld["publisher"]["name"] == "Pressroom" and ld["dateline"] == "Baku"


def test_body_has_headline_dateline_times_byline_and_figure():
    article, tree, _ = render()
    [h1] = tree.findall(".//h1")
    assert h1.text_content() == article.headline
    assert tree.find(".//main//article") is not None and tree.find(".//header[@role='banner']") is not None
    assert tree.find_class("dateline")[0].text_content() == "Baku"
    assert tree.find(".//time[@class='published']").get("datetime") == "2018-09-13T14:00:00+00:00"
    assert tree.find_class("byline")[0].text_content() == "commonspace.eu with The Jerusalem Post"
    figure = tree.find(".//figure")
    img = figure.find(".//img")
    assert img.get("alt") == article.photo.caption
    assert img.get("srcset").split(", ")[0] == f"{PHOTO.jpeg[0].url} 320w"
    assert "sizes" in img.attrib and img.get("width") == "1600"
    assert figure.find(".//source[@type='image/webp']").get("srcset").endswith("1280w")
    caption = figure.find("figcaption")
    assert caption.text_content().startswith(article.photo.caption)
    assert caption.find_class("credit")[0].text_content() == article.photo.credit
    assert len(tree.find_class("body")[0].findall("p")) == 6


def test_topics_link_to_topic_pages_and_lists_are_present():
    _, tree, _ = render()
    topics = {a.text_content(): a.get("href") for a in tree.find(".//nav[@aria-label='Topics']").iter("a")}
    assert topics["Avigdor Liberman"] == "https://news.example.test/topic/avigdor-liberman/"
    assert "News" not in topics
    headings = [h.text_content() for h in tree.findall(".//aside//h2")]
    assert headings == ["Related articles", "Editor's choice", "Popular"]
    assert tree.find_class("related")[0].find(".//a").text_content() == "Related one"
    assert tree.find_class("popular")[0].find(".//a").get("href") == "https://news.example.test/p1/"


def test_heading_order_never_skips_a_level():
    _, tree, _ = render()
    levels = [int(h.tag[1]) for h in tree.iter("h1", "h2", "h3", "h4")]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False))


def test_a_correction_shows_updated_time():
    doc = {**sample(), "version": "2", "versioncreated": "2018-09-14T08:30:00+00:00"}
    _, tree, _ = render(doc)
    assert tree.find(".//time[@class='updated']").get("datetime") == "2018-09-14T08:30:00+00:00"


def test_a_photo_that_could_not_be_fetched_keeps_its_caption_and_credit_but_no_image():
    article, tree, _ = render(photo=None)
    [figure] = tree.iter("figure")
    assert figure.find(".//img") is None and figure.find(".//picture") is None
    assert figure.findtext("figcaption").startswith(article.photo.caption)
    assert figure.findtext(".//span[@class='credit']") == article.photo.credit
    meta = {m.get("property") or m.get("name"): m.get("content") for m in tree.iter("meta")}
    assert meta["twitter:card"] == "summary" and "og:image" not in meta


def test_an_article_without_a_photo_has_no_figure():
    doc = {k: v for k, v in sample().items() if k != "associations"}
    _, tree, _ = render(doc, photo=None)
    assert tree.find(".//figure") is None


def test_json_ld_cannot_be_broken_out_of():
    doc = {**sample(), "headline": "</script><script>alert(1)</script>"}
    _, tree, html = render(doc)
    assert "</script><script>alert(1)" not in html
    scripts = [s for s in tree.iter("script") if s.get("type") == "application/ld+json"]
    assert json.loads(scripts[0].text)["headline"] == doc["headline"]
