"""Entry point for `celery -A shared.worker_app`: the worker-side composition root."""

from celery import signals

from shared import heartbeat, task_metrics
from shared.celery_app import create_celery
from shared.logs import configure_logging
from shared.settings import Settings

app = create_celery(Settings.from_env(), include_tasks=True)
task_metrics.install(app)  # before any task module imports prometheus_client
heartbeat.install(app)
configure_logging(app.pressroom_settings)  # from import on: Celery warns (as root, say) before its logging setup


@signals.setup_logging.connect(weak=False)
def _configure_logging(loglevel=None, **kwargs) -> None:
    """Pressroom's log format instead of Celery's (a receiver here stops Celery configuring its own)."""
    configure_logging(app.pressroom_settings, loglevel or "INFO")
