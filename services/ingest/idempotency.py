"""Replay protection: the same webhook-id (or Idempotency-Key) gets the first answer again.

A key is claimed with SET NX before any work; the final answer replaces the claim and
lives `idempotency_ttl` seconds (at least 24 h). A concurrent duplicate that finds the
claim still pending gets 409 and retries; a failed request (5xx) releases the claim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from shared import keys

PENDING = b"pending"
PENDING_TTL = 60


@dataclass
class Replay:
    status: int
    body: dict


class Idempotency:
    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.redis = client
        self.ttl = ttl

    def claim(self, source: str, key: str) -> Replay | None | bool:
        """True if claimed; a Replay if answered before; False if another request holds it."""
        name = keys.idempotency(source, key)
        if self.redis.set(name, PENDING, nx=True, ex=PENDING_TTL):
            return True
        stored = self.redis.get(name)
        if stored is None:
            return self.claim(source, key)
        if stored == PENDING:
            return False
        data = json.loads(stored)
        return Replay(data["status"], data["body"])

    def remember(self, source: str, key: str, status: int, body: dict) -> None:
        name = keys.idempotency(source, key)
        self.redis.set(name, json.dumps({"status": status, "body": body}), ex=self.ttl)

    def release(self, source: str, key: str) -> None:
        self.redis.delete(keys.idempotency(source, key))
