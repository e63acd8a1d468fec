"""Prometheus metrics of every Celery task, exported by each worker on its own port.

Hooked once, here, on Celery's task signals, so every task (render, notify, scheduler)
is counted without a line in the task modules. Celery's prefork pool runs tasks in child
processes, which cannot share in-memory counters with the parent; prometheus_client's
multiprocess mode keeps each process's values in files under PROMETHEUS_MULTIPROC_DIR
and the worker's main process serves their sum at `/metrics` on
PRESSROOM_WORKER_METRICS_PORT (0 = off). Each worker gets a fresh directory of its own
(an inherited PROMETHEUS_MULTIPROC_DIR, e.g. the API's, is replaced), because files are
keyed only by pid: two workers sharing one directory would each report both. Pulling
from each worker was chosen over pushing into the API's directory because the API and
workers usually run on different machines.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time

from celery import Celery, signals

from shared.settings import Settings

log = logging.getLogger("pressroom.worker")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DELIVERY_TASK_PREFIX = "notify.deliver"  # notify.deliver returns an outcome, notify.deliver_batch {outcome: n}
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry", "IGNORED": "ignored", "REJECTED": "rejected"}


def prepare_environment(settings: Settings) -> str | None:
    """Give this worker its own multiprocess directory (or none when metrics are off).

    Must run before prometheus_client is first imported in the process: the library
    picks its value storage (in memory or files) at import time.
    """
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before the worker's metrics were set up; "
                    "values from pool processes may be missing")
    if not settings.worker_metrics_port:
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    path = tempfile.mkdtemp(prefix="pressroom-worker-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


class TaskMetrics:
    """The metric families; created after prepare_environment so they write to files."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.tasks = Counter("pressroom_worker_tasks_total", "Tasks run, by name and outcome", ["task", "outcome"])
        self.seconds = Histogram("pressroom_worker_task_seconds", "Task run time", ["task"], buckets=BUCKETS)
        self.failures = Counter(
            "pressroom_worker_task_failures_total", "Tasks that raised, by exception", ["task", "exception"]
        )
        self.retries = Counter("pressroom_worker_task_retries_total", "Task retries scheduled", ["task"])
        self.deliveries = Counter("pressroom_worker_deliveries_total", "Delivery attempts by outcome", ["outcome"])
        self._started: dict[str, float] = {}

    def task_started(self, task_id: str) -> None:
        self._started[task_id] = time.perf_counter()

    def task_finished(self, name: str, task_id: str, state: str | None, retval) -> None:
        started = self._started.pop(task_id, None)
        if started is not None:
            self.seconds.labels(name).observe(time.perf_counter() - started)
        self.tasks.labels(name, OUTCOMES.get(state or "", (state or "unknown").lower())).inc()
        if name.startswith(DELIVERY_TASK_PREFIX) and state == "SUCCESS":
            if isinstance(retval, str):
                self.deliveries.labels(retval).inc()
            elif isinstance(retval, dict):
                for outcome, count in retval.items():
                    if isinstance(count, int) and count > 0:
                        self.deliveries.labels(str(outcome)).inc(count)


def _serve(settings: Settings, path: str):
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    try:
        server, _thread = start_http_server(settings.worker_metrics_port, settings.worker_metrics_host, registry)
    except OSError as exc:  # a worker that cannot export metrics still publishes
        log.error("worker metrics not served on %s:%s: %s", settings.worker_metrics_host,
                  settings.worker_metrics_port, exc)
        return None
    log.info("worker metrics on http://%s:%s/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
    return server


def install(app: Celery) -> TaskMetrics | None:
    """Count every task of this worker and serve the counts; a no-op when metrics are off."""
    settings: Settings = app.pressroom_settings
    path = prepare_environment(settings)
    if path is None:
        return None
    metrics = TaskMetrics()
    served: dict = {}

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id=None, **kwargs) -> None:
        metrics.task_started(task_id)

    @signals.task_postrun.connect(weak=False)
    def _postrun(sender=None, task_id=None, retval=None, state=None, **kwargs) -> None:
        metrics.task_finished(getattr(sender, "name", "unknown"), task_id, state, retval)

    @signals.task_failure.connect(weak=False)
    def _failure(sender=None, exception=None, **kwargs) -> None:
        metrics.failures.labels(getattr(sender, "name", "unknown"), type(exception).__name__).inc()

    @signals.task_retry.connect(weak=False)
    def _retry(sender=None, **kwargs) -> None:
        metrics.retries.labels(getattr(sender, "name", "unknown")).inc()

    @signals.worker_ready.connect(weak=False)
    def _start(**kwargs) -> None:
        served["server"] = _serve(settings, path)

    @signals.worker_shutdown.connect(weak=False)
    def _stop(**kwargs) -> None:
        server = served.pop("server", None)
        if server is not None:
            server.shutdown()
        shutil.rmtree(path, ignore_errors=True)

    return metrics
