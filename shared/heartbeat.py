"""Worker heartbeats in Redis: how `pressroom status` knows which workers are alive.

Each worker's main process refreshes one expiring hash (keys.worker_heartbeat) and its
score in keys.WORKERS every few seconds from a daemon thread. Chosen over Celery's
`inspect ping` because Pressroom runs workers with `--without-gossip --without-mingle`
and the status command should answer at once: a ping is a broadcast that waits out its
timeout for replies that may never come (busy or remote workers, a partitioned broker),
while a heartbeat is one sorted-set read, survives the command's own slow network, and
says when a worker was last seen. A worker killed with SIGKILL simply stops beating; its
hash expires after TTL seconds and its set entry is ignored (then pruned).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
from celery import Celery, signals

from shared import keys

log = logging.getLogger("pressroom.worker")

INTERVAL = 5.0
TTL = 20  # a worker is alive while its last beat is younger than this
PRUNE_AFTER = 24 * 3600


def beat(client: redis.Redis, name: str, info: dict, now: float | None = None) -> None:
    """Record one heartbeat of worker `name` (its description in `info`)."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys.worker_heartbeat(name), mapping={**info, "seen": repr(now)})
    pipe.expire(keys.worker_heartbeat(name), TTL)
    pipe.zadd(keys.WORKERS, {name: now})
    pipe.zremrangebyscore(keys.WORKERS, "-inf", now - PRUNE_AFTER)
    pipe.execute()


def forget(client: redis.Redis, name: str) -> None:
    """A worker that stops cleanly leaves at once instead of after TTL."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.worker_heartbeat(name))
    pipe.zrem(keys.WORKERS, name)
    pipe.execute()


def alive(client: redis.Redis, now: float | None = None) -> list[dict]:
    """Workers seen within TTL seconds, each with name, pools, pid, host, concurrency, started, seen."""
    now = time.time() if now is None else now
    names = [n.decode() for n in client.zrangebyscore(keys.WORKERS, now - TTL, "+inf")]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.worker_heartbeat(name))
    out = []
    for name, raw in zip(names, pipe.execute(), strict=True):
        if raw:
            info = {k.decode(): v.decode() for k, v in raw.items()}
            out.append({**info, "name": name, "pools": [p for p in info.get("pools", "").split(",") if p]})
    return out


class Heartbeat:
    def __init__(self, client: redis.Redis, name: str, info: dict) -> None:
        self.client, self.name, self.info = client, name, info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pressroom-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            forget(self.client, self.name)
        except redis.RedisError as exc:
            log.warning("could not remove the heartbeat of %s: %s", self.name, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                beat(self.client, self.name, self.info)
            except redis.RedisError as exc:  # Redis restarting: the next beat will do
                log.debug("heartbeat failed: %s", exc)
            self._stop.wait(INTERVAL)


def install(app: Celery) -> None:
    """Beat from the worker's main process once it consumes, stop when it shuts down."""
    state: dict[str, Heartbeat] = {}

    @signals.worker_ready.connect(weak=False)
    def _start(sender=None, **kwargs) -> None:
        settings = app.pressroom_settings
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        queues = sorted(getattr(app.amqp.queues, "consume_from", None) or {})
        pool = getattr(getattr(sender, "controller", None), "concurrency", None)
        info = {
            "pools": ",".join(queues), "pid": str(os.getpid()), "host": socket.gethostname(),
            "concurrency": str(pool or ""), "started": repr(time.time()),
            "metrics_port": str(settings.worker_metrics_port or ""),
        }
        state["beat"] = Heartbeat(client, getattr(sender, "hostname", None) or f"worker-{os.getpid()}", info)
        state["beat"].start()

    @signals.worker_shutdown.connect(weak=False)
    def _stop(**kwargs) -> None:
        if "beat" in state:
            state.pop("beat").stop()
