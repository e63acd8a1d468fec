"""Where each article is in the pipeline, kept in Redis and changed only atomically.

One hash per article holds the desired state (latest accepted `version`, its document
key, whether it should be withdrawn, its embargo) and the observed state (`status`,
`published_version`, `path`, `url`, `key`). Version comparisons happen inside Lua
scripts, so concurrent and out-of-order deliveries always converge on the newest version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared import keys
from shared.redis_text import text

TIMELINE_LENGTH = 200
STATUSES = ("queued", "scheduled", "published", "failed", "withdrawn")

# Every script that sets `status` also moves the article between the per-status sets
# (keys.articles_by_status), so `pressroom status` counts with ZCARD instead of a scan.
# The state key is KEYS[1] in each script; the article id is its last part.
_STATUS_INDEX = f"""
local function index_status(status)
  local aid = string.match(KEYS[1], '[^:]+$')
  local t = redis.call('TIME')
  for _, other in ipairs({{{", ".join(repr(x) for x in STATUSES)}}}) do
    if other ~= status then redis.call('ZREM', '{keys.ARTICLES_BY_STATUS}' .. other, aid) end
  end
  redis.call('ZADD', '{keys.ARTICLES_BY_STATUS}' .. status, tonumber(t[1]) + tonumber(t[2]) / 1e6, aid)
end
"""

# KEYS: state, timeline, outbox, embargoes, answer ('' for none), queue ('' for none)
# ARGV: version, doc_key, uri, withdraw, embargo_ts, now, event_json, aid, status, answer, answer_ttl, message
_ACCEPT = _STATUS_INDEX + """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
local version = tonumber(ARGV[1])
if version <= current then
  return {'stale', tostring(current), redis.call('HGET', KEYS[1], 'status') or ''}
end
local status = ARGV[9]
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'doc_key', ARGV[2], 'uri', ARGV[3],
  'withdraw', ARGV[4], 'embargo', ARGV[5], 'status', status, 'updated_at', ARGV[6])
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[6])
index_status(status)
redis.call('RPUSH', KEYS[2], ARGV[7])
redis.call('LTRIM', KEYS[2], -200, -1)
local sent = '0'
if status == 'scheduled' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[8])
else
  redis.call('ZREM', KEYS[4], ARGV[8])
  if KEYS[6] ~= '' then
    redis.call('LPUSH', KEYS[6], ARGV[12])
    sent = '1'
  else
    redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8] .. ':' .. ARGV[1])
  end
end
if KEYS[5] ~= '' then redis.call('SET', KEYS[5], ARGV[10], 'EX', ARGV[11]) end
return {'accepted', ARGV[1], status, sent}
"""

# KEYS: state, timeline, outbox, embargoes
# ARGV: now, event_json, aid
_WITHDRAW = _STATUS_INDEX + """
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return {'missing', '', ''} end
if redis.call('HGET', KEYS[1], 'withdraw') == '1' then
  return {'already', version, redis.call('HGET', KEYS[1], 'status')}
end
redis.call('HSET', KEYS[1], 'withdraw', '1', 'status', 'queued', 'updated_at', ARGV[1], 'embargo', '0')
index_status('queued')
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -200, -1)
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[3] .. ':' .. version)
redis.call('ZREM', KEYS[4], ARGV[3])
return {'accepted', version, 'queued'}
"""

# KEYS: state, timeline
# ARGV: version, status, event_json, then field/value pairs
_FINISH = _STATUS_INDEX + """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -200, -1)
if current == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  index_status(ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Decision:
    outcome: str  # accepted | stale | missing | already
    version: int | None
    status: str
    sent: bool = False  # the render task was queued with the state (no outbox entry to clear)


@dataclass(frozen=True)
class Enqueue:
    """A broker message to push atomically with the state: the list key and the payload."""

    queue: str
    message: bytes | str


def initial_status(withdraw: bool, embargo: float | None, now: float) -> str:
    """What a newly accepted version is: `scheduled` until a future embargo, else `queued`."""
    return "scheduled" if not withdraw and (embargo or 0) > now else "queued"


def _event(event: str, version: int | None = None, **detail) -> str:
    item = {"at": time.time(), "event": event}
    if version is not None:
        item["version"] = version
    item.update({k: v for k, v in detail.items() if v is not None})
    return json.dumps(item, separators=(",", ":"))


class ArticleState:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._accept = client.register_script(_ACCEPT)
        self._withdraw = client.register_script(_WITHDRAW)
        self._finish = client.register_script(_FINISH)

    def accept(
        self,
        aid: str,
        uri: str,
        version: int,
        doc_key: str,
        withdraw: bool = False,
        embargo: float | None = None,
        now: float | None = None,
        answer: tuple[str, str, int] | None = None,
        enqueue: Enqueue | None = None,
    ) -> Decision:
        """Record a newly accepted version unless a newer or equal one is stored.

        In the same atomic step: `answer` (idempotency key, stored answer, ttl) is written
        when the version is accepted, and `enqueue` pushes the render task; without it the
        work goes to the outbox for the caller (or the scheduler's sweep) to send. Pass
        `now` when `answer` was built for `initial_status(withdraw, embargo, now)`.
        """
        now = time.time() if now is None else now
        status = initial_status(withdraw, embargo, now)
        event = _event("withdraw requested" if withdraw else "accepted", version)
        name, stored, ttl = answer or ("", "", 0)
        result = self._accept(
            keys=[
                keys.article_state(aid), keys.article_timeline(aid), keys.OUTBOX, keys.EMBARGOES,
                name, enqueue.queue if enqueue else "",
            ],
            args=[
                version, doc_key, uri, "1" if withdraw else "0", embargo or 0, now, event, aid, status,
                stored, ttl, enqueue.message if enqueue else "",
            ],
        )
        outcome, stored_version, stored_status = (text(v) for v in result[:3])
        return Decision(outcome, int(stored_version), stored_status, sent=len(result) > 3 and text(result[3]) == "1")

    def request_withdraw(self, aid: str, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        outcome, version, status = self._withdraw(
            keys=[keys.article_state(aid), keys.article_timeline(aid), keys.OUTBOX, keys.EMBARGOES],
            args=[now, _event("withdraw requested", source="api"), aid],
        )
        return Decision(text(outcome), int(text(version)) if text(version) else None, text(status))

    def finish(self, aid: str, version: int, status: str, event: str, **fields) -> bool:
        """Record the outcome of processing `version`; the status changes only if it is still current."""
        detail = {k: v for k, v in fields.items() if k in ("url", "reason")}
        pairs: list = []
        for name, value in fields.items():
            pairs += [name, "" if value is None else value]
        return bool(
            self._finish(
                keys=[keys.article_state(aid), keys.article_timeline(aid)],
                args=[version, status, _event(event, version, **detail), *pairs],
            )
        )

    def finish_many(self, items: list[tuple[str, int, str, str, dict]]) -> list[bool]:
        """`finish` for many articles in one round trip: (aid, version, status, event, fields) each."""
        pipe = self.redis.pipeline(transaction=False)
        for aid, version, status, event, fields in items:
            detail = {k: v for k, v in fields.items() if k in ("url", "reason")}
            pairs: list = []
            for name, value in fields.items():
                pairs += [name, "" if value is None else value]
            self._finish(
                keys=[keys.article_state(aid), keys.article_timeline(aid)],
                args=[version, status, _event(event, version, **detail), *pairs],
                client=pipe,
            )
        return [bool(r) for r in pipe.execute()]

    def log(self, aid: str, event: str, version: int | None = None, **detail) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(keys.article_timeline(aid), _event(event, version, **detail))
        pipe.ltrim(keys.article_timeline(aid), -TIMELINE_LENGTH, -1)
        pipe.execute()

    def get(self, aid: str) -> dict | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.article_state(aid))
        pipe.lrange(keys.article_timeline(aid), 0, -1)
        state, timeline = pipe.execute()
        if not state:
            return None
        state = {text(k): text(v) for k, v in state.items()}
        state["timeline"] = [json.loads(text(item)) for item in timeline]
        return state

    def claim_paths(self, claims: list[tuple[str, str]]) -> list[bool]:
        """Reserve public paths for (article id, path) pairs, in two pipelined round trips at most;
        True where the path is (now) that article's.

        Claimed in order, so of two articles of the batch that want one path the first gets it.
        """
        if not claims:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for aid, path in claims:
            pipe.set(keys.path_claim(path), aid, nx=True)
        won = [bool(ok) for ok in pipe.execute()]
        taken = [i for i, ok in enumerate(won) if not ok]
        if taken:
            for i in taken:
                pipe.get(keys.path_claim(claims[i][1]))
            for i, holder in zip(taken, pipe.execute(), strict=True):
                won[i] = text(holder) == claims[i][0]
        return won

    # outbox: accepted work not yet handed to the broker
    def outbox_done(self, aid: str, version: int) -> None:
        self.redis.zrem(keys.OUTBOX, f"{aid}:{version}")

    def outbox_due(self, older_than: float, limit: int = 500) -> list[tuple[str, int]]:
        members = self.redis.zrangebyscore(keys.OUTBOX, "-inf", older_than, start=0, num=limit)
        out = []
        for member in members:
            aid, _, version = text(member).partition(":")
            out.append((aid, int(version)))
        return out

    def embargoes_due(self, now: float, limit: int = 500) -> list[str]:
        return [text(m) for m in self.redis.zrangebyscore(keys.EMBARGOES, "-inf", now, start=0, num=limit)]

    def release_embargo(self, aid: str, now: float) -> int | None:
        """Move an article whose embargo passed from the embargo set to the outbox."""
        state = self.redis.hmget(keys.article_state(aid), ["version", "status"])
        pipe = self.redis.pipeline()
        pipe.zrem(keys.EMBARGOES, aid)
        if state[0] is not None:
            version = int(text(state[0]))
            pipe.hset(keys.article_state(aid), mapping={"status": "queued", "embargo": "0"})
            for other in STATUSES:
                if other != "queued":
                    pipe.zrem(keys.articles_by_status(other), aid)
            pipe.zadd(keys.articles_by_status("queued"), {aid: now})
            pipe.zadd(keys.OUTBOX, {f"{aid}:{version}": now})
            pipe.rpush(keys.article_timeline(aid), _event("embargo lifted", version))
        removed = pipe.execute()[0]
        return int(text(state[0])) if removed and state[0] is not None else None
