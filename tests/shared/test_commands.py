"""How operator commands find a running `pressroom run`: its state dir, with the environment first."""

import json
import signal
import subprocess
import sys
import time

import pytest

from shared.commands import RUN_LOCK, RUNNING_STACK, running_stack_env, stack_running

HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def hold_run_lock(state_dir) -> subprocess.Popen:
    """A process that holds the state dir's run lock as `pressroom run` does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(state_dir / RUN_LOCK)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def running(tmp_path):
    proc = hold_run_lock(tmp_path)
    yield proc
    proc.kill()
    proc.wait()


def test_the_environment_wins_and_an_s3_endpoint_brings_its_own_keys(tmp_path, running):
    (tmp_path / RUNNING_STACK).write_text(json.dumps({
        "PRESSROOM_REDIS_URL": "redis://127.0.0.1:1/0", "PRESSROOM_S3_ENDPOINT_URL": "http://127.0.0.1:2",
        "AWS_SECRET_ACCESS_KEY": "stack-key", "PRESSROOM_PORT": "8100",
    }))
    env = {"PRESSROOM_STATE_DIR": str(tmp_path), "PRESSROOM_PORT": "9000", "AWS_SECRET_ACCESS_KEY": "other"}
    assert running_stack_env(env) == {"PRESSROOM_REDIS_URL": "redis://127.0.0.1:1/0",
                                      "PRESSROOM_S3_ENDPOINT_URL": "http://127.0.0.1:2",
                                      "AWS_SECRET_ACCESS_KEY": "stack-key"}
    configured = {**env, "PRESSROOM_S3_ENDPOINT_URL": "https://s3.example.test"}
    assert running_stack_env(configured) == {"PRESSROOM_REDIS_URL": "redis://127.0.0.1:1/0"}


def test_no_running_stack_or_a_torn_file_adds_nothing(tmp_path, running):
    assert running_stack_env({"PRESSROOM_STATE_DIR": str(tmp_path)}) == {}
    (tmp_path / RUNNING_STACK).write_text("{not json")
    assert running_stack_env({"PRESSROOM_STATE_DIR": str(tmp_path)}) == {}


def test_the_file_of_a_killed_stack_is_ignored(tmp_path):
    (tmp_path / RUNNING_STACK).write_text(json.dumps({"PRESSROOM_REDIS_URL": "redis://127.0.0.1:1/0"}))
    env = {"PRESSROOM_STATE_DIR": str(tmp_path)}
    proc = hold_run_lock(tmp_path)
    assert stack_running(tmp_path)
    assert running_stack_env(env) == {"PRESSROOM_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc.send_signal(signal.SIGKILL)  # no clean-up: its running-stack.json stays behind
    proc.wait()
    deadline = time.monotonic() + 5
    while stack_running(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / RUNNING_STACK).exists()
    assert not stack_running(tmp_path)
    assert running_stack_env(env) == {}
