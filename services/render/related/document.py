"""What the related-articles engine knows of an article, and how it is cut from a NINJS article.

The engine takes this small value rather than `shared.ninjs.Article` so that the quality
harness, the benchmark and the reindex command feed it exactly as the render worker does,
and so that it never sees photos, bylines or raw HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.ninjs import Article

# Schemes that say where an article is filed on the site, not what it is about.
NON_TOPIC_SCHEMES = frozenset({"collection", "section"})
BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "td", "th", "figcaption", "pre"}
)
SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "iframe", "object"})


@dataclass(frozen=True)
class RelatedDoc:
    id: str
    language: str
    title: str
    body: str  # plain text
    entities: tuple[str, ...] = ()  # subject/person/place/organisation names
    published_at: float = 0.0  # unix time; breaks ties in favour of newer stories


def related_doc_from_article(article: Article) -> RelatedDoc:
    """The engine's view of a published article: headline, standfirst + body as text, topic names."""
    body = article.body_text or html_to_text(article.body_html)
    if article.summary:
        body = f"{article.summary}\n\n{body}"
    entities = tuple(
        dict.fromkeys(t.name for t in article.topics if t.name and t.scheme not in NON_TOPIC_SCHEMES)
    )
    when = article.published_at
    return RelatedDoc(
        id=article.id,
        language=article.language or "en",
        title=article.headline,
        body=body,
        entities=entities,
        published_at=when.timestamp() if when else 0.0,
    )


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self.skipping += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment; block elements become line breaks so words never fuse."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()
