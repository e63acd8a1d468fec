"""Replay protection: the same webhook-id (or Idempotency-Key) gets the first answer again.

A key is claimed with SET NX before any work; the final answer replaces the claim and
lives `idempotency_ttl` seconds (at least 24 h). A concurrent duplicate that finds the
claim still pending gets 409 and retries; a failed request (5xx) releases the claim.

The claim is one Lua call that also reads the article's stored version, so the request
learns whether its version is stale in the same round trip, before it writes anything
to S3. The answer of an accepted article is written by the accept script itself, in
the same atomic step as the state (`ArticleState.accept`), so a crash after recording
the work can only ever replay that answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from shared import keys

PENDING = b"pending"
PENDING_TTL = 60

# KEYS: idempotency key or '' (no key), article state or '' (no article)
# ARGV: pending ttl
_CLAIM = """
if KEYS[1] ~= '' and not redis.call('SET', KEYS[1], 'pending', 'NX', 'EX', ARGV[1]) then
  local stored = redis.call('GET', KEYS[1])
  if stored == 'pending' then return {'busy'} end
  return {'replay', stored}
end
if KEYS[2] == '' then return {'claimed'} end
local state = redis.call('HMGET', KEYS[2], 'version', 'status')
return {'claimed', state[1] or '', state[2] or ''}
"""


@dataclass
class Replay:
    status: int
    body: dict


@dataclass(frozen=True)
class Claim:
    """The key is ours; `version`/`status` are the article's stored ones (None when it has none)."""

    version: int | None = None
    status: str = ""


class Idempotency:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)

    def claim(self, name: str | None, aid: str | None = None) -> Claim | Replay | bool:
        """Claim the key `name` (None: no key) and read article `aid`'s stored version.

        Returns a Claim, a Replay if the key was answered before, or False while another
        request holds it.
        """
        result = self._claim(keys=[name or "", keys.article_state(aid) if aid else ""], args=[PENDING_TTL])
        outcome = result[0].decode()
        if outcome == "busy":
            return False
        if outcome == "replay":
            data = json.loads(result[1])
            return Replay(data["status"], data["body"])
        if len(result) == 1 or not result[1]:
            return Claim()
        return Claim(int(result[1]), result[2].decode())

    def remember(self, name: str, status: int, body: dict, ttl: int) -> None:
        self.redis.set(name, answer(status, body), ex=ttl)

    def release(self, name: str) -> None:
        self.redis.delete(name)


def answer(status: int, body: dict) -> str:
    """The stored form of an answer, as `claim` reads it back."""
    return json.dumps({"status": status, "body": body}, separators=(",", ":"))
