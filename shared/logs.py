"""Log output of every Pressroom process: one line per record, as text or JSON.

The API, the workers, the scheduler and the site server call `configure_logging` once
at start, so operators get the same shape everywhere: `PRESSROOM_LOG_FORMAT=json` for a
log pipeline in production, readable text by default. Periodic scheduler tasks run every
second; Celery's own "sending / received / succeeded" lines for them are dropped, and
the tasks log for themselves when they did something.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from shared import tasknames
from shared.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PERIODIC_TASKS = frozenset(
    {
        tasknames.SCHEDULER_SWEEP_OUTBOX,
        tasknames.SCHEDULER_RELEASE_EMBARGOES,
        tasknames.SCHEDULER_SITE_TICK,
        tasknames.SCHEDULER_NOTIFY_RETRIES,
        tasknames.SITE_REFRESH,  # what two of them send to the pools, as often
        tasknames.NOTIFY_DISPATCH,
    }
)
CELERY_ROUTINE_LOGGERS = ("celery.beat", "celery.app.trace", "celery.worker.strategy", "celery.worker.request")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, and the task when in one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        task = _current_task()
        if task is not None:
            entry["task"], entry["task_id"] = task
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _current_task() -> tuple[str, str] | None:
    celery_state = sys.modules.get("celery._state")
    if celery_state is None:
        return None
    task = celery_state.get_current_task()
    if task is None or task.request.id is None:
        return None
    return task.name, task.request.id


class PeriodicTickFilter(logging.Filter):
    """Drops Celery's routine INFO lines about the periodic scheduler tasks (several a second)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else ()
        return not any(isinstance(value, str) and value in PERIODIC_TASKS for value in values)


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings, level: int | str = logging.INFO, stream=None) -> logging.Handler:
    """Send every record at `level` and above to stderr (or `stream`) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    tick_filter = PeriodicTickFilter()
    for name in CELERY_ROUTINE_LOGGERS:
        routine = logging.getLogger(name)
        if not any(isinstance(f, PeriodicTickFilter) for f in routine.filters):
            routine.addFilter(tick_filter)
    logging.captureWarnings(True)
    return handler
