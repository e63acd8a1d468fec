"""Getting a photo's bytes: an inline `data:` URI, or a fetch from an allowed host.

A photo `href` comes from the newsroom's document, so it is untrusted: it may point into
our own network, at a host the operator never meant to trust, at an endless or huge
answer, or redirect somewhere else. Every hop of a fetch therefore passes the host
allow-list here and the address guard in `shared.netguard`, under one total deadline.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from urllib.parse import unquote, urljoin, urlsplit

from services.render.photos.model import PhotoError
from shared import netguard
from shared.settings import Settings

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 20.0  # for the whole fetch, redirects included
MAX_REDIRECTS = 3
HEADERS = {
    "Accept": "image/webp,image/jpeg,image/png,image/gif;q=0.9,*/*;q=0.1",
    "User-Agent": "Pressroom photo fetcher",
}
DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+(?:;[a-z0-9._+-]+=[^;,]*)*;base64,", re.IGNORECASE)


def read_source(settings: Settings, href: str) -> bytes:
    """The photo's bytes, at most `settings.photo_max_bytes`; raises PhotoError."""
    if href[:5].lower() == "data:":
        return decode_data_uri(href, settings.photo_max_bytes)
    return fetch_photo(settings, href)


def decode_data_uri(href: str, max_bytes: int) -> bytes:
    """Decode a base64 `data:image/...` URI without ever holding more than `max_bytes` of it."""
    match = DATA_URI.match(href)
    if not match:
        raise PhotoError("photo refused: a data: URI must hold a base64-encoded image (data:image/...;base64,...)")
    payload = href[match.end() :]
    if "%" in payload:
        payload = unquote(payload)
    payload = re.sub(r"\s+", "", payload)
    # Refuse from the encoded length before decoding, so a huge URI is never decoded.
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise PhotoError(f"photo refused: the data: URI holds more than {_size(max_bytes)}")
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("photo refused: the data: URI is not valid base64") from None
    if len(data) > max_bytes:
        raise PhotoError(f"photo refused: the data: URI holds more than {_size(max_bytes)}")
    if not data:
        raise PhotoError("photo refused: the data: URI is empty")
    return data


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether `host` matches '*', an exact name, or a '.suffix' (the domain and its subdomains)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)):
            return True
    return False


def fetch_photo(settings: Settings, url: str) -> bytes:
    """GET the photo, following at most MAX_REDIRECTS redirects, each to an allowed host.

    Redirects are followed here, not by netguard, because each hop must pass the host
    allow-list as well as the address guard.
    """
    deadline = time.monotonic() + TOTAL_TIMEOUT
    for _hop in range(MAX_REDIRECTS + 1):
        host = _allowed_host(url, settings.photo_hosts)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PhotoError(f"photo not fetched: {host} took longer than {TOTAL_TIMEOUT:g}s (may be temporary)", True)
        try:
            response = netguard.fetch(
                url,
                headers=HEADERS,
                allow_networks=settings.photo_allow_networks + settings.webhook_allow_networks,
                connect_timeout=CONNECT_TIMEOUT,
                total_timeout=remaining,
                max_bytes=settings.photo_max_bytes,
                follow_redirects=0,
            )
        except netguard.InvalidURL as exc:
            raise PhotoError(f"photo not fetched: {exc}") from None
        except netguard.BlockedAddress as exc:
            raise PhotoError(f"photo not fetched: {exc}") from None
        except netguard.ResponseTooLarge:
            raise PhotoError(f"photo not fetched: {host} sent more than {_size(settings.photo_max_bytes)}") from None
        except netguard.DeadlineExceeded:
            raise PhotoError(
                f"photo not fetched: {host} took longer than {TOTAL_TIMEOUT:g}s (may be temporary)", True
            ) from None
        except netguard.FetchError as exc:
            later = " (may be temporary)" if exc.transient else ""
            raise PhotoError(f"photo not fetched: {exc}{later}", exc.transient) from None
        location = response.headers.get("location")
        if response.status in netguard.REDIRECTS and location:
            url = urljoin(url, location)
            continue
        if response.status != 200:
            transient = response.status >= 500 or response.status in (408, 429)
            later = " (may be temporary)" if transient else ""
            raise PhotoError(f"photo not fetched: {host} answered HTTP {response.status}{later}", transient)
        if not response.body:
            raise PhotoError(f"photo not fetched: {host} sent an empty answer")
        return response.body
    raise PhotoError(f"photo not fetched: more than {MAX_REDIRECTS} redirects")


def _allowed_host(url: str, patterns: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise PhotoError("photo not fetched: the href is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise PhotoError(f"photo not fetched: only http, https and data: URLs are allowed, not {parts.scheme!r}")
    if not host:
        raise PhotoError("photo not fetched: the href has no host")
    if not host_allowed(host, patterns):
        raise PhotoError(f"photo not fetched: {host} is not an allowed photo host (PRESSROOM_PHOTO_HOSTS)")
    return host


def _size(n: int) -> str:
    return f"{n / 1048576:g} MiB" if n >= 1048576 else f"{n} bytes"
