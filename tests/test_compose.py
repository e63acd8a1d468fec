"""docker-compose.yml and the Dockerfile, checked against the code they start.

Docker does not run on CI machines, so the stack cannot be brought up here; instead the
files are parsed and every command is run through the real `pressroom` argument parser,
so renaming a subcommand or a pool breaks this test rather than a deployment.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from pressroom import cli
from shared.settings import Settings
from shared.tasknames import POOLS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# What an operator puts in .env; the compose file refuses to start without the secrets.
OPERATOR_ENV = {
    "PRESSROOM_WEBHOOK_SECRETS": "whsec_cHJlc3Nyb29tLWNvbXBvc2Utc2VjcmV0LTAx",
    "PRESSROOM_API_TOKEN": "compose-token-0123456789",
    "MINIO_ROOT_PASSWORD": "compose-minio-password",
}
EXTRA_SERVICES = {"redis", "minio", "bucket-init"}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(LookupError):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution (${X}, ${X:-default}, ${X-default}, ${X:?error}, $$)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        current = env.get(name)
        empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("-"):
            return arg if empty else current
        if op and op.endswith("?"):
            if empty:
                raise MissingVariable(f"{name}: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(substitute, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), OPERATOR_ENV if env is None else env)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def pressroom_services(services: dict) -> dict:
    return {name: svc for name, svc in services.items() if name not in EXTRA_SERVICES}


def command_list(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def parse_pressroom(argv: list[str]):
    """Run argv through the project's own CLI parser; a bad subcommand or option fails the test."""
    assert argv, "empty command"
    scripts = console_scripts()
    assert argv[0] in scripts, f"{argv[0]!r} is not a console script in pyproject [project.scripts]: {scripts}"
    module, _, attr = scripts[argv[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), f"{scripts[argv[0]]} is not callable"
    try:
        return cli.build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`{' '.join(argv)}` is not accepted by pressroom.cli.build_parser()")


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def seconds(duration) -> float:
    """A compose duration ("330s", "5m30s", "1h") in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_only_spec_services_exist(services):
    assert set(services) == EXTRA_SERVICES | {"ingest"} | set(POOLS)


def test_every_pressroom_command_is_a_real_entry_point(services):
    for name, svc in pressroom_services(services).items():
        args = parse_pressroom(command_list(svc["command"]))
        if name == "ingest":
            assert args.func is cli.cmd_ingest
        elif name == "scheduler":
            # A plain worker on the scheduler queue would run no beat: embargoes and the outbox would stall.
            assert args.func is cli.cmd_scheduler, "the scheduler service must run `pressroom scheduler`"
        else:
            assert args.func is cli.cmd_worker, f"{name}: expected `pressroom worker {name}`"
            assert set(args.pools) <= set(POOLS), f"{name}: unknown pools {args.pools}"
            assert args.pools == [name], f"service {name!r} must serve exactly its own pool, so --scale scales it"


def test_every_pool_has_a_service(services):
    for pool in POOLS:
        assert pool in services, f"no service for pool {pool!r}"


def test_redis_keeps_queued_work(services):
    redis = services["redis"]
    command = " ".join(command_list(redis["command"]))
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the AOF must live on a volume"


def test_workers_outlast_the_longest_task(services):
    workers = {
        name: svc for name, svc in pressroom_services(services).items()
        if parse_pressroom(command_list(svc["command"])).func in (cli.cmd_worker, cli.cmd_scheduler)
    }
    assert set(workers) == set(POOLS)
    for name, svc in workers.items():
        limit = max(Settings().task_time_limit, Settings.from_env(service_env(svc)).task_time_limit)
        assert "stop_grace_period" in svc, f"{name}: no stop_grace_period (Docker's default 10 s kills tasks)"
        assert seconds(svc["stop_grace_period"]) > limit, f"{name}: stop_grace_period must exceed {limit} s"


def test_healthchecks(services):
    for name in ("redis", "minio", "ingest"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "redis-cli ping" in " ".join(command_list(services["redis"]["healthcheck"]["test"]))
    ingest_check = " ".join(command_list(services["ingest"]["healthcheck"]["test"]))
    port = service_env(services["ingest"])["PRESSROOM_PORT"]
    assert f":{port}/healthz" in ingest_check


def test_start_order_and_restarts(services):
    assert services["bucket-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["bucket-init"].get("restart", "no") == "no", "a one-shot must not restart"
    for name in ("redis", "minio", *pressroom_services(services)):
        assert services[name]["restart"] == "unless-stopped", name
    for name, svc in pressroom_services(services).items():
        deps = svc["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["minio"]["condition"] == "service_healthy", name
        assert deps["bucket-init"]["condition"] == "service_completed_successfully", name


def test_pressroom_settings_point_at_the_stack(services):
    minio = service_env(services["minio"])
    init = service_env(services["bucket-init"])
    init_command = " ".join(command_list(services["bucket-init"]["command"]))
    for name, svc in pressroom_services(services).items():
        env = service_env(svc)
        settings = Settings.from_env(env)  # raises SettingsError on anything malformed
        assert settings.s3_endpoint_url == "http://minio:9000", name
        assert settings.redis_url.startswith("redis://redis:6379"), name
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"], name
        assert env.get("AWS_DEFAULT_REGION"), name
        assert (init["SITE_BUCKET"], init["DATA_BUCKET"]) == (settings.site_bucket, settings.data_bucket), name
    assert "$SITE_BUCKET" in init_command and "$DATA_BUCKET" in init_command
    ingest = services["ingest"]
    assert service_env(ingest)["PRESSROOM_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container network
    assert any(str(p).endswith(f":{service_env(ingest)['PRESSROOM_PORT']}") for p in ingest["ports"])


def test_secrets_are_required_not_defaulted():
    for variable in OPERATOR_ENV:
        env = {k: v for k, v in OPERATOR_ENV.items() if k != variable}
        with pytest.raises(MissingVariable, match=variable):
            load_compose(env)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    assert isinstance(parsed, list), f"{value!r}: use the exec form, so the process itself gets SIGTERM"
    return parsed


def test_dockerfile_runs_the_console_script():
    instructions = dockerfile_instructions()
    entrypoint = [exec_form(v) for k, v in instructions if k == "ENTRYPOINT"]
    cmd = [exec_form(v) for k, v in instructions if k == "CMD"]
    argv = (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])
    assert argv[0] in console_scripts()
    assert parse_pressroom(argv).func is cli.cmd_ingest


def test_dockerfile_installs_the_pinned_runtime_only_as_non_root():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    run = " ".join(v for k, v in instructions if k == "RUN")
    assert re.search(r"pip install -c constraints\.txt \.(\s|$)", run), run
    assert "[test]" not in run and " -e " not in run
    users = [v for k, v in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"


def test_dockerfile_copies_every_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(v for k, v in dockerfile_instructions() if k == "COPY")
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, f"package {pattern} is not copied into the image"
    assert project["project"]["readme"] in copied
