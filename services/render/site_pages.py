"""Pure functions for the pages around the articles: listings, feeds, sitemaps, robots.txt."""

from __future__ import annotations

from services.render.pages import SiteContext, environment
from services.render.site_index import Listing


def url_of(site: SiteContext, path: str) -> str:
    return f"{site.site_url}/{path.strip('/')}/" if path.strip("/") else f"{site.site_url}/"


def file_url(site: SiteContext, key: str) -> str:
    return f"{site.site_url}/{key}"


def _prefix(listing: Listing) -> str:
    return f"{listing.path}/" if listing.path else ""


def listing_keys(listing: Listing) -> dict[str, str]:
    p = _prefix(listing)
    return {"front": f"{p}index.html", "rss": f"{p}feed.xml", "atom": f"{p}atom.xml"}


def archive_key(listing: Listing, number: int) -> str:
    return f"{_prefix(listing)}page/{number}/index.html"


def listing_page(
    site: SiteContext,
    listing: Listing,
    items: list[dict],
    page_number: int | None,
    page_count: int,
) -> str:
    """The front page of a listing (page_number None) or one archive page (1 = oldest)."""
    base = url_of(site, listing.path)
    if page_number is None:
        canonical, newer = base, None
        older = f"{base}page/{page_count}/" if page_count > 1 else None
    else:
        canonical = f"{base}page/{page_number}/"
        newer = base if page_number >= page_count else f"{base}page/{page_number + 1}/"
        older = f"{base}page/{page_number - 1}/" if page_number > 1 else None
    return environment().get_template("listing.html").render(
        site=site, title=listing.title, items=items, canonical=canonical, page_number=page_number,
        page_count=page_count, newer_url=newer, older_url=older,
        feed_url=file_url(site, listing_keys(listing)["rss"]), atom_url=file_url(site, listing_keys(listing)["atom"]),
    )


def rss_feed(site: SiteContext, listing: Listing, items: list[dict]) -> str:
    return environment().get_template("rss.xml").render(
        site=site, title=listing.title, items=items, page_url=url_of(site, listing.path),
        feed_url=file_url(site, listing_keys(listing)["rss"]),
    )


def atom_feed(site: SiteContext, listing: Listing, items: list[dict]) -> str:
    return environment().get_template("atom.xml").render(
        site=site, title=listing.title, items=items, page_url=url_of(site, listing.path),
        atom_url=file_url(site, listing_keys(listing)["atom"]),
    )


def sitemap(entries: list[dict]) -> str:
    """entries: {loc, lastmod (unix time or None)}."""
    return environment().get_template("sitemap.xml").render(entries=entries)


def sitemap_index(sitemaps: list[dict]) -> str:
    return environment().get_template("sitemap_index.xml").render(sitemaps=sitemaps)


def news_sitemap(site: SiteContext, items: list[dict]) -> str:
    return environment().get_template("news_sitemap.xml").render(site=site, items=items)


def robots(site: SiteContext) -> str:
    return environment().get_template("robots.txt").render(site=site)
