"""This process's pid without a system call on every look.

Per-process caches (a Runtime, the notify Sender, the webhook client, boto3's sessions)
check the pid on hot paths so a forked child makes its own; `os.getpid()` is a system
call, ~0.7 µs on this machine, and a delivery looked several times.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def current_pid() -> int:
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
