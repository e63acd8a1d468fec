"""Body HTML sanitising: the only HTML from outside that reaches a page passes through here."""

from __future__ import annotations

import html

import nh3

TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "strong", "b", "em", "i", "u", "s", "sub", "sup",
    "blockquote", "q", "cite", "ul", "ol", "li", "a", "figure", "figcaption", "table", "thead",
    "tbody", "tr", "th", "td", "caption", "abbr", "code", "pre", "small", "span", "mark", "dl", "dt", "dd",
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}


_CLEANER = nh3.Cleaner(
    tags=TAGS,
    clean_content_tags={"script", "style", "iframe", "object", "embed", "noscript", "template"},
    attributes=ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
)


def clean_body(body_html: str) -> str:
    """Keep the article's structure, drop scripts, styles, handlers and foreign URL schemes."""
    return _CLEANER.clean(body_html)


def text_to_html(body_text: str) -> str:
    paragraphs = [p.strip() for p in body_text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def article_body(body_html: str, body_text: str) -> str:
    return clean_body(body_html) if body_html else text_to_html(body_text)
