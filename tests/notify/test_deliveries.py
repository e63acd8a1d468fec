"""A delivery's log line: written out by hand for speed, held to what json.dumps makes of it."""

from __future__ import annotations

import json

import pytest

from services.notify import deliveries
from shared.deliveries import Claim

COMPACT = {"separators": (",", ":")}


def _claim(version: str = "3", article: str = "a1b2", kind: str = "article.updated", status: str = "paused") -> Claim:
    sub = {"id": "s1", "channel": "webhook", "target": "https://x.example.test/", "status": status,
           "failing_since": "", "secrets": ""}
    record = {"type": kind, "article": article, "version": version}
    return Claim("claimed", 2, "tok", "s1", sub, {"id": article}, record)


def _head(did: str, claim: Claim) -> str:
    """begin()'s start of the log line, taken from a delivery it cancels (its subscription is paused)."""
    logged = []
    assert deliveries.begin(did, claim, lambda *args, **details: logged.append(details["log_entry"])) == "cancelled"
    return logged[0].rsplit(',"at":', 1)[0]


@pytest.mark.parametrize(("status", "http_status", "latency", "answer", "error", "next_at"), [
    ("delivered", 204, 12, "", "", None),
    ("retrying", 503, 1500, 'busy "now"\n\t\\ é 日本 \x00\x1f', "HTTP 503: \u2028 \ud83d\ude00", 1796567755.7052197),
    ("failed", None, 0, "x" * 500, "y" * 900, None),
    ("cancelled", None, 0, "", "subscription paused", None),
])
def test_a_log_line_is_the_json_of_its_fields(status, http_status, latency, answer, error, next_at):
    claim = _claim()
    line = deliveries._entry(_head("d0123abc", claim), status, http_status, latency, answer, error, next_at)

    expected = {"delivery_id": "d0123abc", "event": "article.updated", "article_id": "a1b2", "version": 3,
                "attempt": 2, "at": json.loads(line)["at"], "status": status, "http_status": http_status,
                "latency_ms": latency, "response": answer[:200], "error": error[:300],
                "next_attempt_at": deliveries._iso(next_at) if next_at else None}
    assert line == json.dumps(expected, **COMPACT)


def test_a_log_lines_head_escapes_what_the_record_holds():
    claim = _claim(version="12", article='a"b\\c', kind="article.\u00e9")
    head = _head('d"x', claim)
    assert json.loads(head + "}") == {"delivery_id": 'd"x', "event": "article.\u00e9", "article_id": 'a"b\\c',
                                      "version": 12, "attempt": 2}
    assert head + "}" == json.dumps(json.loads(head + "}"), **COMPACT)
