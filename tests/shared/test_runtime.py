"""A Runtime: a thread's own Redis client on the shared pool, and the stores kept on it."""

from __future__ import annotations

import dataclasses
import threading

from shared.article_state import ArticleState
from shared.deliveries import DeliveryStore
from shared.runtime import Runtime
from shared.settings import Settings
from tests.conftest import start_redis


def test_a_thread_keeps_its_own_redis_connection_from_the_shared_pool(rt: Runtime):
    mine = rt.own_redis()
    assert rt.own_redis() is mine and mine.connection is not None  # one connection held, not checked out per command
    assert mine.connection_pool is rt.redis.connection_pool  # the same server, timeouts and retries
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(rt.own_redis()))
    worker.start()
    worker.join()
    assert theirs[0] is not mine and theirs[0].connection is not mine.connection
    mine.set("own-redis-test", "1")
    assert theirs[0].get("own-redis-test") == b"1" and mine.delete("own-redis-test") == 1
    before = mine.connection
    for connection in rt.redis.connection_pool._available_connections:
        assert connection is not before  # held, never handed to another caller


def test_a_thread_keeps_one_store_of_each_kind_on_its_own_connection(rt: Runtime):
    articles, deliveries = rt.own(ArticleState), rt.own(DeliveryStore)
    assert rt.own(ArticleState) is articles and rt.own(DeliveryStore) is deliveries
    assert articles.redis is rt.own_redis() and deliveries.redis is rt.own_redis()
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(rt.own(ArticleState)))
    worker.start()
    worker.join()
    assert theirs[0] is not articles and theirs[0].redis.connection is not articles.redis.connection
    other = Runtime(rt.settings)
    assert other.own(ArticleState) is not articles  # a Runtime's stores are its own


def test_a_threads_own_connection_is_made_again_after_a_redis_restart(settings: Settings, tmp_path):
    server = start_redis(directory=str(tmp_path), persist=True)
    try:
        own = Runtime(dataclasses.replace(settings, redis_url=server.url)).own_redis()
        own.set("survives", "1")
        server.stop()
        server = start_redis(directory=str(tmp_path), port=server.port, persist=True)
        assert own.get("survives") == b"1"  # the broken connection is dropped and made again, not raised
    finally:
        server.stop()
