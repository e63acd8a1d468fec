"""A 202 is never given for work that can be lost: failures of Redis, S3 and the broker."""

import json
import os

from celery import Celery

from pressroom import processes
from services.ingest.app import create_app
from shared import keys
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.conftest import article_status, make_env, signed, start_redis, unique_article, wait_for


def _post(client, doc):
    body = json.dumps(doc).encode()
    return client.post("/v1/articles", data=body, headers=signed(body))


def test_redis_down_is_503_and_stores_nothing(s3_server, rt):
    server = start_redis()
    settings = Settings.from_env({**os.environ, **make_env(server.url, s3_server.url)})
    ensure_buckets(settings)
    client = create_app(settings).test_client()
    server.stop()
    doc = unique_article()
    answer = _post(client, doc)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "retry" in answer.get_json()["message"]
    listing = rt.s3.list_objects_v2(Bucket=settings.data_bucket)
    assert listing.get("KeyCount", 0) == 0


def test_s3_down_is_503_and_records_nothing(redis_server, rt):
    dead_s3 = f"http://127.0.0.1:{processes.free_port()}"
    settings = Settings.from_env({**os.environ, **make_env(redis_server.url, dead_s3)})
    doc = unique_article()
    answer = _post(create_app(settings).test_client(), doc)
    assert answer.status_code == 503
    assert rt.articles.get(keys.article_id(doc["uri"])) is None


def test_broker_down_keeps_the_article_in_the_outbox_until_the_scheduler_sends_it(settings, rt, api, workers):
    app = create_app(settings)
    dead = Celery("dead", broker=f"redis://127.0.0.1:{processes.free_port()}/0")
    dead.conf.broker_connection_retry = False
    dead.conf.broker_connection_max_retries = 0
    dead.conf.task_publish_retry = False
    dead.conf.broker_transport_options = {"socket_connect_timeout": 0.5}
    app.extensions["pressroom"]["celery"] = dead
    doc = unique_article()
    answer = _post(app.test_client(), doc)
    assert answer.status_code == 202
    aid = answer.get_json()["id"]
    assert rt.redis.zscore(keys.OUTBOX, f"{aid}:1") is not None
    status = wait_for(
        lambda: (s := article_status(api, aid))["status"] == "published" and s,
        timeout=90,
        message="the outbox sweep to publish the article",
    )
    assert status["version"] == 1
    assert rt.redis.zscore(keys.OUTBOX, f"{aid}:1") is None


def test_accepted_work_survives_a_redis_restart_with_aof(s3_server, tmp_path):
    """Production Redis runs with AOF: state and queued tasks written before a crash are there after."""
    server = start_redis(directory=str(tmp_path), persist=True)
    settings = Settings.from_env({**os.environ, **make_env(server.url, s3_server.url)})
    ensure_buckets(settings)
    doc = unique_article()
    aid = _post(create_app(settings).test_client(), doc).get_json()["id"]
    Runtime(settings).redis.execute_command("BGREWRITEAOF")
    wait_for(lambda: not Runtime(settings).redis.info("persistence")["aof_rewrite_in_progress"], timeout=10)
    server.stop()
    server = start_redis(directory=str(tmp_path), port=server.port, persist=True)
    try:
        rt = Runtime(settings)
        assert rt.articles.get(aid)["version"] == "1"
        assert any(aid.encode() in m for m in rt.redis.lrange("render", 0, -1))
    finally:
        server.stop()
