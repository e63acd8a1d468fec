"""Entry point for `celery -A shared.worker_app`: the worker-side composition root."""

from shared import heartbeat, task_metrics
from shared.celery_app import create_celery
from shared.settings import Settings

app = create_celery(Settings.from_env(), include_tasks=True)
task_metrics.install(app)  # before any task module imports prometheus_client
heartbeat.install(app)
