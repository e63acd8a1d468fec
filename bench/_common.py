"""What the benchmarks share: the servers they start, the load they send, the figures they take.

Not a benchmark itself: `make bench` runs every `bench/*.py` but the `_`-prefixed ones.
Only the standard library at module level: gunicorn imports bench/ingest.py (and so this
module) into the bare baseline app, whose workers must not carry Pressroom's clients.
Importing it puts the repository root on `sys.path`, so `shared`, `services` and
`pressroom` import from the checkout.
"""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class BenchFailure(Exception):
    """Something did not end in the state the figures assume; the run stops and says what."""


def say(text: str) -> None:
    """A progress line stamped with the UTC time, to line it up with the servers' logs."""
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll until `predicate()` is true; returns the perf_counter time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(interval)
    raise BenchFailure(f"timed out after {timeout:.0f}s waiting for {what}")


def stack_env(workdir: Path, redis_port: int, s3_port: int, api_port: int | None = None,
              **settings: str) -> dict[str, str]:
    """The environment of the stack's processes: loopback Redis and S3, state under `workdir`.

    moto's credentials go into this process's environment too, for its own boto3 clients.
    With `api_port`, also what the ingest API needs: a fresh webhook secret (read it back
    from PRESSROOM_WEBHOOK_SECRETS), an API token and a Prometheus directory. `settings`
    are further PRESSROOM_* variables. PRESSROOM_HOST is dropped: loopback only.
    """
    os.environ.update(AWS)
    env = {
        **os.environ,
        "PRESSROOM_REDIS_URL": f"redis://{HOST}:{redis_port}/0",
        "PRESSROOM_S3_ENDPOINT_URL": f"http://{HOST}:{s3_port}",
        "PRESSROOM_STATE_DIR": str(workdir / "state"),
    }
    env.pop("PRESSROOM_HOST", None)
    if api_port is not None:
        metrics = workdir / "metrics"
        metrics.mkdir(exist_ok=True)
        env.update({
            "PRESSROOM_PORT": str(api_port),
            "PRESSROOM_WEBHOOK_SECRETS": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            "PRESSROOM_API_TOKEN": secrets.token_urlsafe(24),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        })
    env.update(settings)
    return env


def signed_json_headers(key: bytes, body: bytes) -> dict[str, str]:
    """The headers of one JSON webhook POST, signed per Standard Webhooks under a fresh webhook-id."""
    from shared.signatures import signed_headers

    return {"Content-Type": "application/json", **signed_headers(key, f"msg_{uuid.uuid4().hex}", body)}


class ApiConnection:
    """One persistent HTTP/1.1 connection to a loopback server; a failed call closes it, the next reconnects."""

    def __init__(self, port: int, timeout: float = 60) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.conn.connect()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of the answer; OSError and HTTPException are raised after closing the connection."""
        self.connect()
        assert self.conn is not None
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise


def cpu_by_root(roots: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each root process and all its descendants, by name.

    Read from /proc; a process's figure includes its children that have finished (cutime,
    cstime). Unlike a rate, this barely moves when other work loads the machine: it is the
    cost of the work itself.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(f) for f in fields[11:15]) / tick
    out = dict.fromkeys(roots.values(), 0.0)
    for pid, seconds in used.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in roots:
            ancestor = parents.get(ancestor, 0)
        if ancestor in roots:
            out[roots[ancestor]] += seconds
    return out


class Children:
    """The servers a run starts, each logging to `<log_dir>/<name>.log`; all stopped at the end, whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
        from pressroom import processes

        with open(self.log_dir / f"{name}.log", "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                preexec_fn=processes._die_with_parent, process_group=0,
            )
        self.procs.append((name, proc))
        return proc

    def start_storage(self, persist: bool = True) -> tuple[int, int]:
        """redis-server (AOF on by default, as in docker-compose.yml) and moto's S3 server; returns their ports."""
        from pressroom import processes

        redis_port, s3_port = processes.free_port(), processes.free_port()
        proc = self.start("redis", processes.redis_command(redis_port, str(self.log_dir), persist=persist))
        processes.wait_for_port(redis_port, 15, proc)
        proc = self.start("s3", processes.moto_command(s3_port))
        processes.wait_for_port(s3_port, 30, proc)
        return redis_port, s3_port

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of this process ("benchmark client") and of each child by name, descendants included."""
        return {"benchmark client": time.process_time(), **cpu_by_root({p.pid: name for name, p in self.procs})}

    def stop(self, *names: str) -> None:
        """Stop the named children (all when none are named), newest first; SIGKILL after 20 s."""
        chosen = [(name, proc) for name, proc in self.procs if not names or name in names]
        for _, proc in reversed(chosen):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in chosen:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
