"""PRESSROOM_LOG_FORMAT=json: the API under gunicorn and the scheduler (beat and its worker) print JSON lines only."""

import json
import os
import subprocess
import sys

import requests

from pressroom import processes
from tests.conftest import ROOT, stop_process, wait_for


def start(args: list[str], env: dict[str, str], log_path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "pressroom.cli", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT)


SHUTDOWN_NOTICE = "worker: Warm shutdown (MainProcess)"  # Celery writes it from its signal handler, not a logger


def json_lines(path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and line != SHUTDOWN_NOTICE]
    return [json.loads(line) for line in lines]  # any other line that is not JSON fails here


def test_api_and_scheduler_log_json_lines(stack_env, tmp_path):
    port = processes.free_port()
    env = {**os.environ, **stack_env, "PRESSROOM_LOG_FORMAT": "json", "PRESSROOM_PORT": str(port),
           "PRESSROOM_STATE_DIR": str(tmp_path)}
    api = start(["ingest", "--access-log"], env, tmp_path / "ingest.log")
    scheduler = start(["scheduler"], env, tmp_path / "scheduler.log")
    try:
        processes.wait_for_port(port, 60, api)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        wait_for(lambda: "ready." in (tmp_path / "scheduler.log").read_text(), timeout=60, message="the scheduler")
        wait_for(lambda: "/healthz" in (tmp_path / "ingest.log").read_text(), timeout=10, message="the access log")
    finally:
        stop_process(api)
        stop_process(scheduler)
    api_records = json_lines(tmp_path / "ingest.log")
    assert any(r["logger"] == "gunicorn.error" and r["message"].startswith("Listening at:") for r in api_records)
    assert any(r["logger"] == "gunicorn.access" and "GET /healthz" in r["message"] for r in api_records)
    scheduler_records = json_lines(tmp_path / "scheduler.log")
    assert any(r["logger"] == "celery.beat" and r["message"] == "beat: Starting..." for r in scheduler_records)
    assert any(r["message"].endswith(" ready.") and r["level"] == "INFO" for r in scheduler_records)
    assert not any("Sending due task" in r["message"] for r in scheduler_records)
