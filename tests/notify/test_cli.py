"""`pressroom deliveries`: status, show and retry from the command line, against a real Redis."""

import json
import os
import subprocess
import sys

from shared.deliveries import DeliveryStore
from tests.conftest import ROOT
from tests.notify.helpers import article_event, queue, record, subscribe


def _run(settings, stack_env, *args):
    env = {**os.environ, **stack_env, "PRESSROOM_REDIS_URL": settings.redis_url}
    return subprocess.run([sys.executable, "-m", "pressroom.cli", "deliveries", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_status_show_and_retry(notify_rt, notify_settings, stack_env):
    subscribe(notify_rt, "http://127.0.0.1:9/hook")
    (did,) = queue(notify_rt, article_event())
    status = _run(notify_settings, stack_env, "status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["due_now"] == 1

    store = DeliveryStore(notify_rt.redis)
    store.finish(did, store.claim(did, 30), "failed", error="gave up")
    shown = _run(notify_settings, stack_env, "show", did)
    assert json.loads(shown.stdout)["state"] == "failed"

    retried = _run(notify_settings, stack_env, "retry", did, "dnothing")
    assert retried.returncode == 1
    assert f"{did}: queued" in retried.stdout and "dnothing: not retried (missing)" in retried.stdout
    assert record(notify_rt, did)["state"] == "pending"
    assert any(did.encode() in m for m in notify_rt.redis.lrange("notify", 0, -1))


def test_a_notify_worker_runs_one_process_a_core_each_with_many_deliveries_in_flight(monkeypatch):
    """Deliveries wait on the network in each process's slots (batches.IN_FLIGHT), not in
    processes: `pressroom worker notify` runs PRESSROOM_WORKER_CONCURRENCY processes like
    the other pools; more would only add CPU per delivery."""
    from pressroom import cli
    from shared.settings import Settings

    started = []
    monkeypatch.setattr(cli.os, "execvp", lambda exe, argv: started.append(argv))
    monkeypatch.setattr(cli, "require_redis", lambda settings: None)
    monkeypatch.setattr(cli, "load_settings", lambda: Settings(worker_concurrency=2))
    for args in (["worker", "notify"], ["worker", "render", "notify"], ["worker", "notify", "--concurrency", "3"]):
        cli.main(args)
    assert [argv[argv.index("--concurrency") + 1] for argv in started] == ["2", "2", "3"]
