"""Entry point for `celery -A shared.worker_app`: the worker-side composition root."""

from shared.celery_app import create_celery
from shared.settings import Settings

app = create_celery(Settings.from_env(), include_tasks=True)
