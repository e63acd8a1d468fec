"""What every `pressroom` subcommand shares, wherever it is defined: one-line failures, settings, Redis.

`pressroom/cli.py` registers the commands that services define (`COMMAND_MODULES` there);
those modules import this, never `pressroom.cli`, so the imports run one way.

A running `pressroom run` leaves the addresses of its embedded stores (and their keys) in
`<state dir>/running-stack.json` while it runs, so `pressroom status`, `demo`, `rebuild`
and the rest work against it without copying URLs out of the banner; anything set in the
environment wins.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from shared.settings import Settings, SettingsError, redact_url


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"pressroom: error: {message}", file=sys.stderr)
    raise SystemExit(code)


RUNNING_STACK = "running-stack.json"  # in the state dir, written by `pressroom run` (pressroom.embedded)
RUN_LOCK = "run.lock"  # in the state dir, flocked by `pressroom run` for as long as it runs


def stack_running(state_dir: Path) -> bool:
    """Whether a `pressroom run` holds this state dir now: a killed one leaves its files, never its lock."""
    import fcntl

    try:
        handle = open(state_dir / RUN_LOCK, "rb")  # noqa: SIM115 - closed below, which drops a lock taken here
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def running_stack_env(env: dict[str, str]) -> dict[str, str]:
    """The variables a running `pressroom run` of this state dir offers that `env` does not set.

    An S3 endpoint comes with the stack's own credentials: they belong to its server. The
    file of a stack that was killed (SIGKILL, power loss) names servers that are gone: ignored.
    """
    state_dir = Path(env.get("PRESSROOM_STATE_DIR", ".pressroom"))
    path = state_dir / RUNNING_STACK
    if not stack_running(state_dir):
        return {}
    try:
        stack = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {k: v for k, v in stack.items() if k.startswith("PRESSROOM_") and k not in env}
    if "PRESSROOM_S3_ENDPOINT_URL" in out:
        out.update({k: v for k, v in stack.items() if k.startswith("AWS_")})
    return out


def load_settings() -> Settings:
    os.environ.update(running_stack_env(dict(os.environ)))  # boto3 reads its credentials from the environment
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))


def article_post_headers(settings: Settings, body: bytes) -> dict[str, str] | None:
    """Headers that make the API accept `body` as a newsroom's push: signed with the first
    webhook secret (Standard Webhooks), else the API token; None when neither is set."""
    import uuid

    from shared.signatures import signed_headers

    headers = {"Content-Type": "application/json"}
    if settings.webhook_keys:
        return headers | signed_headers(settings.webhook_keys[0], f"msg_{uuid.uuid4().hex}", body)
    if settings.api_token:
        return headers | {"Authorization": f"Bearer {settings.api_token}"}
    return None


def require_redis(settings: Settings) -> None:
    import redis

    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        fail(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}")
