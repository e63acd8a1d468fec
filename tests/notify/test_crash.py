"""A notify worker process killed mid-batch: every delivery arrives, and none is recorded twice.

The guarantee: each delivery record ends `delivered` exactly once (one claim wins, one
`delivered` entry in the subscriber's log). On the wire it is at least once with a stable
`webhook-id`: a POST is sent again only when the process that sent it died before it
recorded the answer, and receivers deduplicate on `webhook-id`. The test pins both: a
webhook-id that arrives twice must be one the killed process had sent while its record
was still `delivering`; everything recorded before the kill arrives exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from shared import tasknames
from shared.celery_app import create_celery
from shared.deliveries import DeliveryStore, delivery_id, webhook_id
from shared.runtime import Runtime
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore
from tests.cli.test_commands import children_of
from tests.conftest import start_process, stop_process, temp_dir, wait_for
from tests.notify.helpers import article_event, log

CRASH_DB = 9  # a database of its own: only this test's worker and scheduler see its deliveries
SUBSCRIBERS = 200


class Receiver(ThreadingHTTPServer):
    """Keep-alive receiver that numbers its connections (a port of a killed process can be taken
    again by a new one), notes each request's connection and answers after `delay`."""

    daemon_threads = True
    request_queue_size = 512  # as a real server's backlog: 64 connections a process must not overflow it

    def __init__(self, delay: float) -> None:
        self.delay, self.requests, self.lock = delay, [], threading.Lock()
        self.connections: list[tuple[int, int]] = []  # (client port, connection number), as accepted
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                with receiver.lock:
                    self.number = len(receiver.connections)
                    receiver.connections.append((self.client_address[1], self.number))
                super().setup()

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((self.number, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request, client_address):
        pass  # the killed worker's connections end mid-request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


def tcp_ports(pid: int) -> set[int]:
    """Local ports of the TCP sockets process `pid` holds, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def crash_env(stack_env, redis_server):
    import redis as redis_lib

    url = f"redis://127.0.0.1:{redis_server.port}/{CRASH_DB}"
    redis_lib.Redis.from_url(url).flushdb()
    return {**stack_env, "PRESSROOM_REDIS_URL": url, "PRESSROOM_STATE_DIR": temp_dir("pr-crash-")}


def test_a_worker_killed_mid_batch_loses_nothing_and_records_nothing_twice(crash_env):
    settings = Settings.from_env({**os.environ, **crash_env})
    crt = Runtime(settings)
    receiver = Receiver(delay=0.3)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    store = SubscriptionStore(crt.redis)
    secrets = {}
    for _ in range(SUBSCRIBERS):
        sub, secret = store.create("webhook", receiver.url, ["Defence"], [])
        secrets[sub.id] = secret
    event = article_event()
    dids = {delivery_id(event["id"], 1, event["type"], sid): sid for sid in secrets}
    by_webhook_id = {webhook_id(did): did for did in dids}

    worker = start_process(["worker", "notify", "--concurrency", "1"], crash_env, "notify-crash-worker")
    scheduler = start_process(["scheduler"], crash_env, "notify-crash-scheduler")
    try:
        wait_for(lambda: children_of(worker.pid, direct=True), timeout=60, message="the worker's pool process")
        create_celery(settings).send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})
        wait_for(lambda: len(receiver.requests) >= 30, timeout=90, message="the batch to be under way")

        (child,) = children_of(worker.pid, direct=True)
        os.kill(child, signal.SIGSTOP)  # frozen: it can open no new connection while we look
        killed_ports = tcp_ports(child)
        time.sleep(0.5)  # the receiver accepts what the child connected before it stopped
        with receiver.lock:  # nothing else sends yet: the connections from those ports are the child's
            killed = {number for port, number in receiver.connections if port in killed_ports}
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
                 .rsplit(")", 1)[1].split()[0], timeout=10, message="the killed process to die")
        deliveries = DeliveryStore(crt.redis)
        at_kill = {did: deliveries.get(did) for did in dids}
        in_flight = {did for did, rec in at_kill.items() if rec and rec["state"] == "delivering"}
        done_before = {did for did, rec in at_kill.items() if rec and rec["state"] == "delivered"}
        not_started = {did for did, rec in at_kill.items() if rec is None or rec["state"] == "pending"}
        assert in_flight and not_started, "the kill came mid-batch: some in flight, some not yet sent"

        wait_for(lambda: all((r := deliveries.get(d)) and r["state"] == "delivered" for d in dids),
                 timeout=180, message="every delivery, in flight ones after their lease ran out")
        assert worker.poll() is None  # the worker survived and replaced its pool process
    finally:
        stop_process(worker)
        stop_process(scheduler)
        receiver.shutdown()
        receiver.server_close()

    arrivals: dict[str, list[int]] = {}  # delivery -> the connections its requests came on
    for connection, headers, body in receiver.requests:
        did = by_webhook_id[headers["webhook-id"]]
        try:
            payload = Webhook(secrets[dids[did]]).verify(body, headers)
        except Exception:
            assert connection in killed, "only a request cut off by the kill may fail verification"
            continue
        assert payload["data"]["id"] == event["id"]
        arrivals.setdefault(did, []).append(connection)

    assert set(arrivals) == set(dids)  # every subscriber got its notification
    twice = {did for did, connections in arrivals.items() if len(connections) > 1}
    assert twice <= in_flight  # repeated only if sent by the killed process before it could record the answer
    for did in twice:
        assert len(arrivals[did]) == 2 and sum(c in killed for c in arrivals[did]) == 1
    sent_unrecorded = {did for did in in_flight if any(c in killed for c in arrivals[did])}
    assert sent_unrecorded and sent_unrecorded == twice  # the at-least-once case, and only it: sent again
    assert all(len(arrivals[did]) == 1 for did in done_before)
    for did, sid in dids.items():
        delivered = [e for e in log(crt, sid) if e["delivery_id"] == did and e["status"] == "delivered"]
        assert len(delivered) == 1  # recorded exactly once


def test_a_stopped_worker_lets_its_deliveries_in_flight_end_before_it_exits(crash_env):
    """A batch task returns once its deliveries are started; a warm stop (SIGTERM) must not cut
    them off: the pool process waits for their answers and records them before it exits."""
    settings = Settings.from_env({**os.environ, **crash_env})
    crt = Runtime(settings)
    receiver = Receiver(delay=2.0)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    store = SubscriptionStore(crt.redis)
    sids = [store.create("webhook", receiver.url, ["Defence"], [])[0].id for _ in range(10)]
    event = article_event()
    dids = [delivery_id(event["id"], 1, event["type"], sid) for sid in sids]
    deliveries = DeliveryStore(crt.redis)

    worker = start_process(["worker", "notify", "--concurrency", "1"], crash_env, "notify-stop-worker")
    try:
        wait_for(lambda: children_of(worker.pid, direct=True), timeout=60, message="the worker's pool process")
        create_celery(settings).send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": event})
        wait_for(lambda: len(receiver.requests) == len(dids), timeout=60, message="every POST to be under way")
        at_stop = {did: (deliveries.get(did) or {}).get("state") for did in dids}
        assert set(at_stop.values()) == {"delivering"}  # all waiting on the receiver; the task itself is done
        worker.terminate()
        assert worker.wait(30) == 0
    finally:
        stop_process(worker)
        receiver.shutdown()
        receiver.server_close()
    assert {did: deliveries.get(did)["state"] for did in dids} == dict.fromkeys(dids, "delivered")
    assert len(receiver.requests) == len(dids)  # each sent once: none left to be sent again
