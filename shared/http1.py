"""One HTTP/1.1 exchange as it goes on the wire: the request framed here, the answer parsed
by llhttp, Node's parser (httptools), at a hundredth of a pure-Python parser's cost.

Used by both of Pressroom's own HTTP clients: `netloop` (many requests from one
non-blocking thread: webhooks) and `s3_put` (a blocking PUT on a connection its thread
keeps), so the two frame requests and read answers by the same rules.
"""

from __future__ import annotations

import re
from functools import lru_cache

import httptools

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAKS = re.compile(r"[\r\n\x00]")


def request_bytes(method: str, target: str, host_header: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """The request as it goes on the wire; ValueError for a header that would break its framing.
    Host and Content-Length are set here (a caller's are left out)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    encoding = "Accept-Encoding: identity"  # unless the caller asks otherwise: answers are read as they come
    if _BREAKS.search("".join(headers.values())):  # one search, not one a header: most requests pass
        bad = next(name for name, value in headers.items() if _BREAKS.search(value))
        raise ValueError(f"invalid request header {bad!r}")
    for name, value in headers.items():
        kind = _header_kind(name)
        if kind is None:
            raise ValueError(f"invalid request header {name!r}")
        if kind == "accept-encoding":
            encoding = f"{name}: {value}"
        elif kind:
            lines.append(f"{name}: {value}")
    lines.append(encoding)
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + (body or b"")


@lru_cache(maxsize=256)
def _header_kind(name: str) -> str | None:
    """None for a name that is not an HTTP token; '' for one the client sets itself (Host,
    Content-Length); 'accept-encoding'; otherwise 'other'. Cached: a process sends few names."""
    if not _TOKEN.fullmatch(name):
        return None
    lowered = name.lower()
    if lowered in ("host", "content-length"):
        return ""
    return "accept-encoding" if lowered == "accept-encoding" else "other"


class Answer:
    """The answer to one request, as the parser (whose receiver this is) reads it: `answered`
    once a final status's headers are in (an interim 1xx is passed over), `headers` (names
    lower-cased, repeats joined), the body in `chunks` (what fits in `max_bytes`; `size`
    counts all of it), `complete` and whether the connection may be `keep`-t. Bytes after a
    whole answer make the parser raise: they are neither part of it nor the next answer."""

    __slots__ = ("parser", "answered", "complete", "keep", "headers", "chunks", "size", "max_bytes", "head")

    def expect(self, max_bytes: int, head: bool = False) -> None:
        """Ready for the answer to a new request (`head`: a HEAD, whose answer has no body)."""
        self.parser = httptools.HttpResponseParser(self)
        self.answered = self.complete = self.keep = False
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.max_bytes, self.head = max_bytes, head

    def on_message_begin(self) -> None:
        if self.complete:
            raise ValueError("bytes after the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() >= 200:
            self.answered = True
            if self.head:  # no body follows, whatever Content-Length says
                self.complete, self.keep = True, self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        if self.size <= self.max_bytes:
            self.chunks.append(data)
        self.size += len(data)

    def on_message_complete(self) -> None:
        if self.answered:
            self.complete, self.keep = True, self.parser.should_keep_alive()  # llhttp forgets it right after
        else:  # 1xx: the answer is still to come
            self.headers = {}

    def until_close(self) -> bool:
        """Whether the answer's body ends only when the server closes the connection."""
        return "content-length" not in self.headers and "chunked" not in self.headers.get("transfer-encoding", "")

    @property
    def status(self) -> int:
        return self.parser.get_status_code()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)[: self.max_bytes]
