"""What every `pressroom` subcommand shares, wherever it is defined: one-line failures, settings, Redis.

`pressroom/cli.py` registers the commands that services define (`COMMAND_MODULES` there);
those modules import this, never `pressroom.cli`, so the imports run one way.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from shared.settings import Settings, SettingsError, redact_url


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"pressroom: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))


def require_redis(settings: Settings) -> None:
    import redis

    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        fail(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}")
