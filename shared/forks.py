"""One of a thing per process, and this process's pid without a system call on every look.

Per-process caches (a Runtime, the notify Sender, the webhook client, boto3's sessions)
check the pid on hot paths so a forked child makes its own; `os.getpid()` is a system
call, ~0.7 µs on this machine, and a delivery looked several times.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

T = TypeVar("T")

_pid = os.getpid()


def current_pid() -> int:
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def per_process(factory: Callable[[], T]) -> Callable[[], T]:
    """`factory()` made once per process, on first use. A forked child (a prefork pool
    process) makes its own: a parent's threads do not run in it and its sockets are not the
    child's to use. Called on hot paths, so only the first call of a process takes a lock."""
    made: dict[int, T] = {}
    lock = threading.Lock()

    @wraps(factory)
    def get() -> T:
        current = made.get(current_pid())
        if current is None:
            with lock:
                current = made.get(current_pid())
                if current is None:
                    made.clear()
                    current = made[current_pid()] = factory()
        return current

    def existing() -> T | None:
        """This process's instance if it made one, without making it (for a clean exit)."""
        return made.get(current_pid())

    get.existing = existing  # type: ignore[attr-defined]
    return get
