"""Clients a process needs, built lazily from the settings and never shared across forks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

import redis

from shared.article_state import ArticleState
from shared.forks import current_pid
from shared.s3_put import SignedPut
from shared.settings import Settings
from shared.storage import S3Storage, s3_client, signed_put

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = current_pid()
        self._own = threading.local()

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry_on_timeout=True,
        )

    def own_redis(self) -> redis.Redis:
        """A client on one connection of `redis`'s pool kept for the calling thread alone. A
        thread that calls Redis hundreds of times a second (a notify worker's claims and
        finishes) then skips the pool's checkout on every command: a lock, bookkeeping and a
        poll of the socket, ~30 µs of CPU a command against ~45 for the rest of it."""
        client = getattr(self._own, "client", None)
        if client is None:
            client = self._own.client = redis.Redis(
                connection_pool=self.redis.connection_pool, single_connection_client=True)
        return client

    def own(self, make: Callable[[redis.Redis], T]) -> T:
        """`make(self.own_redis())`, made once for the calling thread and kept: a store of
        scripts (ArticleState, DeliveryStore, ...) on the thread's own connection. Making
        one registers its scripts again, which a request or a batch should not pay for."""
        made = getattr(self._own, "made", None)
        if made is None:
            made = self._own.made = {}
        obj = made.get(make)
        if obj is None:
            obj = made[make] = make(self.own_redis())
        return obj

    @cached_property
    def s3(self):
        return s3_client(self.settings)

    @cached_property
    def s3_put(self) -> SignedPut | None:
        return signed_put(self.s3)

    @cached_property
    def site(self) -> S3Storage:
        return S3Storage(self.s3, self.settings.site_bucket, self.s3_put)

    @cached_property
    def data(self) -> S3Storage:
        return S3Storage(self.s3, self.settings.data_bucket, self.s3_put)

    @cached_property
    def articles(self) -> ArticleState:
        return ArticleState(self.redis)


_runtimes: dict[int, Runtime] = {}


def runtime_for(settings: Settings) -> Runtime:
    """This process's Runtime; a forked child gets fresh connections of its own."""
    key = id(settings)
    rt = _runtimes.get(key)
    if rt is None or rt.pid != current_pid():
        rt = _runtimes[key] = Runtime(settings)
    return rt
