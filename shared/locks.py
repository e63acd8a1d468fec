"""Short leases that their holder keeps renewing: a crashed holder frees the lock in seconds.

A lock held for a whole task time limit would keep a requeued task waiting for minutes
after its first run was killed; a lease of `ttl` seconds, renewed every `ttl / 3` by a
thread of the holding process, expires soon after that process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
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


# KEYS: the lease names; ARGV: token, ttl in ms. Take each that is free or already ours; returns 0/1 each.
_TAKE = """
local taken = {}
for i, name in ipairs(KEYS) do
  if redis.call('SET', name, ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', name) == ARGV[1] then
    redis.call('PEXPIRE', name, ARGV[2])
    taken[i] = 1
  else
    taken[i] = 0
  end
end
return taken
"""

# KEYS: the lease names; ARGV: token, ttl in ms. Renew (or release, ttl 0) those still held with the token.
_RENEW = """
local held = 0
for i, name in ipairs(KEYS) do
  if redis.call('GET', name) == ARGV[1] then
    if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', name, ARGV[2]) else redis.call('DEL', name) end
    held = held + 1
  end
end
return held
"""


@contextlib.contextmanager
def leases(client: redis.Redis, names: list[str], ttl: float = 20, owner: str = "") -> Iterator[set[str]]:
    """Take whichever of `names` are free, in one round trip; yields the set of names taken.

    For batch work (a rebuild renders a hundred articles per task): one script takes them
    all, one thread renews them and one script releases them. A name someone else holds is
    not taken; the caller leaves that item to its holder. `owner` names the work rather than
    the process: the same work run again after its process was killed takes back the leases
    the dead run still holds, instead of waiting for them to expire. The leases are the
    keys `lease` takes (SET NX with a random token), so both exclude each other.
    """
    token = owner or uuid.uuid4().hex
    ms = int(ttl * 1000)
    taken: list[str] = []
    if names:
        flags = client.register_script(_TAKE)(keys=names, args=[token, ms])
        taken = [name for name, flag in zip(names, flags, strict=True) if int(flag)]
    script = client.register_script(_RENEW)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                script(keys=taken, args=[token, ms])
            except redis.RedisError:
                return

    renewer = threading.Thread(target=renew, name="leases", daemon=True)
    if taken:
        renewer.start()
    try:
        yield set(taken)
    finally:
        stop.set()
        if taken:
            renewer.join()
            with contextlib.suppress(redis.RedisError):
                script(keys=taken, args=[token, 0])
