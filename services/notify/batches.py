"""Many deliveries per task: read and claim them in bulk, send them without a thread each.

One Celery task per delivery capped throughput at the broker's task rate, whatever the
network could do. A `notify.deliver_batch` task takes up to dispatch.BATCH delivery ids;
they are claimed (one script call per chunk, which reads the records too) only as delivery
slots become free (IN_FLIGHT per process). Each claimed webhook is handed
to the process's non-blocking HTTP client (shared.netloop, through
services.notify.transports.webhook), which sends every POST of the process from one thread
over kept-alive connections: sixteen threads each blocked on a POST spent twice the CPU of
the POSTs themselves handing the GIL around. An email is sent in a thread of its own. Each
answer goes to one Finisher thread, which concludes the attempt (deliveries.conclude) and
records the ends of attempts, as many per call as are waiting. Both a claim and a finish
wait up to GATHER (2 ms) for more of their kind: a Redis call costs the worker more CPU
than anything else an attempt does besides its POST, and a few calls of many cost far less
than many of one or two.

Isolation of slow subscribers: the slots belong to the worker process, not to a task. A
delivery holds one slot for at most its transport's deadline (15 s for a webhook). The
Celery task waits for none of its deliveries: once each is claimed and started it returns
and the process takes its next task, whose claims wait for free slots, so a batch's last
slow answers never leave the process idle (`deliver_batch` called directly waits up to
SLOW_AFTER and reports what happened). A task that finds no slot free for
HAND_BACK_AFTER seconds (every one held by slow endpoints) claims nothing more: the rest
of its batch goes back to the due set, due at once, for another process. A delivery is
claimed only when a slot is free to send it, so its lease
(deliveries.LEASE_SECONDS) starts when the attempt does."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from queue import Empty, SimpleQueue

from services.notify import deliveries
from services.notify.transports import DeliveryError, Result
from shared.deliveries import TERMINAL, Claim, DeliveryStore
from shared.forks import per_process
from shared.runtime import Runtime

log = logging.getLogger("pressroom.notify")

IN_FLIGHT = 64  # deliveries in flight per worker process
EMAIL_THREADS = 16  # of those, emails being sent at once (each holds a thread and an SMTP connection)
HAND_BACK_AFTER = 1.0
SLOW_AFTER = 2.0
DRAIN_SECONDS = 20.0  # a stopping process waits this long for its deliveries in flight (webhooks end within 15 s)
GATHER = 0.002  # how long a claim or a finish waits for more of its kind to share its Redis call


class Sender:
    """The delivery slots of one process (how many attempts may be in flight), the threads
    that send emails, and the thread that concludes attempts and records their ends (Finisher).
    Webhooks take no thread of their own: the process's HTTP client (shared.netloop) sends them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.slots = threading.BoundedSemaphore(size)
        self.executor = ThreadPoolExecutor(min(size, EMAIL_THREADS), thread_name_prefix="pressroom-email")
        self.finisher = Finisher(self.slots)

    def take(self, wanted: int, wait_seconds: float, gather: float = GATHER) -> int:
        """Reserve up to `wanted` free slots, waiting up to `wait_seconds` for the first and,
        if fewer are free, `gather` seconds for more (one claim call for several costs little
        more than for one); returns how many. It sleeps rather than waits on the slots, so the
        slots freed meanwhile wake nobody."""
        if wanted <= 0 or not self.slots.acquire(timeout=wait_seconds):
            return 0
        taken = 1
        while taken < wanted and self.slots.acquire(blocking=False):
            taken += 1
        if taken < wanted and gather > 0:
            time.sleep(gather)
            while taken < wanted and self.slots.acquire(blocking=False):
                taken += 1
        return taken

    def give_back(self, count: int) -> None:
        for _ in range(count):
            self.slots.release()

    def start(self, rt: Runtime, did: str, claim: Claim, tally: Tally) -> None:
        """Send one claimed delivery in a reserved slot. The slot is freed, and the outcome
        counted in `tally` (which counted it as running), once the attempt's end is recorded."""

        def finish(did: str, claim: Claim, state: str, **details) -> None:
            self.finisher.put(_Finish(rt, did, claim, state, details, tally))

        def done(result: Result | DeliveryError) -> None:
            self.finisher.put(_Conclude(rt, ready, result, tally))

        try:
            ready = deliveries.begin(did, claim, finish)
            if isinstance(ready, deliveries.Attempt):
                if ready.sub.channel == "webhook":
                    deliveries.start_webhook(rt.settings, ready, done)
                else:
                    self.executor.submit(self._send_and_wait, rt, ready, done, tally)
        except Exception:
            self._lost(did, claim, tally)

    def _send_and_wait(self, rt: Runtime, ready: deliveries.Attempt, done, tally: Tally) -> None:
        try:
            result: Result | DeliveryError = deliveries.send(rt.settings, ready.sub, ready.claim.event, ready.did)
        except DeliveryError as exc:
            result = exc
        except Exception:
            return self._lost(ready.did, ready.claim, tally)
        return done(result)

    def _lost(self, did: str, claim: Claim, tally: Tally) -> None:
        # its lease runs out and the due set hands it out again
        log.exception("delivery %s: attempt %d not recorded", did, claim.attempt)
        self.slots.release()
        tally.end(["error"])


class Tally:
    """The outcomes of one batch's attempts, counted as their ends are recorded (one lock a
    batch, not a future a delivery: the count is all a caller waits for)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.running = 0
        self._changed = threading.Condition()

    def add(self, count: int) -> None:
        with self._changed:
            self.running += count

    def end(self, outcomes: list[str]) -> None:
        with self._changed:
            self.outcomes.update(outcomes)
            self.running -= len(outcomes)
            if not self.running:
                self._changed.notify_all()

    def wait(self, timeout: float) -> tuple[Counter[str], int]:
        """The outcomes so far and how many are still running, once none is or `timeout` passed."""
        with self._changed:
            if timeout > 0:
                self._changed.wait_for(lambda: not self.running, timeout)
            return Counter(self.outcomes), self.running


_OUTCOMES = {"delivered": "delivered", "pending": "retrying", "failed": "failed", "cancelled": "cancelled"}


@dataclass(slots=True)
class _Finish:
    rt: Runtime
    did: str
    claim: Claim
    state: str
    details: dict
    tally: Tally


@dataclass(slots=True)
class _Conclude:
    rt: Runtime
    attempt: deliveries.Attempt
    result: Result | DeliveryError
    tally: Tally


class Finisher:
    """One thread that concludes sent attempts (deliveries.conclude: the retry decision, the
    subscriber's failure count) and records the ends of attempts, as many per call as arrive
    within GATHER of the first (DeliveryStore.finish_many). Neither the HTTP client's thread
    nor an email thread waits on Redis; a slot is freed when its end is recorded, so a
    subscriber's next delivery (deferred behind the busy lock that the finish frees) never
    overtakes it."""

    MAX_PER_ROUND_TRIP = 64

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self.slots = slots
        self.queue: SimpleQueue[_Finish | _Conclude] = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="pressroom-finish", daemon=True)
        self.thread.start()

    def put(self, item: _Finish | _Conclude) -> None:
        self.queue.put(item)

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            time.sleep(GATHER)  # not a wait on the queue: the items put meanwhile wake nobody
            while len(items) < self.MAX_PER_ROUND_TRIP:
                try:
                    items.append(self.queue.get_nowait())
                except Empty:
                    break
            ends = [end for item in items for end in (self._conclude(item) if isinstance(item, _Conclude) else [item])]
            for rt, group in groupby(ends, key=lambda item: item.rt):
                self._record(rt.own(DeliveryStore), list(group))  # on the finisher's own connection

    def _conclude(self, item: _Conclude) -> list[_Finish]:
        ends: list[_Finish] = []

        def finish(did: str, claim: Claim, state: str, **details) -> None:
            ends.append(_Finish(item.rt, did, claim, state, details, item.tally))

        try:
            deliveries.conclude(item.rt, item.attempt, item.result, finish)
        except Exception:
            log.exception("delivery %s: attempt %d not concluded", item.attempt.did, item.attempt.claim.attempt)
            if not ends:  # its lease runs out and the due set hands it out again
                self.slots.release()
                item.tally.end(["error"])
        return ends

    def _record(self, store: DeliveryStore, group: list[_Finish]) -> None:
        try:
            store.finish_many([(i.did, i.claim, i.state, i.details) for i in group])
            outcomes = [_OUTCOMES.get(i.state, i.state) for i in group]
        except Exception:
            log.exception("%d attempts not recorded; their leases run out and they are tried again", len(group))
            outcomes = ["error"] * len(group)
        self.slots.release(len(group))
        ended: dict[Tally, list[str]] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            ended.setdefault(item.tally, []).append(outcome)
        for tally, each in ended.items():
            tally.end(each)


@per_process
def sender() -> Sender:
    """This process's Sender."""
    return Sender(IN_FLIGHT)


def deliver_batch(
    rt: Runtime, dids: list[str], pool: Sender | None = None, wait_seconds: float = SLOW_AFTER
) -> dict[str, int]:
    """Attempt every due delivery of `dids`; returns how many ended how: 'delivered', 'retrying',
    'failed', 'cancelled'; 'sending' (still in flight after `wait_seconds`; 0 returns once
    all are started), 'handed back'; and what was not attempted:
    'busy', 'early', 'deferred', 'missing', 'already delivered' (or failed, cancelled).
    Safe to run twice or concurrently with itself: each attempt needs its claim."""
    pool = pool or sender()
    store = rt.own(DeliveryStore)
    outcomes: Counter[str] = Counter()
    tally = Tally()
    todo: deque[str] = deque(dict.fromkeys(dids))
    while todo:
        free = pool.take(len(todo), HAND_BACK_AFTER)
        if not free:
            store.hand_back(list(todo))
            outcomes["handed back"] += len(todo)
            log.warning("every delivery slot busy for %.0f s: %d deliveries handed back", HAND_BACK_AFTER, len(todo))
            break
        chunk = [todo.popleft() for _ in range(free)]
        try:
            claims = store.claim_many(chunk, deliveries.LEASE_SECONDS)
        except BaseException:
            pool.give_back(free)
            raise
        tally.add(sum(claim.outcome == "claimed" for claim in claims.values()))
        for did, claim in claims.items():
            if claim.outcome == "claimed":
                pool.start(rt, did, claim, tally)
            else:
                pool.give_back(1)
                outcomes[f"already {claim.outcome}" if claim.outcome in TERMINAL else claim.outcome] += 1
    ended, running = tally.wait(wait_seconds)
    outcomes.update(ended)
    if running:
        outcomes["sending"] += running
    return dict(outcomes)


def drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Before the process exits, let its deliveries in flight end and be recorded (a process
    that sent nothing has nothing to wait for). One cut off is sent again when its lease
    lapses, with the same webhook-id."""
    pool = sender.existing()
    return pool is None or wait_idle(pool, timeout)


def wait_idle(pool: Sender | None = None, timeout: float = 30.0) -> bool:
    """Wait until no delivery of this process is in flight (for tests and an orderly stop)."""
    pool = pool or sender()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = pool.take(pool.size, 0.05)
        pool.give_back(taken)
        if taken == pool.size:
            return True
        time.sleep(0.02)
    return False
