"""Candidate records a process has read, kept by record number, article id and content digest.

A query's first stage names its candidates by number, id and digest only, and a record
(sketch, full vector, date, length) crosses the network and is decoded once per process:
a rebuild's queries meet the same few thousand candidates again and again, and sending
each one's record with every reply made the replies ~60 kB and their decoding a fifth of
the queries' client CPU. A record never changes under its number (a correction is removed
and indexed under a new one), and the digest covers everything it holds but the id
(`scoring.analyse`), so a kept record is never stale, even across a dropped index.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.render.related import minhash

# records a process keeps (a few kB each, most of it the sketch). 10,000 until stop 29: a rebuild of
# 20,000 articles then started afresh every few batches (see CODE_LIMIT in rerank.py, raised with it)
RECORD_LIMIT = 40_000

Key = tuple[bytes, bytes, bytes]  # record number, article id, digest, as the query script names them


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    published_at: float
    sketch: frozenset[int]
    blob: bytes | None  # the full vector as stored (`rerank.StoredVector` reads it)
    length: float


# the record fields `decode` takes, in order, after the id and digest that check them
FIELDS = ("id", "h", "ts", "sig", "f", "dl")


def decode(key: Key, fields: list) -> Record | None:
    """A record from its `FIELDS` as HMGET gives them; None when the number now holds another article
    or nothing (removed or corrected between the query and this read)."""
    aid, digest, ts, sig, blob, length = fields
    if aid is None or aid != key[1] or (digest or b"") != key[2]:
        return None
    return Record(aid.decode("utf-8"), float(ts or 0), frozenset(minhash.unpack(sig)), blob or None,
                  float(length or 0))


class Records:
    """The process's kept records, up to `limit`: `trim` (before a batch) starts afresh past it.
    Thread-safe as dict reads and writes are; a record lost to another thread's trim is read again."""

    def __init__(self, limit: int = RECORD_LIMIT) -> None:
        self.limit = limit
        self._kept: dict[Key, Record] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def trim(self) -> None:
        if len(self._kept) > self.limit:
            self._kept = {}

    def get(self, key: Key) -> Record | None:
        return self._kept.get(key)

    def put(self, key: Key, record: Record) -> None:
        self._kept[key] = record


RECORDS = Records()  # this process's
