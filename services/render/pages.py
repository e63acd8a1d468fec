"""Pure page functions: article data in, HTML out. No I/O here, so they are fast to test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from services.render.sanitize import article_body
from shared.ninjs import Article


@dataclass(frozen=True)
class SiteContext:
    """What a page needs to know about the site around it."""

    site_url: str
    site_name: str = "Pressroom"
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
    )
    env.filters["isodate"] = lambda d: d.isoformat() if isinstance(d, datetime) else ""
    env.filters["longdate"] = lambda d: d.strftime("%-d %B %Y, %H:%M UTC") if isinstance(d, datetime) else ""
    return env


def article_page(article: Article, path: str, site: SiteContext) -> str:
    """The public HTML page of one article."""
    updated = (
        article.versioncreated
        if article.versioncreated and article.published_at and article.versioncreated > article.published_at
        else None
    )
    return environment().get_template("article.html").render(
        article=article,
        body=article_body(article.body_html, article.body_text),
        canonical=f"{site.site_url}/{path.strip('/')}/",
        updated=updated,
        site=site,
    )
