"""Health, readiness, metrics and the generated OpenAPI document."""

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import signed, unique_article


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_redis_and_both_buckets(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json()["checks"] == {"redis": "ok", "site_bucket": "ok", "data_bucket": "ok"}


def test_readyz_is_503_when_a_bucket_is_missing(settings):
    from dataclasses import replace

    from services.ingest.app import create_app

    client = create_app(replace(settings, site_bucket="no-such-bucket-here")).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["site_bucket"].startswith("unavailable")


def test_metrics_count_outcomes_and_report_queues(client):
    body = json.dumps(unique_article()).encode()
    client.post("/v1/articles", data=body, headers=signed(body))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'pressroom_articles_total{outcome="accepted"}' in text
    assert 'pressroom_queue_depth{queue="render"}' in text
    assert 'pressroom_backlog{kind="outbox"}' in text
    assert 'pressroom_http_requests_total{code="202",endpoint="/v1/articles",method="POST"}' in text


def test_openapi_documents_the_contract(client):
    spec = client.get("/openapi.json").get_json()
    post = spec["paths"]["/v1/articles"]["post"]
    assert set(post["responses"]) >= {"202", "400", "401", "413", "415", "422"}
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NinjsArticle"}
    article = spec["components"]["schemas"]["NinjsArticle"]["properties"]
    assert {"uri", "guid", "version", "headline", "body_html", "associations"} <= set(article)
    assert "get" in spec["paths"]["/v1/articles/{article_id}"]
    assert "delete" in spec["paths"]["/v1/articles/{article_id}"]


def test_json_nested_too_deeply_is_400_on_every_endpoint(client):
    from tests.conftest import auth_headers

    body = b"[" * 100_000 + b"]" * 100_000
    json_auth = {**auth_headers(), "Content-Type": "application/json"}
    answers = [
        client.post("/v1/articles", data=body, headers=signed(body)),
        client.post("/v1/events/pageview", data=body),
        client.put("/v1/collections/editors-choice", data=body, headers=json_auth),
        client.post("/v1/subscriptions", data=body, headers=json_auth),
    ]
    assert [a.status_code for a in answers] == [400] * 4
    assert {a.get_json()["message"] for a in answers} == {"The JSON body is nested too deeply."}


def test_the_workers_heartbeat_files_are_in_memory(api):
    """gunicorn's workers touch a heartbeat file every loop turn: on a disk-backed /tmp that can stall them."""
    bind = f"127.0.0.1:{urlsplit(api).port}"
    heartbeats = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or bind not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # a process that ended while we looked
            continue
        heartbeats += [link for link in links if "wgunicorn-" in link]
    assert heartbeats and all(link.startswith("/dev/shm/") for link in heartbeats), heartbeats
