"""`pressroom run`: the whole pipeline on one machine, in the foreground.

Starts what is not configured (Redis, moto's S3 server), then the API, one worker per
pool, the scheduler and a site preview server, prints how to use them, and stops every
child on Ctrl-C or SIGTERM. The embedded Redis and S3 keep their data in memory: the
stack is for trying Pressroom and for development, not for keeping a site.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from pressroom import processes
from pressroom.cli import fail
from shared.settings import Settings, SettingsError
from shared.storage import ensure_buckets

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "samples" / "seed-article.ninjs.json"


def _local_secrets(state_dir: Path) -> dict[str, str]:
    """Webhook secret and API token for local use, generated once and kept in the state dir."""
    path = state_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "PRESSROOM_WEBHOOK_SECRETS": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "PRESSROOM_API_TOKEN": secrets.token_urlsafe(24),
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def run_stack() -> int:
    env = dict(os.environ)
    state_dir = Path(env.get("PRESSROOM_STATE_DIR", ".pressroom")).resolve()
    for name, value in _local_secrets(state_dir).items():
        env.setdefault(name, value)
    env.setdefault("PRESSROOM_STATE_DIR", str(state_dir))
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        fail(str(exc))
    for port, variable in ((settings.port, "PRESSROOM_PORT"), (settings.site_port, "PRESSROOM_SITE_PORT")):
        if processes.port_in_use(port):
            fail(f"port {port} is already in use; stop what uses it or set {variable}", 1)

    sup = processes.Supervisor(env)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if "PRESSROOM_REDIS_URL" not in os.environ:
            port = processes.free_port()
            redis_dir = tempfile.mkdtemp(prefix="pressroom-redis-")
            proc = sup.start("redis", processes.redis_command(port, redis_dir), quiet=True)
            processes.wait_for_port(port, 15, proc)
            env["PRESSROOM_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        if "PRESSROOM_S3_ENDPOINT_URL" not in os.environ:
            port = processes.free_port()
            proc = sup.start("s3", processes.moto_command(port), quiet=True)
            processes.wait_for_port(port, 30, proc)
            env["PRESSROOM_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
            for name, value in (("AWS_ACCESS_KEY_ID", "pressroom"), ("AWS_SECRET_ACCESS_KEY", "pressroom"),
                                ("AWS_DEFAULT_REGION", "us-east-1")):
                env.setdefault(name, value)
        os.environ.update(env)
        settings = Settings.from_env(env)
        try:
            ensure_buckets(settings)
        except Exception as exc:
            fail(f"cannot create buckets at {settings.s3_endpoint_url or 'AWS'}: {exc}", 1)
        me = [sys.executable, "-m", "pressroom.cli"]
        ingest = sup.start("ingest", [*me, "ingest"], restart=True)
        sup.start("render worker", [*me, "worker", "render"], restart=True)
        sup.start("site worker", [*me, "worker", "site"], restart=True)
        sup.start("notify worker", [*me, "worker", "notify"], restart=True)
        sup.start("scheduler", [*me, "scheduler"], restart=True)
        site = sup.start("site", [*me, "site"], restart=True)
        processes.wait_for_port(settings.port, 60, ingest)
        processes.wait_for_port(settings.site_port, 30, site)
        print(banner(settings), flush=True)
        ended = sup.watch()
        print(f"pressroom: {ended} exited and cannot be kept running; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\npressroom: stopping…", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(f"pressroom: error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sup.stop()


def banner(settings: Settings) -> str:
    sample = SAMPLE.relative_to(Path.cwd()) if SAMPLE.is_relative_to(Path.cwd()) else SAMPLE
    return f"""
Pressroom is running.  Ctrl-C stops everything.

  API        {settings.public_api_url}        (OpenAPI: {settings.public_api_url}/openapi.json)
  Site       {settings.site_url}/
  Redis      {settings.redis_url}
  S3         {settings.s3_endpoint_url or 'AWS'}  (buckets {settings.site_bucket}, {settings.data_bucket})
  Webhook secret  {settings.webhook_secrets[0]}
  API token       {settings.api_token}

Publish the sample article (signed with the webhook secret, Standard Webhooks):

  PRESSROOM_WEBHOOK_SECRETS='{settings.webhook_secrets[0]}' .venv/bin/pressroom post {sample}

Then follow it (use the id from the answer):

  curl -H 'Authorization: Bearer {settings.api_token}' {settings.public_api_url}/v1/articles/ID
"""
