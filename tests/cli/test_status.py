"""`pressroom status`, worker heartbeats and worker metrics, against a real Redis and real workers.

The module has a Redis of its own so its counts are not disturbed by the other tests'
articles and workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis
import requests
from celery import Celery

from pressroom import processes
from shared import heartbeat, keys, tasknames
from shared.article_state import STATUSES, ArticleState
from shared.deliveries import DUE
from shared.settings import Settings
from tests.conftest import ROOT, make_env, start_process, start_redis, stop_process, wait_for


@pytest.fixture(scope="module")
def own_redis():
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def env(own_redis, s3_server) -> dict[str, str]:
    return make_env(own_redis.url, s3_server.url)


@pytest.fixture(scope="module")
def client(own_redis) -> redis.Redis:
    return redis.Redis.from_url(own_redis.url)


@pytest.fixture(scope="module")
def metrics_worker(env):
    """A notify worker (prefork, 2 processes) serving its metrics on a free port."""
    port = processes.free_port()
    proc = start_process(["worker", "notify", "--concurrency", "2", "--metrics-port", str(port)], env, "status-worker")
    processes.wait_for_port(port, 60, proc)
    yield proc, port
    stop_process(proc)


def members(client, status_name: str) -> set[str]:
    return {m.decode() for m in client.zrange(keys.articles_by_status(status_name), 0, -1)}


def where(client, aid: str) -> list[str]:
    return [s for s in STATUSES if aid in members(client, s)]


def test_every_status_change_moves_the_article_between_status_sets(client):
    state = ArticleState(client)
    aid = keys.article_id(f"urn:test:status:{time.time_ns()}")
    state.accept(aid, "urn:x", 1, "doc1")
    assert where(client, aid) == ["queued"]
    assert state.finish(aid, 1, "published", "published", url="https://x/1")
    assert where(client, aid) == ["published"]
    state.accept(aid, "urn:x", 3, "doc3")
    assert where(client, aid) == ["queued"]
    assert not state.finish(aid, 2, "failed", "failed", reason="old version")  # stale: status unchanged
    assert where(client, aid) == ["queued"]
    state.finish(aid, 3, "failed", "failed", reason="S3 down")
    assert where(client, aid) == ["failed"]
    state.request_withdraw(aid)
    assert where(client, aid) == ["queued"]
    state.finish(aid, 3, "withdrawn", "withdrawn")
    assert where(client, aid) == ["withdrawn"]

    later = keys.article_id(f"urn:test:embargo:{time.time_ns()}")
    state.accept(later, "urn:y", 1, "doc", embargo=time.time() + 3600)
    assert where(client, later) == ["scheduled"]
    assert state.release_embargo(later, time.time()) == 1
    assert where(client, later) == ["queued"]


def run_status(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pressroom.cli", "status", *args], env={**os.environ, **env}, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )


def test_status_reports_queues_articles_failures_backlog_and_workers(env, client, metrics_worker):
    wait_for(lambda: heartbeat.alive(client), 30, message="the worker's first heartbeat")
    state = ArticleState(client)
    base = {s: client.zcard(keys.articles_by_status(s)) for s in STATUSES}
    broken = keys.article_id(f"urn:test:broken:{time.time_ns()}")
    state.accept(broken, "urn:test:broken", 7, "doc")
    state.finish(broken, 7, "failed", "failed", reason="S3 unreachable: gave up after retries")
    embargoed = keys.article_id(f"urn:test:embargoed:{time.time_ns()}")
    state.accept(embargoed, "urn:test:embargoed", 1, "doc", embargo=time.time() + 7200)
    client.zadd(keys.OUTBOX, {"aold:1": time.time() - 120})
    client.zadd(DUE, {"dnow": time.time() - 1, "dlater": time.time() + 300})
    client.rpush(keys.broker_queue("render"), b"{}", b"{}")
    client.hset(keys.BROKER_UNACKED, "tag1", json.dumps([{}, "", "render"]))

    done = run_status(env, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["articles"]["failed"] == base["failed"] + 1
    assert report["articles"]["scheduled"] == base["scheduled"] + 1
    assert report["failed"][0]["id"] == broken
    assert report["failed"][0]["reason"] == "S3 unreachable: gave up after retries"
    assert report["failed"][0]["version"] == 7 and report["failed"][0]["failed_at"].endswith("Z")
    render = next(q for q in report["queues"] if q["queue"] == "render")
    assert render == {"queue": "render", "waiting": 2, "unacked": 1}
    assert report["workers"]["by_pool"]["notify"] == 1 and report["workers"]["by_pool"]["render"] == 0
    worker = report["workers"]["alive"][0]
    assert worker["pools"] == ["notify"] and worker["concurrency"] == 2 and worker["metrics_port"]
    assert report["outbox"]["oldest_age_seconds"] >= 119
    assert report["deliveries"]["due_now"] >= 1 and report["deliveries"]["retrying"] >= 1
    assert report["deliveries"]["next_due_at"].endswith("Z")
    assert report["embargoes"]["scheduled"] >= 1 and report["embargoes"]["next_release_at"].endswith("Z")

    table = run_status(env)
    assert table.returncode == 0, table.stderr
    assert "S3 unreachable: gave up after retries" in table.stdout
    assert broken in table.stdout and "deliveries retrying" in table.stdout
    assert any(line.split()[:3] == ["render", "2", "1"] for line in table.stdout.splitlines())
    client.delete(keys.broker_queue("render"), keys.BROKER_UNACKED)
    client.zrem(keys.OUTBOX, "aold:1")
    client.zrem(DUE, "dnow", "dlater")


def test_reindex_counts_articles_stored_before_the_status_sets(env, client):
    old = keys.article_id(f"urn:test:old:{time.time_ns()}")
    client.hset(keys.article_state(old), mapping={"status": "published", "version": "2", "updated_at": "1700000000"})
    client.rpush(keys.article_timeline(old), b"{}")  # a timeline key must not be taken for an article
    assert where(client, old) == []
    done = run_status(env, "--json", "--reindex")
    assert done.returncode == 0, done.stderr
    assert where(client, old) == ["published"]
    assert client.zscore(keys.articles_by_status("published"), old) == 1700000000
    assert not any(m.endswith(":timeline") for s in STATUSES for m in members(client, s))


def test_status_without_redis_is_one_clear_error(env):
    done = run_status({**env, "PRESSROOM_REDIS_URL": f"redis://127.0.0.1:{processes.free_port()}/0"})
    assert done.returncode == 2
    assert done.stderr.startswith("pressroom: error: cannot reach Redis")


def scrape(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            got = head[len(name):].strip("{}")
            if ",".join(sorted(got.split(","))) == want:
                return float(value)
    return 0.0


def test_worker_exports_task_metrics_from_its_pool_processes(env, metrics_worker):
    _proc, port = metrics_worker
    app = Celery("pressroom-test", broker=env["PRESSROOM_REDIS_URL"])
    before = scrape(port)
    for n in range(3):
        app.send_task(tasknames.NOTIFY_DELIVER, args=[f"dmissing{n}"], queue="notify")
    app.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": None}, queue="notify")  # raises: a failure

    def counted():
        text = scrape(port)
        done = sample(text, "pressroom_worker_tasks_total", task=tasknames.NOTIFY_DELIVER, outcome="success")
        failed = sample(text, "pressroom_worker_tasks_total", task=tasknames.NOTIFY_ARTICLE_EVENT, outcome="failure")
        return text if done >= 3 and failed >= 1 else None

    text = wait_for(counted, 60, message="the tasks in the worker's metrics")
    assert sample(text, "pressroom_worker_deliveries_total", outcome="missing") - sample(
        before, "pressroom_worker_deliveries_total", outcome="missing") == 3
    assert sample(text, "pressroom_worker_task_seconds_count", task=tasknames.NOTIFY_DELIVER) >= 3
    assert sample(text, "pressroom_worker_task_failures_total", task=tasknames.NOTIFY_ARTICLE_EVENT,
                  exception="ValidationError") == 1  # the event schema refuses a null event


def test_a_stopped_worker_leaves_the_worker_list(env, client):
    proc = start_process(["worker", "scheduler", "--concurrency", "1"], env, "status-worker-2")
    try:
        name = wait_for(lambda: next((w["name"] for w in heartbeat.alive(client) if w["pools"] == ["scheduler"]),
                                     None), 60, message="the scheduler worker's heartbeat")
    finally:
        stop_process(proc)
    assert name not in [w["name"] for w in heartbeat.alive(client)]
    assert client.exists(keys.worker_heartbeat(name)) == 0


def test_metrics_port_setting_is_validated():
    assert Settings.from_env({"PRESSROOM_WORKER_METRICS_PORT": "9108"}).worker_metrics_port == 9108
    assert Settings.from_env({}).worker_metrics_port == 0
