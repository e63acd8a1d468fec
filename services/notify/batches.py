"""Many deliveries per task: read and claim them in bulk, send them from a thread pool.

One Celery task per delivery capped throughput at the broker's task rate, whatever the
network could do. A `notify.deliver_batch` task takes up to dispatch.BATCH delivery ids:
one script call reads their records, then they are claimed (one script call per chunk)
only as sending threads become free, and each claimed one is sent in its own thread
(services.notify.deliveries.complete) over the process's kept-alive connections
(services.notify.transports.webhook.connections); the ends of attempts are recorded by
one Finisher thread, as many per call as are waiting. Both a claim and a finish wait up
to GATHER (2 ms) for more of their kind: a Redis call costs the worker more CPU than
anything else an attempt does besides its POST, and a few calls of many cost far less
than many of one or two (one process sending to a local receiver: 0.79 -> 0.65 ms of CPU
per delivery).

Isolation of slow subscribers: the threads belong to the worker process, not to a task.
A delivery holds one thread for at most its transport's deadline (15 s for a webhook);
a task waits for its own deliveries only SLOW_AFTER seconds, and whatever is still
sending then finishes in the background while the process takes its next task. A task
that finds no thread free for HAND_BACK_AFTER seconds (every one held by slow endpoints)
claims nothing more: the rest of its batch goes back to the due set, due at once, for
another process. A delivery is claimed only when a thread is ready to send it, so its
lease (deliveries.LEASE_SECONDS) starts when the attempt does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import groupby
from queue import Empty, SimpleQueue

from services.notify import deliveries
from shared.deliveries import TERMINAL, Claim, DeliveryStore
from shared.runtime import Runtime

log = logging.getLogger("pressroom.notify")

THREADS = 16  # deliveries in flight per worker process
HAND_BACK_AFTER = 1.0
SLOW_AFTER = 2.0
GATHER = 0.002  # how long a claim or a finish waits for more of its kind to share its Redis call


class Sender:
    """The sending threads of one process, the slots that say how many are free, and the
    thread that records their attempts' ends (Finisher)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.slots = threading.BoundedSemaphore(threads)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="pressroom-deliver")
        self.finisher = Finisher(self.slots)
        self.pid = os.getpid()

    def take(self, wanted: int, wait_seconds: float, gather: float = GATHER) -> int:
        """Reserve up to `wanted` free threads, waiting up to `wait_seconds` for the first and
        then up to `gather` seconds for more (one claim call for several costs little more than
        for one); returns how many."""
        if wanted <= 0 or not self.slots.acquire(timeout=wait_seconds):
            return 0
        taken = 1
        deadline = time.monotonic() + gather
        while taken < wanted and self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            taken += 1
        return taken

    def give_back(self, count: int) -> None:
        for _ in range(count):
            self.slots.release()

    def start(self, rt: Runtime, store: DeliveryStore, did: str, record: dict, claim: Claim) -> Future:
        """Send one claimed delivery in a reserved thread. The slot is freed, and the returned
        future set to the outcome, once the attempt's end is recorded."""
        future: Future = Future()
        self.executor.submit(self._run, rt, store, did, record, claim, future)
        return future

    def _run(self, rt: Runtime, store: DeliveryStore, did: str, record: dict, claim: Claim, future: Future) -> None:
        queued = False

        def finish(did: str, claim: Claim, state: str, **details) -> None:
            nonlocal queued
            queued = True
            self.finisher.put(_Finish(store, did, claim, state, details, future))

        try:
            deliveries.complete(rt, store, did, record, claim, finish)
        except Exception:
            # Redis failed under the attempt: its lease runs out and the due set hands it out again
            log.exception("delivery %s: attempt %d not recorded", did, claim.attempt)
        if not queued:
            self.slots.release()
            future.set_result("error")


_OUTCOMES = {"delivered": "delivered", "pending": "retrying", "failed": "failed", "cancelled": "cancelled"}


@dataclass(frozen=True)
class _Finish:
    store: DeliveryStore
    did: str
    claim: Claim
    state: str
    details: dict
    future: Future


class Finisher:
    """One thread that records the ends of attempts from every sending thread, as many per
    call as arrive within GATHER of the first (DeliveryStore.finish_many). A sending thread
    goes on to its next delivery at once; its slot is freed when the end is recorded, so a
    subscriber's next delivery (deferred behind the busy lock that the finish frees) never
    overtakes it."""

    MAX_PER_ROUND_TRIP = 64

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self.slots = slots
        self.queue: SimpleQueue[_Finish] = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="pressroom-finish", daemon=True)
        self.thread.start()

    def put(self, item: _Finish) -> None:
        self.queue.put(item)

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            deadline = time.monotonic() + GATHER
            while len(items) < self.MAX_PER_ROUND_TRIP:
                try:
                    items.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except Empty:
                    break
            for store, group in groupby(items, key=lambda item: item.store):
                self._record(store, list(group))

    def _record(self, store: DeliveryStore, group: list[_Finish]) -> None:
        try:
            store.finish_many([(i.did, i.claim, i.state, i.details) for i in group])
            outcomes = [_OUTCOMES.get(i.state, i.state) for i in group]
        except Exception:
            log.exception("%d attempts not recorded; their leases run out and they are tried again", len(group))
            outcomes = ["error"] * len(group)
        for item, outcome in zip(group, outcomes, strict=True):
            self.slots.release()
            item.future.set_result(outcome)


_senders: dict[int, Sender] = {}
_senders_lock = threading.Lock()


def sender(threads: int = THREADS) -> Sender:
    """This process's Sender (a forked child makes its own: threads do not survive a fork)."""
    with _senders_lock:
        current = _senders.get(os.getpid())
        if current is None:
            _senders.clear()
            current = _senders[os.getpid()] = Sender(threads)
        return current


def deliver_batch(rt: Runtime, dids: list[str], pool: Sender | None = None) -> dict[str, int]:
    """Attempt every due delivery of `dids`; returns how many ended how: 'delivered', 'retrying',
    'failed', 'cancelled'; 'sending' (still in flight after SLOW_AFTER), 'handed back'; and what
    was not attempted: 'busy', 'early', 'deferred', 'missing', 'already delivered' (or failed, cancelled).
    Safe to run twice or concurrently with itself: each attempt needs its claim."""
    pool = pool or sender()
    store = DeliveryStore(rt.redis)
    outcomes: Counter[str] = Counter()
    records = store.get_many(list(dict.fromkeys(dids)))
    todo: deque[str] = deque()
    for did, record in records.items():
        if record is None:
            outcomes["missing"] += 1
        elif record["state"] in TERMINAL:
            outcomes[f"already {record['state']}"] += 1
        else:
            todo.append(did)
    started: list[Future] = []
    while todo:
        free = pool.take(len(todo), HAND_BACK_AFTER)
        if not free:
            store.hand_back(list(todo))
            outcomes["handed back"] += len(todo)
            log.warning("every sending thread busy for %.0f s: %d deliveries handed back", HAND_BACK_AFTER, len(todo))
            break
        chunk = {did: records[did] for did in (todo.popleft() for _ in range(free))}
        try:
            claims = store.claim_many(chunk, deliveries.LEASE_SECONDS)
        except BaseException:
            pool.give_back(free)
            raise
        for did, claim in claims.items():
            if claim.outcome == "claimed":
                started.append(pool.start(rt, store, did, chunk[did], claim))
            else:
                pool.give_back(1)
                outcomes[f"already {claim.outcome}" if claim.outcome in TERMINAL else claim.outcome] += 1
    done, running = wait(started, timeout=SLOW_AFTER)
    outcomes.update(f.result() for f in done)
    if running:
        outcomes["sending"] += len(running)
    return dict(outcomes)


def wait_idle(pool: Sender | None = None, timeout: float = 30.0) -> bool:
    """Wait until no delivery of this process is in flight (for tests and an orderly stop)."""
    pool = pool or sender()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = pool.take(pool.threads, 0.05)
        pool.give_back(taken)
        if taken == pool.threads:
            return True
        time.sleep(0.02)
    return False
