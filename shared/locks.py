"""Short leases that their holder keeps renewing: a crashed holder frees the lock in seconds.

A lock held for a whole task time limit would keep a requeued task waiting for minutes
after its first run was killed; a lease of `ttl` seconds, renewed every `ttl / 3` by a
thread of the holding process, expires soon after that process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import redis
from redis.exceptions import LockError


class LeaseBusy(Exception):
    """Someone else holds the lease; try again later."""


@contextlib.contextmanager
def lease(client: redis.Redis, name: str, ttl: float = 20, wait: float = 10) -> Iterator[None]:
    lock = client.lock(name, timeout=ttl, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise LeaseBusy(name)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lock.reacquire()
            except (LockError, redis.RedisError):
                return

    renewer = threading.Thread(target=renew, name=f"lease:{name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(LockError, redis.RedisError):
            lock.release()
