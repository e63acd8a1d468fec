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
from shared.subscriptions import sub_key as subscription_key

RECORD_TTL = 8 * 24 * 3600  # longer than the retry schedule; duplicates are absorbed this long
LOG_LENGTH = 1000
TERMINAL = ("delivered", "failed", "cancelled")
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


# KEYS: record per subscriber..., due   ARGV: event_key, type, aid, version, now, ttl, then one sub id per record
_CREATE = """
local due = KEYS[#KEYS]
local out = {}
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
    redis.call('ZADD', due, ARGV[5], did)
    out[i] = 'created'
  end
end
return out
"""

# What an attempt reads: of the record (RECORD_FIELDS) and, returned by the claim, of the subscription.
RECORD_FIELDS = ("state", "sub", "event_key", "type", "article", "version")
SUB_FIELDS = ("id", "channel", "target", "topics", "events", "status", "created_at", "updated_at", "failing_since",
              "secrets", "unsubscribe_token")

# KEYS: record, due, busy, subscription, event, waiting   ARGV: now, lease_until, token, id, busy_ms, rescue_at
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then redis.call('ZREM', KEYS[2], ARGV[4]) return {'missing', 0} end
if state == 'delivered' or state == 'failed' or state == 'cancelled' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {state, 0}
end
local now = tonumber(ARGV[1])
if state == 'delivering' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease > now then return {'busy', 0} end
else
  local due = tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0')
  if due > now then redis.call('ZADD', KEYS[2], due, ARGV[4]) return {'early', 0} end
end
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[5]) then
  redis.call('ZADD', KEYS[6], now, ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
  return {'deferred', 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'delivering', 'lease_until', ARGV[2], 'token', ARGV[3], 'updated_at', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return {'claimed', attempts, redis.call('HMGET', KEYS[4], SUB_FIELDS), redis.call('GET', KEYS[5]) or ''}
""".replace("SUB_FIELDS", ", ".join(f"'{f}'" for f in SUB_FIELDS))

# KEYS: record, due, busy, log, waiting   ARGV: token, state, next_at, now, last_status, last_error, id, ttl, entry,
#   log_len
_FINISH = """
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
  local nxt = redis.call('ZPOPMIN', KEYS[5])
  if nxt[1] then redis.call('ZADD', KEYS[2], ARGV[4], nxt[1]) end
end
if ARGV[9] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[9])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)
end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'token', '', 'lease_until', '0', 'updated_at', ARGV[4],
  'last_status', ARGV[5], 'last_error', ARGV[6])
if ARGV[2] == 'pending' then
  redis.call('HSET', KEYS[1], 'next_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])
else
  redis.call('ZREM', KEYS[2], ARGV[7])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end
return 1
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
_RELEASE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""


@dataclass(frozen=True)
class Claim:
    """One attempt's hold on a delivery; when claimed, it carries what the attempt needs."""

    outcome: str  # claimed | busy | early | deferred | missing | delivered | failed | cancelled
    attempt: int
    token: str
    sid: str = ""
    subscription: dict | None = None  # the subscription's SUB_FIELDS (None if it is gone)
    event: dict | None = None  # the stored event (None if it expired)


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
        return [(did, _s(state)) for did, state in zip(ids, states, strict=True)]

    def get(self, did: str) -> dict | None:
        raw = self.redis.hgetall(delivery_key(did))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    def get_many(self, dids: list[str]) -> dict[str, dict | None]:
        """What an attempt needs of each record of `dids` (RECORD_FIELDS), in one round trip;
        None for a missing record."""
        pipe = self.redis.pipeline(transaction=False)
        for did in dids:
            pipe.hmget(delivery_key(did), RECORD_FIELDS)
        return {did: (dict(zip(RECORD_FIELDS, map(_s, values), strict=True)) if values[0] is not None else None)
                for did, values in zip(dids, pipe.execute(), strict=True)}

    def claim(self, did: str, lease_seconds: float, record: dict | None = None, now: float | None = None) -> Claim:
        """Take the delivery for one attempt if it is due, nobody holds a live lease on it and no
        other delivery to the same subscriber is in flight. If one is, the delivery is
        'deferred': it waits in the subscriber's waiting set until that one finishes (which
        makes the oldest waiting delivery due), or, should that never happen, 2 leases.

        One round trip (given the record): a claimed Claim carries the subscription and event.
        """
        now = time.time() if now is None else now
        record = record if record is not None else self.get(did)
        if record is None:
            return Claim("missing", 0, "")
        return self.claim_many({did: record}, lease_seconds, now)[did]

    def claim_many(self, records: dict[str, dict], lease_seconds: float, now: float | None = None) -> dict[str, Claim]:
        """claim() for several deliveries (id -> record) in one round trip, in the given order:
        of two deliveries to one subscriber, the second is deferred behind the first."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        tokens = {}
        for did, record in records.items():
            tokens[did] = token = secrets.token_hex(8)
            sid = record["sub"]
            keys = [delivery_key(did), DUE, busy_key(sid), subscription_key(sid), record["event_key"], waiting_key(sid)]
            pipe.evalsha(self._claim.sha, len(keys), *keys,
                         now, now + lease_seconds, token, did, int(lease_seconds * 1000), now + 2 * lease_seconds)
        replies = self._run_scripts(pipe, self._claim) if records else []
        events: dict[bytes, dict] = {}  # the deliveries of a batch mostly share one event: parse it once
        claims = {}
        for (did, record), reply in zip(records.items(), replies, strict=True):
            outcome, attempt, sid = _s(reply[0]), int(reply[1]), record["sub"]
            if outcome != "claimed":
                claims[did] = Claim(outcome, attempt, tokens[did], sid)
                continue
            values = reply[2]
            sub = dict(zip(SUB_FIELDS, map(_s, values), strict=True)) if values and values[0] is not None else None
            if reply[3] and reply[3] not in events:
                events[reply[3]] = json.loads(reply[3])
            claims[did] = Claim(outcome, attempt, tokens[did], sid, sub, events.get(reply[3]) if reply[3] else None)
        return claims

    def finish(
        self, did: str, claim: Claim, state: str, *, next_at: float = 0.0, http_status: int | None = None,
        error: str = "", log_entry: dict | None = None, now: float | None = None,
    ) -> bool:
        """Record an attempt's end, `pending` (retry at next_at) or a terminal state, append
        `log_entry` to the subscriber's log and free the subscriber: its oldest waiting
        delivery becomes due.

        Returns False when the lease was lost (another run took over): the state is not changed then.
        """
        keys, args = self._finish_call(did, claim, state, next_at, http_status, error, log_entry, now)
        return bool(self._finish(keys=keys, args=args))

    def finish_many(self, calls: list[tuple[str, Claim, str, dict]]) -> list[bool]:
        """finish() for several attempts, each (did, claim, state, finish keyword arguments), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for did, claim, state, kwargs in calls:
            keys, args = self._finish_call(did, claim, state, kwargs.get("next_at", 0.0), kwargs.get("http_status"),
                                           kwargs.get("error", ""), kwargs.get("log_entry"), kwargs.get("now"))
            pipe.evalsha(self._finish.sha, len(keys), *keys, *args)
        return [bool(r) for r in self._run_scripts(pipe, self._finish)] if calls else []

    def _finish_call(
        self, did: str, claim: Claim, state: str, next_at: float, http_status: int | None, error: str,
        log_entry: dict | None, now: float | None,
    ) -> tuple[list, list]:
        now = time.time() if now is None else now
        entry = json.dumps(log_entry, separators=(",", ":")) if log_entry else ""
        keys = [delivery_key(did), DUE, busy_key(claim.sid), log_key(claim.sid), waiting_key(claim.sid)]
        args = [claim.token, state, next_at, now, http_status or "", error[:300], did, RECORD_TTL, entry, LOG_LENGTH]
        return keys, args

    def _run_scripts(self, pipe, script) -> list:
        """Execute a pipeline of EVALSHA calls of `script`, loading the script first if Redis lost it.

        (A Script object in a pipeline would ask SCRIPT EXISTS on every execute: a round trip more.)
        Nothing ran when the script was missing, so sending the same commands again is safe.
        """
        commands = list(pipe.command_stack)
        try:
            return pipe.execute()
        except redis.exceptions.NoScriptError:
            self.redis.script_load(script.script)
            pipe.command_stack = commands
            return pipe.execute()

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
        return _s(self._reset(keys=[delivery_key(did), DUE], args=[now, did, RECORD_TTL]))

    def release_due(self, now: float | None = None, limit: int = 1000, requeue_after: float = 120.0) -> list[str]:
        """Deliveries due now; each is pushed `requeue_after` seconds ahead in case its task is lost."""
        now = time.time() if now is None else now
        return [_s(d) for d in self._release(keys=[DUE], args=[now, limit, now + requeue_after])]

    # the log subscribers read through the API
    def log(self, sid: str, entry: dict) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(log_key(sid), json.dumps(entry, separators=(",", ":")))
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


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))
