"""Fixtures that start real servers: redis-server, moto's S3 server, Celery workers, gunicorn.

Everything binds to 127.0.0.1 on free ports. Servers are session-scoped; tests keep
apart by using unique article URIs rather than by flushing shared state.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from pressroom import embedded, processes
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"  # copies of ../shared/samples
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"pressroom-test-secret-0123456789").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"pressroom-old-secret-abcdefghijk").decode()
API_TOKEN = "test-token-0123456789abcdef"
SUPERDESK_SECRET = "superdesk-test-secret-0123456789"
OLD_SUPERDESK_SECRET = "superdesk-old-secret-abcdefghij"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, url: str) -> None:
        self.proc, self.port, self.url = proc, port, url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# every directory the tests and the processes they start make (TMPDIR of those), removed at exit
TEMP = tempfile.mkdtemp(prefix="pressroom-tests-")
atexit.register(shutil.rmtree, TEMP, True)


def temp_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=TEMP)


def start_redis(directory: str | None = None, port: int | None = None, persist: bool = False) -> Server:
    port = port or processes.free_port()
    directory = directory or temp_dir("pr-redis-")
    proc = subprocess.Popen(processes.redis_command(port, directory, persist), stdout=subprocess.DEVNULL)
    processes.wait_for_port(port, 15, proc)
    return Server(proc, port, f"redis://127.0.0.1:{port}/0")


@pytest.fixture(scope="session")
def redis_server():
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    port = processes.free_port()
    proc = subprocess.Popen(processes.moto_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.wait_for_port(port, 30, proc)
    server = Server(proc, port, f"http://127.0.0.1:{port}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server():
    """SeaweedFS's S3 gateway (`weed mini`, as `pressroom run` starts it): unlike moto it checks
    every request's SigV4 signature, against the AWS_* credentials in its environment."""
    directory = temp_dir("pr-seaweed-")
    port = processes.free_port()
    with open(Path(directory) / "weed.log", "wb") as log:
        proc = subprocess.Popen(processes.seaweed_command(processes.seaweed_binary(), directory, port),
                                stdout=log, stderr=subprocess.STDOUT)
    processes.wait_for_port(port, 60, proc)
    server = Server(proc, port, f"http://127.0.0.1:{port}")
    embedded.wait_for_s3({**os.environ, "PRESSROOM_S3_ENDPOINT_URL": server.url}, proc)
    yield server
    server.stop()


def make_env(redis_url: str, s3_url: str, **extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "PRESSROOM_REDIS_URL": redis_url,
        "PRESSROOM_S3_ENDPOINT_URL": s3_url,
        "PRESSROOM_SITE_BUCKET": f"site-{suffix}",
        "PRESSROOM_DATA_BUCKET": f"data-{suffix}",
        "PRESSROOM_SITE_URL": "https://news.example.test",
        "PRESSROOM_WEBHOOK_SECRETS": f"{WEBHOOK_SECRET},{OLD_SECRET}",
        "PRESSROOM_API_TOKEN": API_TOKEN,
        "PRESSROOM_SUPERDESK_SECRETS": f"{SUPERDESK_SECRET},{OLD_SUPERDESK_SECRET}",
        "PRESSROOM_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "PRESSROOM_PHOTO_HOSTS": "127.0.0.1,localhost",  # the samples' photo host is refused before any DNS
        "PRESSROOM_STATE_DIR": temp_dir("pr-state-"),
        "TMPDIR": TEMP,
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def stack_env(redis_server, s3_server) -> dict[str, str]:
    """Environment of the shared test stack (buckets created)."""
    env = make_env(redis_server.url, s3_server.url)
    ensure_buckets(Settings.from_env({**os.environ, **env}))
    return env


@pytest.fixture(scope="session")
def settings(stack_env) -> Settings:
    return Settings.from_env({**os.environ, **stack_env})


@pytest.fixture(scope="session")
def rt(settings) -> Runtime:
    return Runtime(settings)


def start_process(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
    log_dir = ROOT / "test-artifacts" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{log_name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "pressroom.cli", *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def workers(stack_env):
    """Real Celery worker processes for every pool, plus the scheduler (beat)."""
    procs = [
        start_process(["worker", "render", "site", "notify", "--concurrency", "2"], stack_env, "worker"),
        start_process(["scheduler"], stack_env, "scheduler"),
    ]
    yield procs
    for proc in procs:
        stop_process(proc)


@pytest.fixture(scope="session")
def api(stack_env) -> str:
    """The ingest API under gunicorn, over real HTTP; returns its base URL."""
    port = processes.free_port()
    env = {**stack_env, "PRESSROOM_PORT": str(port), "PRESSROOM_INGEST_WORKERS": "2"}
    proc = start_process(["ingest"], env, "ingest")
    processes.wait_for_port(port, 60, proc)
    url = f"http://127.0.0.1:{port}"
    # gunicorn listens before its workers have imported the app (seconds on a loaded machine)
    wait_for(lambda: _answers(f"{url}/healthz"), timeout=120, message="the API's workers")
    yield url
    stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def app(settings):
    from services.ingest.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


def sample(name: str = "seed-article") -> dict:
    return json.loads((SAMPLES / f"{name}.ninjs.json").read_text())


def unique_article(name: str = "seed-article", **changes) -> dict:
    """A sample article with a fresh uri, so tests never collide on shared servers."""
    doc = sample(name)
    doc["uri"] = f"{doc['uri']}-{uuid.uuid4().hex[:10]}"
    doc.update(changes)
    return doc


def signed(body: bytes, secret: str = WEBHOOK_SECRET, msg_id: str | None = None) -> dict[str, str]:
    """Headers signed by the standardwebhooks reference library, as a newsroom would send."""
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


def article_status(api_url: str, aid: str) -> dict:
    return requests.get(f"{api_url}/v1/articles/{aid}", headers=auth_headers(), timeout=10).json()


# --- notify: webhook receivers, an SMTP server, an isolated Redis database --------------------------------------


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that verifies each request with the standardwebhooks library.

    `status` is what it answers (e.g. 200, 500, 410, 429), `headers` extra answer headers,
    `delay` seconds to wait before answering (a hanging endpoint), or `hold`, an Event it waits
    for (up to 30 s) before answering, for tests that must not depend on timing. Set `secrets` to the
    subscription's secret(s) to have every request verified; results are in `requests`.
    """

    def __init__(self, status: int = 200, headers: dict | None = None, delay: float = 0.0, answer: bytes = b"ok",
                 hold=None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status, self.headers, self.delay, self.answer = status, headers or {}, delay, answer
        self.hold = hold
        self.secrets: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._record(dict(self.headers.items()), body, self.path, self.client_address[1])
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                try:
                    self.send_response(receiver.status)
                    for name, value in receiver.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(receiver.answer)))
                    self.end_headers()
                    self.wfile.write(receiver.answer)
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512  # as a real server's backlog: a worker opens up to 2 x 32 connections at once

            def handle_error(self, request, client_address):
                pass  # a client that gave up on a hanging answer closed the socket: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _record(self, headers: dict, body: bytes, path: str, client_port: int) -> None:
        from standardwebhooks.webhooks import Webhook

        lowered = {k.lower(): v for k, v in headers.items()}
        verified = {}
        for secret in self.secrets:
            try:
                verified[secret] = Webhook(secret).verify(body, lowered)
            except Exception as exc:  # the library raises its own WebhookVerificationError
                verified[secret] = exc
        with self.lock:
            self.requests.append({"headers": lowered, "body": body, "path": path, "verified": verified,
                                  "at": time.monotonic(), "client_port": client_port})

    def verified_payloads(self, secret: str) -> list[dict]:
        """Payloads that the standardwebhooks library verified with `secret` (others are left out)."""
        with self.lock:
            return [r["verified"][secret] for r in self.requests if isinstance(r["verified"].get(secret), dict)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receivers():
    """Factory of WebhookReceiver servers, all stopped after the test."""
    made: list[WebhookReceiver] = []

    def make(**kwargs) -> WebhookReceiver:
        receiver = WebhookReceiver(**kwargs)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


class ScriptedHttp:
    """A loopback HTTP/1.1 server that answers each request with the next of `statuses`
    (a status with an empty body or (status, body); bytes: sent as they are; 0: no answer
    at all; connections kept open), and closes a connection without a word after
    `close_after` answers on it.
    `requests` holds (connection number, request line). With `tls` (a server context) it
    speaks HTTPS, as https://localhost:PORT."""

    def __init__(self, statuses: list[int | tuple[int, bytes] | bytes], close_after: int = 0, tls=None) -> None:
        self.statuses, self.close_after, self.tls = list(statuses), close_after, tls
        self.requests: list[tuple[int, str]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        number = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, number: int) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client refused our certificate
                conn.close()
                return
        reader = conn.makefile("rb")
        answered = 0
        with conn:
            while True:
                line = reader.readline()
                if not line:
                    return
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                reader.read(length)
                self.requests.append((number, line.decode("latin-1").strip()))
                status, body = (self.statuses.pop(0) if self.statuses else 200), b""
                if isinstance(status, tuple):
                    status, body = status
                if not status:
                    continue
                if isinstance(status, bytes):
                    conn.sendall(status)
                else:
                    conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                answered += 1
                if answered == self.close_after:
                    return

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted_http():
    """Factory of ScriptedHttp servers, all stopped after the test."""
    made: list[ScriptedHttp] = []

    def make(statuses: list[int | tuple[int, bytes] | bytes], close_after: int = 0, tls=None) -> ScriptedHttp:
        made.append(ScriptedHttp(statuses, close_after, tls))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{processes.free_port()}/hook"


class SmtpSink:
    """aiosmtpd handler keeping every message; RCPT to an address starting with 'bounce' gets 550."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import email
        import email.policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1; `.handler.messages` holds what it received."""
    from aiosmtpd.controller import Controller

    controller = Controller(SmtpSink(), hostname="127.0.0.1", port=processes.free_port())
    controller.start()
    controller.url = f"smtp://127.0.0.1:{controller.port}"
    yield controller
    controller.stop()


NOTIFY_DB = 7  # a Redis database of its own: the shared scheduler and workers (database 0) never see it


@pytest.fixture
def notify_settings(settings, redis_server, smtp_server) -> Settings:
    """Settings on an emptied Redis database of their own, with the SMTP server, for notify tests that drive
    the notify functions directly (no worker or scheduler can pick their deliveries up)."""
    import dataclasses

    import redis as redis_lib

    url = f"redis://127.0.0.1:{redis_server.port}/{NOTIFY_DB}"
    redis_lib.Redis.from_url(url).flushdb()
    return dataclasses.replace(settings, redis_url=url, smtp_url=smtp_server.url,
                               mail_from="Pressroom News <news@pressroom.test>")


@pytest.fixture
def notify_rt(notify_settings) -> Runtime:
    return Runtime(notify_settings)


@pytest.fixture
def notify_client(notify_settings):
    """A Flask test client of the API on the notify tests' own Redis database."""
    from services.ingest.app import create_app

    return create_app(notify_settings).test_client()
