"""Log lines of every process: text or JSON, and no routine lines about the periodic scheduler tasks."""

import io
import json
import logging

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from shared import logs, tasknames
from shared.settings import Settings


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    for name in logs.CELERY_ROUTINE_LOGGERS:
        logging.getLogger(name).filters.clear()


def configured(log_format: str, level: int = logging.INFO) -> io.StringIO:
    stream = io.StringIO()
    logs.configure_logging(Settings.from_env({"PRESSROOM_LOG_FORMAT": log_format}), level, stream=stream)
    return stream


def test_json_lines_carry_level_logger_message_and_the_traceback(restore_logging):
    stream = configured("json")
    log = logging.getLogger("pressroom.render")
    log.info("published %s v%s at %s", "a1", 3, "http://site/x/")
    try:
        raise ValueError("unreadable document")
    except ValueError:
        log.exception("render of %s failed", "a2")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "pressroom.render"
    assert first["message"] == "published a1 v3 at http://site/x/"
    assert first["time"].endswith("+00:00") and isinstance(first["process"], int)
    assert "task" not in first and "exception" not in first
    assert second["level"] == "ERROR" and second["message"] == "render of a2 failed"
    assert "ValueError: unreadable document" in second["exception"]


def test_text_lines_start_with_time_and_level(restore_logging):
    stream = configured("text", logging.WARNING)
    logging.getLogger("pressroom.ingest").info("not shown below WARNING")
    logging.getLogger("pressroom.ingest").warning("redis slow")
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" WARNING pressroom.ingest: redis slow")


def test_routine_celery_lines_about_periodic_tasks_are_dropped_and_the_rest_kept(restore_logging):
    stream = configured("text")
    beat, trace, strategy, request = (logging.getLogger(name) for name in logs.CELERY_ROUTINE_LOGGERS)
    for name in sorted(logs.PERIODIC_TASKS):
        # the very calls Celery makes (Scheduler.apply_entry, trace, strategy, Request for an expired message)
        beat.info("Scheduler: Sending due task %s (%s)", name.replace(".", "-"), name)
        strategy.info(LOG_RECEIVED, {"name": name, "id": "t1"})
        trace.info(LOG_SUCCESS, {"name": name, "id": "t1", "runtime": 0.001, "return_value": 0})
        request.info("Discarding revoked task: %s[%s]", name, "t1")
    trace.info(LOG_SUCCESS, {"name": tasknames.RENDER_ARTICLE, "id": "t2", "runtime": 0.2, "return_value": None})
    beat.info("Scheduler: Sending due task %s (%s)", "nightly", "render.site")
    trace.warning("Task %(name)s[%(id)s] failed", {"name": tasknames.SCHEDULER_SWEEP_OUTBOX, "id": "t3"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "render.article[t2] succeeded" in lines[0]
    assert "Sending due task nightly (render.site)" in lines[1]
    assert "WARNING" in lines[2] and "scheduler.sweep_outbox[t3] failed" in lines[2]


def test_the_periodic_tasks_are_the_beat_schedule():
    from shared.celery_app import create_celery

    schedule = create_celery(Settings.from_env({})).conf.beat_schedule
    forwarded = {tasknames.SITE_REFRESH, tasknames.NOTIFY_DISPATCH}  # what two of them send, as often
    assert {entry["task"] for entry in schedule.values()} | forwarded == logs.PERIODIC_TASKS
