"""current_pid: the pid a per-process cache keys on, right in a forked child without asking the kernel."""

from __future__ import annotations

import multiprocessing
import os

from shared.forks import current_pid


def _report(queue) -> None:
    queue.put((current_pid(), os.getpid()))


def test_a_forked_child_sees_its_own_pid():
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, f"{current_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    seen, real = map(int, os.read(read, 64).split())
    os.waitpid(pid, 0)
    assert seen == real == pid != current_pid()


def test_a_pool_process_forked_by_multiprocessing_sees_its_own_pid():
    context = multiprocessing.get_context("fork")  # how Celery's prefork pool (billiard) makes its processes
    queue = context.Queue()
    child = context.Process(target=_report, args=(queue,))
    child.start()
    seen, real = queue.get(timeout=30)
    child.join(30)
    assert seen == real == child.pid != current_pid()
