"""Delivery records, the retry schedule set and the delivery log, in Redis.

One record per (article id, version, event type, subscription), created with a Lua
"create if absent", so however often an event or a batch is processed, each subscriber
has exactly one delivery of it. Every attempt moves the record through a small state
machine under a lease:

    pending --claim--> delivering --finish--> delivered | failed | cancelled
       ^                    |
       +------ retry -------+          (a lapsed lease lets the next run reclaim it)

The sorted set DUE holds every delivery that needs work at a given time: new ones (due at
once), retries at their next attempt, and deliveries in flight at their lease's end (so a
worker that dies mid-delivery is noticed). The dispatcher releases due members into the
broker as fast as workers take them; nothing waits in a Celery countdown. In `shared/`
because the API reads the log and re-queues failed deliveries.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import redis

from shared import keys
from shared.keys import NOTIFY_DUE
from shared.redis_text import text, texts

RECORD_TTL = 8 * 24 * 3600  # longer than the retry schedule; duplicates are absorbed this long
LOG_LENGTH = 1000
TERMINAL = ("delivered", "failed", "cancelled")
_compact = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one a log line (json.dumps makes one)
DUE = NOTIFY_DUE


delivery_key = keys.delivery
event_key = keys.delivery_event
log_key = keys.delivery_log
busy_key = keys.delivery_busy  # one delivery at a time per subscriber
waiting_key = keys.delivery_waiting  # no polling while the subscriber is busy


def delivery_id(aid: str, version: int, event: str, sid: str) -> str:
    """The id of the one delivery of an event to a subscriber; the webhook-id derives from it."""
    digest = hashlib.blake2b(f"{aid}\0{version}\0{event}\0{sid}".encode(), digest_size=12).hexdigest()
    return "d" + digest


def webhook_id(did: str) -> str:
    return f"msg_{did}"


# Scores many members of a sorted set in as few ZADDs as Lua's unpack allows (its stack holds
# about 8,000 values): one command for a whole call instead of one a member.
_ZADD_PAIRS = """
local function zadd_pairs(key, scored)
  for i = 1, #scored, 1000 do redis.call('ZADD', key, unpack(scored, i, math.min(i + 999, #scored))) end
end
"""

# KEYS: record per subscriber..., due   ARGV: event_key, type, aid, version, now, ttl, then one sub id per record
_CREATE = _ZADD_PAIRS + """
local due = KEYS[#KEYS]
local out, scored = {}, {}
for i = 1, #KEYS - 1 do
  local state = redis.call('HGET', KEYS[i], 'state')
  if state then
    out[i] = state
  else
    local did = string.sub(KEYS[i], string.len(ARGV[7]) + 1)
    redis.call('HSET', KEYS[i], 'id', did, 'sub', ARGV[7 + i], 'event_key', ARGV[1], 'type', ARGV[2],
      'article', ARGV[3], 'version', ARGV[4], 'state', 'pending', 'attempts', '0', 'next_at', ARGV[5],
      'created_at', ARGV[5], 'updated_at', ARGV[5])
    redis.call('EXPIRE', KEYS[i], ARGV[6])
    scored[#scored + 1] = ARGV[5]
    scored[#scored + 1] = did
    out[i] = 'created'
  end
end
zadd_pairs(due, scored)
return out
"""

# What a claim returns of the subscription: what every delivery uses (SUB_FIELDS) and, for an
# email, what its message says (EMAIL_FIELDS). Reading and returning all of a subscription for
# each webhook cost Redis a sixth of the claim script's time. Of the record, what an attempt's
# log line says (_ENTRY_FIELDS).
SUB_FIELDS = ("id", "channel", "target", "status", "failing_since", "secrets")
EMAIL_FIELDS = ("topics", "unsubscribe_token")
_SUB_AND_EMAIL_FIELDS = SUB_FIELDS + EMAIL_FIELDS
_ENTRY_FIELDS = ("type", "article", "version")

# The claim and finish scripts name the keys of a delivery's record and subscriber themselves,
# from key prefixes and the ids (the subscriber's read from the record): reading every record
# first and passing five keys a delivery cost the worker more than the rest of the claim. Keys
# not passed as KEYS are fine on a single Redis (the broker's), not in Redis Cluster.
_PREFIXES = {"record": keys.delivery(""), "busy": keys.delivery_busy(""), "sub": keys.subscription(""),
             "waiting": keys.delivery_waiting(""), "log": keys.delivery_log("")}

# One call claims a chunk of deliveries in the given order (of two to one subscriber, the second
# is deferred behind the first) and returns each event body once, however many deliveries share it.
# KEYS: due   ARGV: now, lease_until, busy_ms, rescue_at, prefixes of record, busy, subscription and
# waiting keys, then per delivery: id, token
# Reply: {per delivery {outcome, attempts[, subscriber id[, subscription fields, event index (0: none),
# type, article, version]]}, event bodies}
_CLAIM = """
local due, now = KEYS[1], tonumber(ARGV[1])
local bodies, seen = {}, {}
local function claim(id, token)
  local record = ARGV[5] .. id
  local held = redis.call('HMGET', record, 'state', 'lease_until', 'next_at', 'attempts', 'sub', 'event_key',
    'type', 'article', 'version')
  local state, sid = held[1], held[5]
  if not state or not sid then redis.call('ZREM', due, id) return {'missing', 0} end  -- no sid: a husk
  if state == 'delivered' or state == 'failed' or state == 'cancelled' then
    redis.call('ZREM', due, id)
    return {state, 0, sid}
  end
  if state == 'delivering' then
    if tonumber(held[2] or '0') > now then return {'busy', 0, sid} end
  else
    local at = tonumber(held[3] or '0')
    if at > now then redis.call('ZADD', due, at, id) return {'early', 0, sid} end
  end
  if not redis.call('SET', ARGV[6] .. sid, token, 'NX', 'PX', ARGV[3]) then
    redis.call('ZADD', ARGV[8] .. sid, now, id)
    redis.call('ZADD', due, ARGV[4], id)
    return {'deferred', 0, sid}
  end
  local attempts = tonumber(held[4] or '0') + 1
  redis.call('HSET', record, 'state', 'delivering', 'lease_until', ARGV[2], 'token', token, 'updated_at', ARGV[1],
    'attempts', attempts)
  redis.call('ZADD', due, ARGV[2], id)
  local event = held[6]
  if seen[event] == nil then
    local body = redis.call('GET', event)
    if body then bodies[#bodies + 1] = body; seen[event] = #bodies else seen[event] = 0 end
  end
  local sub = ARGV[7] .. sid
  local fields = redis.call('HMGET', sub, SUB_FIELDS)
  if fields[2] == 'email' then fields = redis.call('HMGET', sub, SUB_FIELDS, EMAIL_FIELDS) end
  return {'claimed', attempts, sid, fields, seen[event], held[7], held[8], held[9]}
end
local out = {}
for i = 9, #ARGV, 2 do out[#out + 1] = claim(ARGV[i], ARGV[i + 1]) end
return {out, bodies}
""".replace("SUB_FIELDS", ", ".join(f"'{f}'" for f in SUB_FIELDS)).replace(
    "EMAIL_FIELDS", ", ".join(f"'{f}'" for f in EMAIL_FIELDS))

# One call records the ends of several attempts, in order. While the subscriber's busy lock still
# holds an attempt's token no other claim can have taken its record (a claim needs the lock), so
# the record's token is read only when the lock has lapsed.
# KEYS: due   ARGV: ttl, log_len, now, prefixes of record, busy, log and waiting keys,
# then per attempt: id, subscriber id, token, state, next_at, last_status, last_error, log entry
# Reply: per attempt 1, or 0 when its lease was lost (its state is left as it is)
_FINISH = """
local due, now, log_len = KEYS[1], ARGV[3], tonumber(ARGV[2])
local function finish(id, sid, token, state, next_at, status, err, entry)
  local record, busy = ARGV[4] .. id, ARGV[5] .. sid
  local held = redis.call('GET', busy) == token
  if held then
    redis.call('DEL', busy)
    local nxt = redis.call('ZPOPMIN', ARGV[7] .. sid)
    if nxt[1] then redis.call('ZADD', due, now, nxt[1]) end
  end
  if entry ~= '' then
    local log = ARGV[6] .. sid
    if redis.call('LPUSH', log, entry) > log_len then redis.call('LTRIM', log, 0, log_len - 1) end
  end
  if not held and redis.call('HGET', record, 'token') ~= token then return 0 end
  redis.call('HSET', record, 'state', state, 'token', '', 'lease_until', '0', 'updated_at', now,
    'last_status', status, 'last_error', err)
  if state == 'pending' then
    redis.call('HSET', record, 'next_at', next_at)
    redis.call('ZADD', due, next_at, id)
  else
    redis.call('ZREM', due, id)
    redis.call('EXPIRE', record, ARGV[1])
  end
  return 1
end
local out = {}
for i = 8, #ARGV, 8 do
  out[#out + 1] = finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    ARGV[i + 7])
end
return out
"""

# KEYS: record, due   ARGV: now, id, ttl
_RESET = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'failed' and state ~= 'cancelled' then return state or 'missing' end
redis.call('HSET', KEYS[1], 'state', 'pending', 'attempts', '0', 'next_at', ARGV[1], 'token', '',
  'updated_at', ARGV[1], 'last_error', '')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + 30, ARGV[2])
return 'reset'
"""

# KEYS: due   ARGV: now, limit, requeue_at
_RELEASE = _ZADD_PAIRS + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local scored = {}
for _, id in ipairs(ids) do
  scored[#scored + 1] = ARGV[3]
  scored[#scored + 1] = id
end
zadd_pairs(KEYS[1], scored)
return ids
"""


@dataclass(slots=True)
class Claim:
    """One attempt's hold on a delivery; when claimed, it carries what the attempt needs."""

    outcome: str  # claimed | busy | early | deferred | missing | delivered | failed | cancelled
    attempt: int
    token: str
    sid: str = ""
    subscription: dict | None = None  # its SUB_FIELDS (+ EMAIL_FIELDS for email), decoded ('' if absent; None: gone)
    event: dict | None = None  # the stored event (None if it expired)
    record: dict | None = None  # when claimed, the record's type, article and version


class DeliveryStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._reset = client.register_script(_RESET)
        self._release = client.register_script(_RELEASE)

    # events: the notification's data, stored once per event and shared by its deliveries
    def save_event(self, event: dict) -> str:
        """Store the event (first copy wins, so every retry sends the same body); returns its key."""
        key = event_key(event["id"], int(event["version"]), event["type"])
        self.redis.set(key, json.dumps(event, separators=(",", ":")), nx=True, ex=RECORD_TTL)
        return key

    def load_event(self, key: str) -> dict | None:
        raw = self.redis.get(key)
        return json.loads(raw) if raw else None

    def create_many(self, ekey: str, event: dict, sids: list[str], now: float | None = None) -> list[tuple[str, str]]:
        """Create the deliveries of one event to `sids` in one round trip; returns (delivery id,
        state before) pairs: 'created' for new records, an existing record is left untouched.

        Each new record is put in DUE, due now: dispatching it is the dispatcher's job
        (services.notify.dispatch), which queues only as many tasks as workers can take.
        """
        now = time.time() if now is None else now
        aid, version, kind = event["id"], int(event["version"]), event["type"]
        ids = [delivery_id(aid, version, kind, sid) for sid in sids]
        if not ids:
            return []
        states = self._create(
            keys=[*(delivery_key(did) for did in ids), DUE],
            args=[ekey, kind, aid, version, now, RECORD_TTL, delivery_key(""), *sids],
        )
        return [(did, text(state)) for did, state in zip(ids, states, strict=True)]

    def get(self, did: str) -> dict | None:
        raw = self.redis.hgetall(delivery_key(did))
        return {text(k): text(v) for k, v in raw.items()} if raw else None

    def claim(self, did: str, lease_seconds: float, now: float | None = None) -> Claim:
        """Take the delivery for one attempt if it is due, nobody holds a live lease on it and no
        other delivery to the same subscriber is in flight. If one is, the delivery is
        'deferred': it waits in the subscriber's waiting set until that one finishes (which
        makes the oldest waiting delivery due), or, should that never happen, 2 leases.

        One round trip: a claimed Claim carries the subscription, the event and what its
        log line needs of the record; any other outcome says why (a done delivery's state,
        'missing', 'busy', 'early', 'deferred').
        """
        return self.claim_many([did], lease_seconds, now)[did]

    def claim_many(self, dids: list[str], lease_seconds: float, now: float | None = None) -> dict[str, Claim]:
        """claim() for several deliveries (distinct ids) in one script call, in the given order:
        of two deliveries to one subscriber, the second is deferred behind the first."""
        if not dids:
            return {}
        now = time.time() if now is None else now
        prefix = secrets.token_hex(8)  # 64 random bits a chunk, numbered within it: still a token of its own an attempt
        args = [now, now + lease_seconds, int(lease_seconds * 1000), now + 2 * lease_seconds, _PREFIXES["record"],
                _PREFIXES["busy"], _PREFIXES["sub"], _PREFIXES["waiting"]]
        tokens = []
        for n, did in enumerate(dids):
            token = f"{prefix}{n:x}"
            tokens.append(token)
            args += (did, token)
        replies, bodies = self._claim(keys=[DUE], args=args)
        events = [json.loads(body) for body in bodies]  # a chunk's deliveries mostly share one event
        claims = {}
        for did, token, reply in zip(dids, tokens, replies, strict=True):
            outcome, attempt = text(reply[0]), int(reply[1])
            sid = text(reply[2]) if len(reply) > 2 else ""
            if outcome != "claimed":
                claims[did] = Claim(outcome, attempt, token, sid)
                continue
            values, event = reply[3], int(reply[4])
            names = SUB_FIELDS if len(values) == len(SUB_FIELDS) else _SUB_AND_EMAIL_FIELDS
            sub = dict(zip(names, texts(values), strict=True)) if values and values[0] is not None else None
            record = dict(zip(_ENTRY_FIELDS, texts(reply[5:8]), strict=True))
            claims[did] = Claim(outcome, attempt, token, sid, sub, events[event - 1] if event else None, record)
        return claims

    def finish(
        self, did: str, claim: Claim, state: str, *, next_at: float = 0.0, http_status: int | None = None,
        error: str = "", log_entry: str = "", now: float | None = None,
    ) -> bool:
        """Record an attempt's end, `pending` (retry at next_at) or a terminal state, append
        `log_entry` (the line as JSON text; '' for none) to the subscriber's log and free the
        subscriber: its oldest waiting delivery becomes due.

        Returns False when the lease was lost (another run took over): the state is not changed then.
        """
        details = {"next_at": next_at, "http_status": http_status, "error": error, "log_entry": log_entry}
        return self.finish_many([(did, claim, state, details)], now)[0]

    def finish_many(self, calls: list[tuple[str, Claim, str, dict]], now: float | None = None) -> list[bool]:
        """finish() for several attempts, each (did, claim, state, finish keyword arguments but
        `now`), in one script call; `now` is when they all ended."""
        if not calls:
            return []
        args = [RECORD_TTL, LOG_LENGTH, time.time() if now is None else now, _PREFIXES["record"], _PREFIXES["busy"],
                _PREFIXES["log"], _PREFIXES["waiting"]]
        for did, claim, state, details in calls:
            args += (did, claim.sid, claim.token, state, details.get("next_at") or 0, details.get("http_status") or "",
                     details.get("error", "")[:300], details.get("log_entry") or "")
        return [bool(done) for done in self._finish(keys=[DUE], args=args)]

    def defer(self, did: str, at: float) -> None:
        """Look at the delivery again at `at` without counting an attempt."""
        self.redis.zadd(DUE, {did: at})

    def hand_back(self, dids: list[str], now: float | None = None) -> None:
        """Make released but unclaimed deliveries due now again, for another worker to take."""
        if dids:
            self.redis.zadd(DUE, dict.fromkeys(dids, time.time() if now is None else now), lt=True)

    def reset(self, did: str, now: float | None = None) -> str:
        """Make a failed or cancelled delivery pending again with a fresh schedule; returns
        'reset', or the state that prevented it ('missing' if there is no such delivery)."""
        now = time.time() if now is None else now
        return text(self._reset(keys=[delivery_key(did), DUE], args=[now, did, RECORD_TTL]))

    def release_due(self, now: float | None = None, limit: int = 1000, requeue_after: float = 120.0) -> list[str]:
        """Deliveries due now; each is pushed `requeue_after` seconds ahead in case its task is lost."""
        now = time.time() if now is None else now
        return [text(d) for d in self._release(keys=[DUE], args=[now, limit, now + requeue_after])]

    # the log subscribers read through the API
    def log(self, sid: str, entry: dict) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(log_key(sid), _compact(entry))
        pipe.ltrim(log_key(sid), 0, LOG_LENGTH - 1)
        pipe.execute()

    def log_page(self, sid: str, page: int, per_page: int) -> tuple[list[dict], int]:
        """One page of the subscription's attempts, newest first, and the total kept."""
        start = (page - 1) * per_page
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(log_key(sid), start, start + per_page - 1)
        pipe.llen(log_key(sid))
        items, total = pipe.execute()
        return [json.loads(item) for item in items], int(total)

    def drop_log(self, sid: str) -> None:
        self.redis.delete(log_key(sid))
