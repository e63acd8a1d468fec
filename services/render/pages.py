"""Pure page functions: article data in, HTML out. No I/O here, so they are fast to test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from services.render.sanitize import article_body
from shared import keys
from shared.ninjs import Article


@dataclass(frozen=True)
class SiteContext:
    """What a page needs to know about the site around it."""

    site_url: str
    site_name: str = "Pressroom"
    api_url: str = ""
    related: list = field(default_factory=list)
    editors_choice: list = field(default_factory=list)
    popular: list = field(default_factory=list)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("services.render", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code; no stat() per page
    )
    env.filters["isodate"] = lambda d: d.isoformat() if isinstance(d, datetime) else ""
    env.filters["longdate"] = lambda d: d.strftime("%-d %B %Y, %H:%M UTC") if isinstance(d, datetime) else ""
    env.filters["isots"] = lambda ts: datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")
    env.filters["longts"] = lambda ts: datetime.fromtimestamp(float(ts), UTC).strftime("%-d %B %Y")
    env.filters["rfc822"] = lambda ts: format_datetime(datetime.fromtimestamp(float(ts), UTC), usegmt=True)
    env.filters["tojson_ld"] = json_ld
    return env


def json_ld(value) -> Markup:
    """JSON for a <script type="application/ld+json"> block: '<' escaped so no tag can close it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704


def article_page(article: Article, path: str, site: SiteContext, photo=None) -> str:
    """The public HTML page of one article; `photo` is a ProcessedPhoto or None."""
    canonical = f"{site.site_url}/{path.strip('/')}/"
    published = article.published_at
    updated = (
        article.versioncreated
        if article.versioncreated and published and article.versioncreated > published
        else None
    )
    return environment().get_template("article.html").render(
        article=article,
        body=article_body(article.body_html, article.body_text),
        canonical=canonical,
        updated=updated,
        site=site,
        photo=photo,
        topics=[t for t in article.topics if t.scheme not in ("section", "collection")],
        slugify=keys.slugify,
        ld=news_article_ld(article, canonical, site, photo, updated),
    )


def authors(article: Article) -> list[dict]:
    """schema.org authors from the byline: organisations where the byline names one."""
    orgs = {t.name.casefold() for t in article.topics if t.kind == "organisation"}
    names = [n.strip() for n in re.split(r",| with | and ", article.byline) if n.strip()]
    return [
        {"@type": "Organization" if (n.casefold() in orgs or "." in n) else "Person", "name": n} for n in names
    ]


def news_article_ld(article: Article, canonical: str, site: SiteContext, photo, updated) -> dict:
    published = article.published_at
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "mainEntityOfPage": {"@type": "WebPage", "@id": canonical},
        "url": canonical,
        "headline": article.headline[:110],
        "description": article.summary,
        "inLanguage": article.language,
        "articleSection": article.section,
        "keywords": [t.name for t in article.topics if t.scheme not in ("section", "collection")],
        "datePublished": published.isoformat() if published else None,
        "dateModified": (updated or published).isoformat() if published else None,
        "author": authors(article) or [{"@type": "Organization", "name": site.site_name}],
        "publisher": {"@type": "Organization", "name": site.site_name, "url": f"{site.site_url}/"},
    }
    if article.located:
        ld["dateline"] = article.located
    if photo is not None:
        ld["image"] = [photo.crops[ratio].url for ratio in ("16x9", "4x3", "1x1") if ratio in photo.crops]
    return {k: v for k, v in ld.items() if v not in (None, "", [])}
