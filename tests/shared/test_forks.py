"""per_process: one instance per process, a forked child its own; current_pid, right in a child without a syscall."""

from __future__ import annotations

import multiprocessing
import os
import threading

from shared.forks import current_pid, per_process


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


def test_one_instance_per_process_and_a_fresh_one_after_a_fork():
    made = []

    @per_process
    def thing() -> object:
        made.append(object())
        return made[-1]

    assert thing.existing() is None and not made  # asking does not make one
    barrier = threading.Barrier(8)
    seen = []

    def race():
        barrier.wait()
        seen.append(thing())

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(s is made[0] for s in seen)  # threads racing to the first call share one

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child has none until its first call makes a new one; its second returns that
        ok = thing.existing() is None and thing() is not made[0] and thing() is thing() is thing.existing()
        ok = ok and len(made) == 2
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert thing() is made[0] is thing.existing() and len(made) == 1  # the parent's is untouched
