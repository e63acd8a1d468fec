"""per_process: one instance per process, and a forked child gets its own; a thread's own Redis client."""

from __future__ import annotations

import dataclasses
import os
import threading

from shared.runtime import Runtime, per_process
from shared.settings import Settings
from tests.conftest import start_redis


def test_one_instance_per_process_and_a_fresh_one_after_a_fork():
    made = []

    @per_process
    def thing() -> object:
        made.append(object())
        return made[-1]

    assert thing.existing() is None and not made  # asking does not make one
    barrier = threading.Barrier(8)
    seen = []

    def race():
        barrier.wait()
        seen.append(thing())

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(s is made[0] for s in seen)  # threads racing to the first call share one

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child has none until its first call makes a new one; its second returns that
        ok = thing.existing() is None and thing() is not made[0] and thing() is thing() is thing.existing()
        ok = ok and len(made) == 2
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert thing() is made[0] is thing.existing() and len(made) == 1  # the parent's is untouched


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
