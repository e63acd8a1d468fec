"""How operator commands find a running `pressroom run`: its state dir, with the environment first."""

import json

from shared.commands import RUNNING_STACK, running_stack_env


def test_the_environment_wins_and_an_s3_endpoint_brings_its_own_keys(tmp_path):
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


def test_no_running_stack_or_a_torn_file_adds_nothing(tmp_path):
    assert running_stack_env({"PRESSROOM_STATE_DIR": str(tmp_path)}) == {}
    (tmp_path / RUNNING_STACK).write_text("{not json")
    assert running_stack_env({"PRESSROOM_STATE_DIR": str(tmp_path)}) == {}
