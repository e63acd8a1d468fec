"""Subscribers and the topic index, in Redis: the contract between the API and notify.

Lives in `shared/` because both the ingest API (create, change, confirm, unsubscribe)
and the notify workers (match, sign, disable) use it, and services never import each
other. A subscription is one hash; only *deliverable* subscriptions (active, confirmed)
are in the index, one set per (event, normalised topic), so matching an article is a
union of a few sets and never a scan of every subscriber.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import redis

from shared import keys
from shared.messages import ARTICLE_EVENTS
from shared.redis_text import text
from shared.settings import parse_webhook_secret

WILDCARD = "*"
ROTATION_OVERLAP = 24 * 3600
CONFIRM_TTL = 7 * 24 * 3600
CHANNELS = ("webhook", "email")
STATUSES = ("pending", "active", "paused", "disabled")


sub_key = keys.subscription
index_key = keys.subscription_index
ALL_SUBSCRIPTIONS = keys.SUBSCRIPTIONS
SUBSCRIPTIONS_BY_CREATION = keys.SUBSCRIPTIONS_BY_CREATION


def normalise_topic(topic: str) -> str:
    """The index form of a topic: case- and accent-insensitive, spaces collapsed ("Défense " -> "defense")."""
    text = unicodedata.normalize("NFKD", topic.strip())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.casefold().split())


def normalise_topics(topics) -> list[str]:
    out: list[str] = []
    for topic in topics:
        norm = WILDCARD if topic.strip() == WILDCARD else normalise_topic(topic)
        if norm and norm not in out:
            out.append(norm)
    return out


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def new_token(sid: str) -> str:
    """A capability token that names its subscription, so the link alone is enough."""
    return f"{sid}.{secrets.token_urlsafe(24)}"


@dataclass
class Subscription:
    id: str
    channel: str
    target: str  # webhook URL or email address
    topics: list[str]
    events: list[str]
    status: str
    created_at: float
    updated_at: float
    description: str = ""
    disabled_reason: str = ""
    failing_since: float | None = None
    secrets: list[dict] = field(default_factory=list, repr=False)  # [{"secret": whsec, "until": ts | 0}]
    unsubscribe_token: str = field(default="", repr=False)
    confirm_token: str = field(default="", repr=False)
    confirm_expires: float = 0.0

    def signing_keys(self, now: float | None = None) -> list[bytes]:
        """Keys that sign each delivery: the current secret and, during rotation, the old one."""
        now = time.time() if now is None else now
        return [_signing_key(s["secret"]) for s in self.secrets if not s["until"] or s["until"] > now]

    @property
    def rotating_until(self) -> float | None:
        ends = [s["until"] for s in self.secrets if s["until"] and s["until"] > time.time()]
        return max(ends) if ends else None

    @property
    def index_topics(self) -> list[str]:
        return normalise_topics(self.topics)

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "channel": self.channel,
            "target": self.target,
            "topics": json.dumps(self.topics),
            "events": json.dumps(self.events),
            "status": self.status,
            "created_at": repr(self.created_at),
            "updated_at": repr(self.updated_at),
            "description": self.description,
            "disabled_reason": self.disabled_reason,
            "failing_since": "" if self.failing_since is None else repr(self.failing_since),
            "secrets": json.dumps(self.secrets),
            "unsubscribe_token": self.unsubscribe_token,
            "confirm_token": self.confirm_token,
            "confirm_expires": repr(self.confirm_expires),
        }

    @classmethod
    def from_hash(cls, raw: dict) -> Subscription:
        return cls.from_fields({text(k): text(v) for k, v in raw.items()})

    @classmethod
    def from_fields(cls, d: dict[str, str]) -> Subscription:
        """From the hash's fields already decoded. A delivery's claim reads only the fields a
        delivery uses (shared.deliveries.SUB_FIELDS): the others are left empty."""
        return cls(
            id=d["id"],
            channel=d["channel"],
            target=d["target"],
            topics=_names(d["topics"]) if d.get("topics") else [],
            events=_names(d["events"]) if d.get("events") else [],
            status=d["status"],
            created_at=float(d.get("created_at") or 0),
            updated_at=float(d.get("updated_at") or 0),
            description=d.get("description", ""),
            disabled_reason=d.get("disabled_reason", ""),
            failing_since=float(d["failing_since"]) if d.get("failing_since") else None,
            secrets=_secrets(d["secrets"]) if d.get("secrets") else [],
            unsubscribe_token=d.get("unsubscribe_token", ""),
            confirm_token=d.get("confirm_token", ""),
            confirm_expires=float(d.get("confirm_expires") or 0),
        )


class NotFound(LookupError):
    """No subscription with that id (or token)."""


class Conflict(Exception):
    """The change does not apply to the subscription's current state; the message says why."""


# KEYS: subscription   ARGV: now ('' ends the streak). Returns when the streak started.
_FAILING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == '' then redis.call('HSET', KEYS[1], 'failing_since', '') return false end
local since = redis.call('HGET', KEYS[1], 'failing_since')
if since and since ~= '' then return since end
redis.call('HSET', KEYS[1], 'failing_since', ARGV[1])
return ARGV[1]
"""


class SubscriptionStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._failing = client.register_script(_FAILING)

    # reading
    def get(self, sid: str) -> Subscription:
        raw = self.redis.hgetall(sub_key(sid)) if _valid_id(sid) else None
        if not raw:
            raise NotFound(sid)
        return Subscription.from_hash(raw)

    def get_many(self, sids: list[str]) -> dict[str, Subscription]:
        pipe = self.redis.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(sub_key(sid))
        return {sid: Subscription.from_hash(raw) for sid, raw in zip(sids, pipe.execute(), strict=True) if raw}

    def page(self, page: int, per_page: int) -> tuple[list[Subscription], int]:
        """One page of all subscriptions, newest first, and how many there are."""
        self._index_creation()
        start = (page - 1) * per_page
        sids = [text(m) for m in self.redis.zrevrange(SUBSCRIPTIONS_BY_CREATION, start, start + per_page - 1)]
        found = self.get_many(sids)
        return [found[sid] for sid in sids if sid in found], int(self.redis.zcard(SUBSCRIPTIONS_BY_CREATION))

    def _index_creation(self) -> None:
        """Order subscriptions created before the creation index existed (once; then the counts match)."""
        if self.redis.zcard(SUBSCRIPTIONS_BY_CREATION) >= self.redis.scard(ALL_SUBSCRIPTIONS):
            return
        indexed = {text(m) for m in self.redis.zrange(SUBSCRIPTIONS_BY_CREATION, 0, -1)}
        missing = [text(m) for m in self.redis.smembers(ALL_SUBSCRIPTIONS) if text(m) not in indexed]
        pipe = self.redis.pipeline(transaction=False)
        for sid in missing:
            pipe.hget(sub_key(sid), "created_at")
        created = {sid: float(text(at)) for sid, at in zip(missing, pipe.execute(), strict=True) if at}
        if created:
            self.redis.zadd(SUBSCRIPTIONS_BY_CREATION, created, nx=True)

    def matching(self, event: str, topics: list[str]) -> list[str]:
        """Ids of deliverable subscriptions to `event` following any of `topics` or `*`."""
        names = [index_key(event, t) for t in [*normalise_topics(topics), WILDCARD] if t]
        return sorted(text(m) for m in self.redis.sunion(names))

    # writing
    def create(
        self, channel: str, target: str, topics: list[str], events: list[str], description: str = "",
        now: float | None = None,
    ) -> tuple[Subscription, str | None]:
        """Store a new subscription; returns it and the webhook secret (shown once), if any.

        Webhooks are active at once; email subscriptions wait in `pending` for confirmation.
        """
        now = time.time() if now is None else now
        sid = "s" + secrets.token_hex(10)
        secret = new_secret() if channel == "webhook" else None
        sub = Subscription(
            id=sid, channel=channel, target=target, topics=topics, events=events or list(ARTICLE_EVENTS),
            status="active" if channel == "webhook" else "pending", created_at=now, updated_at=now,
            description=description, secrets=[{"secret": secret, "until": 0}] if secret else [],
            unsubscribe_token=new_token(sid),
            confirm_token=new_token(sid) if channel == "email" else "",
            confirm_expires=now + CONFIRM_TTL if channel == "email" else 0.0,
        )
        pipe = self.redis.pipeline()
        pipe.hset(sub_key(sid), mapping=sub.to_hash())
        pipe.sadd(ALL_SUBSCRIPTIONS, sid)
        pipe.zadd(SUBSCRIPTIONS_BY_CREATION, {sid: now})
        if sub.status == "active":
            _index(pipe, sub, add=True)
        pipe.execute()
        return sub, secret

    def update(self, sid: str, now: float | None = None, **changes) -> Subscription:
        """Change topics, events, target, description or status (active/paused) and re-index.

        Raises NotFound, or Conflict when resuming an email subscription never confirmed.
        """
        now = time.time() if now is None else now

        def change(sub: Subscription) -> Subscription:
            status = changes.get("status")
            if status == "active" and sub.status == "pending":
                raise Conflict("The email address is not confirmed yet; follow the link sent to it.")
            for name in ("topics", "events", "target", "description"):
                if changes.get(name) is not None:
                    setattr(sub, name, changes[name])
            if status and sub.status != "pending":
                sub.status = status
                if status == "active":
                    sub.disabled_reason, sub.failing_since = "", None
            sub.updated_at = now
            return sub

        return self._rewrite(sid, change)

    def rotate_secret(self, sid: str, now: float | None = None) -> tuple[Subscription, str]:
        """A new secret signs from now on; the current one keeps signing for 24 h."""
        now = time.time() if now is None else now
        secret = new_secret()

        def change(sub: Subscription) -> Subscription:
            if sub.channel != "webhook":
                raise Conflict("Only webhook subscriptions have a signing secret.")
            kept = [s for s in sub.secrets if s["until"] > now]
            kept += [{"secret": s["secret"], "until": now + ROTATION_OVERLAP} for s in sub.secrets if not s["until"]]
            sub.secrets = [{"secret": secret, "until": 0}, *kept]
            sub.updated_at = now
            return sub

        return self._rewrite(sid, change), secret

    def confirm(self, token: str, now: float | None = None) -> Subscription:
        """Activate the email subscription the confirmation token names (idempotent)."""
        now = time.time() if now is None else now

        def change(sub: Subscription) -> Subscription:
            if sub.status != "pending":
                if _same(sub.confirm_token, token):
                    return sub  # a second click on the same link
                raise NotFound(token)
            if not _same(sub.confirm_token, token):
                raise NotFound(token)
            if sub.confirm_expires < now:
                raise Conflict("This confirmation link has expired; subscribe again.")
            sub.status, sub.updated_at = "active", now
            return sub

        return self._rewrite(_token_owner(token), change)

    def by_unsubscribe_token(self, token: str) -> Subscription:
        sub = self.get(_token_owner(token))
        if not _same(sub.unsubscribe_token, token):
            raise NotFound(token)
        return sub

    def delete(self, sid: str) -> Subscription:
        """Remove the subscription and its index entries. Raises NotFound."""

        def remove(pipe, raw: dict) -> Subscription:
            sub = Subscription.from_hash(raw)
            _index(pipe, sub, add=False)
            pipe.delete(sub_key(sid))
            pipe.srem(ALL_SUBSCRIPTIONS, sid)
            pipe.zrem(SUBSCRIPTIONS_BY_CREATION, sid)
            return sub

        return self._watched(sid, remove)

    def disable(self, sid: str, reason: str, now: float | None = None) -> Subscription | None:
        """Stop all deliveries to a subscriber whose endpoint said so (410) or kept failing."""
        now = time.time() if now is None else now

        def change(sub: Subscription) -> Subscription:
            sub.status, sub.disabled_reason, sub.updated_at = "disabled", reason[:300], now
            return sub

        try:
            return self._rewrite(sid, change)
        except NotFound:
            return None

    def record_failure(self, sid: str, now: float) -> float:
        """Start (or continue) the subscription's failing streak; returns when it started.
        A subscription deleted meanwhile is not brought back as a stray field."""
        since = self._failing(keys=[sub_key(sid)], args=[repr(now)])
        return float(text(since)) if since else now

    def record_success(self, sid: str) -> None:
        self._failing(keys=[sub_key(sid)], args=[""])

    def _rewrite(self, sid: str, change) -> Subscription:
        """Read-modify-write, keeping the index in step with status, topics and events."""

        def write(pipe, raw: dict) -> Subscription:
            before, after = Subscription.from_hash(raw), change(Subscription.from_hash(raw))
            if before.status == "active":
                _index(pipe, before, add=False)
            if after.status == "active":
                _index(pipe, after, add=True)
            pipe.hset(sub_key(sid), mapping=after.to_hash())
            return after

        return self._watched(sid, write)

    def _watched(self, sid: str, write) -> Subscription:
        """Run `write(pipe, stored_hash)` in a MULTI under WATCH of the subscription, retrying on a
        concurrent change, so the index never keeps entries for topics it no longer has."""
        if not _valid_id(sid):
            raise NotFound(sid)
        key = sub_key(sid)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hgetall(key)
                    if not raw:
                        raise NotFound(sid)
                    pipe.multi()
                    result = write(pipe, raw)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue


def _index(pipe, sub: Subscription, add: bool) -> None:
    for event in sub.events:
        for topic in sub.index_topics:
            (pipe.sadd if add else pipe.srem)(index_key(event, topic), sub.id)


def _valid_id(sid: str) -> bool:
    return len(sid) == 21 and sid.startswith("s") and all(c in "0123456789abcdef" for c in sid[1:])


def _same(stored: str, given: str) -> bool:
    """Constant-time token comparison; any text from a URL is safe to pass (bytes, not str)."""
    return bool(stored) and hmac.compare_digest(stored.encode(), given.encode())


def _token_owner(token: str) -> str:
    sid, _, rest = token.partition(".")
    if not rest or not _valid_id(sid):
        raise NotFound(token)
    return sid


@lru_cache(maxsize=4096)
def _parsed_names(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _names(text: str) -> list[str]:
    """A stored JSON list of topics or events. Subscribers mostly share a few lists, and a
    fan-out reads thousands of subscriptions: each distinct list is parsed once."""
    return list(_parsed_names(text))


@lru_cache(maxsize=65536)
def _parsed_secrets(text: str) -> tuple[tuple[str, float], ...]:
    return tuple((s["secret"], s["until"]) for s in json.loads(text))


def _secrets(text: str) -> list[dict]:
    """A stored JSON list of secrets, each a fresh dict. Every delivery reads its subscriber's:
    each subscriber's list is parsed once a process (while it stays among the last 65,536)."""
    return [{"secret": secret, "until": until} for secret, until in _parsed_secrets(text)]


@lru_cache(maxsize=65536)
def _signing_key(secret: str) -> bytes:
    """A `whsec_` secret's key bytes, decoded and checked once a process."""
    return parse_webhook_secret(secret)
