"""Prometheus metrics: request counters from every gunicorn worker, pipeline gauges live from Redis.

Under gunicorn, counters are shared through PROMETHEUS_MULTIPROC_DIR (set by
`pressroom ingest`); queue depths and article counts are read from Redis at scrape time
so every API process reports the same truth.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from shared import keys, tasknames

REQUESTS = Counter("pressroom_http_requests_total", "HTTP requests", ["method", "endpoint", "code"])
LATENCY = Histogram(
    "pressroom_http_request_seconds",
    "HTTP request latency",
    ["endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ARTICLES = Counter("pressroom_articles_total", "Article webhook outcomes", ["outcome"])


class PipelineCollector:
    """Queue depths, outbox and embargo sizes, read from Redis on each scrape."""

    def __init__(self, redis_client) -> None:
        self.redis = redis_client

    def collect(self):
        queues = GaugeMetricFamily("pressroom_queue_depth", "Tasks waiting per pool queue", labels=["queue"])
        backlog = GaugeMetricFamily("pressroom_backlog", "Accepted work waiting outside the broker", labels=["kind"])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for pool in tasknames.POOLS:
                pipe.llen(pool)
            pipe.zcard(keys.OUTBOX)
            pipe.zcard(keys.EMBARGOES)
            values = pipe.execute()
        except Exception:
            return
        for pool, depth in zip(tasknames.POOLS, values, strict=False):
            queues.add_metric([pool], depth)
        backlog.add_metric(["outbox"], values[-2])
        backlog.add_metric(["embargoed"], values[-1])
        yield queues
        yield backlog


def init_app(app: Flask) -> None:
    from shared.runtime import runtime_for

    settings = app.extensions["pressroom"]["settings"]

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def record(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if hasattr(g, "started"):
            LATENCY.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    @app.get("/metrics")
    def metrics():
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            for collector in (REQUESTS, LATENCY, ARTICLES):
                registry.register(collector)
        registry.register(PipelineCollector(runtime_for(settings).redis))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
