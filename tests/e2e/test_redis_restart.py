"""Redis restarts under a running pipeline: the API says 503 while it is down, and work
accepted before and after it comes back is published (AOF, as in docker-compose)."""

import json
import os
import time

import requests

from pressroom import processes
from shared import tasknames
from shared.celery_app import create_celery
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import (
    auth_headers,
    make_env,
    signed,
    start_process,
    start_redis,
    stop_process,
    unique_article,
    wait_for,
)


def post(api, doc):
    body = json.dumps(doc).encode()
    return requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=30)


def published(api, aid):
    def check():
        try:
            return requests.get(f"{api}/v1/articles/{aid}", headers=auth_headers(), timeout=5).json()["status"]
        except (requests.RequestException, ValueError, KeyError):
            return None

    return wait_for(lambda: check() == "published", timeout=90, message=f"{aid} published")


def test_the_pipeline_survives_a_redis_restart(s3_server, tmp_path):
    server = start_redis(directory=str(tmp_path), persist=True)
    port = processes.free_port()
    env = make_env(server.url, s3_server.url, PRESSROOM_PORT=str(port))
    ensure_buckets(Settings.from_env({**os.environ, **env}))
    procs = [start_process(["worker", "render", "site", "notify"], env, "restart-worker"),
             start_process(["scheduler"], env, "restart-scheduler"),
             start_process(["ingest"], env, "restart-ingest")]
    api = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_port(port, 60, procs[2])
        before = post(api, unique_article())
        assert before.status_code == 202
        published(api, before.json()["id"])

        # a task held unacknowledged by the worker (an ETA) when Redis goes away must not kill it
        create_celery(Settings.from_env({**os.environ, **env})).send_task(tasknames.SITE_BUILD, countdown=600)
        time.sleep(1)
        server.stop()
        down = post(api, unique_article())
        assert down.status_code == 503 and "retry" in down.json()["message"]

        server = start_redis(directory=str(tmp_path), port=server.port, persist=True)
        after = wait_for(lambda: (r := post(api, unique_article())).status_code == 202 and r, timeout=30,
                         message="the API to accept again")
        published(api, after.json()["id"])
        assert requests.get(f"{api}/v1/articles/{before.json()['id']}", headers=auth_headers(),
                            timeout=5).json()["status"] == "published"
        assert all(proc.poll() is None for proc in procs)  # nothing died on the way
    finally:
        for proc in procs:
            stop_process(proc)
        server.stop()
