"""netguard's requests, many at once from one thread: the client for bulk outbound HTTP.

Sixteen threads each blocked on its own POST spend more CPU handing the GIL to one another
than on the requests (0.44-0.60 ms of client CPU a webhook POST against 0.21-0.27 ms from
one thread, bench/notify.py). A `Client` owns one thread that drives every request of its
process over non-blocking sockets (selectors): a request is handed in with a callback and
costs no thread while it waits for its receiver. Requests are framed, and answers parsed
by llhttp, as `shared/http1.py` does it for both of Pressroom's HTTP clients (this and
s3_put). A webhook POST costs 0.10-0.14 ms of CPU.

The guard and the limits are netguard's: a new connection is made only to addresses that
`netguard.check_url` accepted (names are resolved on a helper thread, never in the loop),
to exactly the checked address (DNS rebinding cannot redirect it), with the hostname in
`Host`, TLS SNI and the certificate check. Every request ends within its `total_timeout`,
reads at most `max_bytes`, follows no redirect. Answered connections are kept per origin
(scheme, host, port, allowed networks, TLS context) for the next request, at most
`per_origin` idle ones and `max_idle` in all (the longest idle is closed to make room: a
worker that reaches thousands of subscribers' hosts must not hold a socket for each of
them), each closed once idle for `idle_seconds` or older than `max_age`.
At most `connections_per_origin` are open to one origin at a time (None: no limit): a
request beyond them waits, within its own deadline, for the next connection that an
answer frees, and is sent on it at once. A receiver then has as many connections to serve
as the sender has use for, not one per request in flight: each thread a threaded server
adds for a connection makes every request it serves dearer.
A request whose kept connection turns out closed before any answer is sent once more on
a new one (the server cannot have acted on it); one that got any answer, even one that is
not HTTP, is never sent twice.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

import httptools

from shared import netguard
from shared.http1 import Answer, request_bytes
from shared.netguard import DeadlineExceeded, FetchError, IPAddress, IPNetwork, Response, ResponseTooLarge

log = logging.getLogger("pressroom.http")

Done = Callable[[Response | Exception], None]
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_FOREVER = float("inf")


class _Job:
    """One request from its hand-in to its callback."""

    __slots__ = ("url", "host", "port", "origin", "context", "allow_networks", "out", "head", "done",
                 "connect_timeout", "total_timeout", "max_bytes", "truncate", "started", "deadline", "retried",
                 "finished", "resolving")

    def __init__(self, url: str, done: Done, method: str, body: bytes | None, headers: dict[str, str],
                 allow_networks: tuple[IPNetwork, ...], connect_timeout: float, total_timeout: float,
                 max_bytes: int, truncate: bool, tls_context: ssl.SSLContext | None) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + total_timeout
        self.url, self.done = url, done
        self.allow_networks = tuple(allow_networks)
        self.connect_timeout, self.total_timeout = connect_timeout, total_timeout
        self.max_bytes, self.truncate = max_bytes, truncate
        self.retried = self.finished = self.resolving = False
        scheme, self.host, self.port, target, host_header = _destination(url)
        self.context = (tls_context or netguard.default_tls_context()) if scheme == "https" else None
        self.origin = (scheme, self.host, self.port, _networks_key(self.allow_networks),
                       id(self.context) if self.context else 0)
        self.out = request_bytes(method, target, host_header, body, headers)
        self.head = method == "HEAD"


_last_networks: tuple[tuple, str] = ((), "")


def _networks_key(networks: tuple[IPNetwork, ...]) -> str:
    """The allowed networks as text, for the origin key. An origin is looked up several times
    a request, and a tuple of ipaddress networks hashes in Python on every lookup (a str keeps
    its hash). Requests mostly pass one settings tuple: its text is kept (with the tuple, so
    the identity test cannot be fooled by a reused id)."""
    global _last_networks
    last = _last_networks
    if networks is last[0]:
        return last[1]
    key = " ".join(str(network) for network in networks)
    _last_networks = (networks, key)
    return key


@lru_cache(maxsize=1024)
def _destination(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, request target, Host header) of a URL, or InvalidURL. Cached: a
    process sends to a few URLs many times."""
    scheme, host, port, target = netguard.split_url(url)
    named = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        named = f"{named}:{port}"
    return scheme, host, port, target, named


class _Conn(Answer):
    """One socket: connecting, in its TLS handshake, carrying a request, or idle. It is also
    the parser's receiver of the answer (http1.Answer)."""

    __slots__ = ("sock", "origin", "host", "job", "state", "events", "out", "addresses", "opened_at",
                 "connect_deadline", "idle_since", "reused")

    def __init__(self, sock: socket.socket, job: _Job, addresses: list[IPAddress], connect_deadline: float) -> None:
        self.sock: socket.socket = sock
        self.origin, self.host, self.job = job.origin, job.host, job
        self.addresses, self.connect_deadline = addresses, connect_deadline
        self.state, self.events, self.out = "connecting", _WRITE, memoryview(b"")
        self.opened_at = self.idle_since = time.monotonic()
        self.reused = False
        self.expect(job.max_bytes, job.head)


class Client:
    """One process's non-blocking HTTP client (see the module docstring). Thread-safe to hand
    requests to; a forked child must make its own (the loop thread does not survive a fork)."""

    def __init__(self, per_origin: int = 16, idle_seconds: float = 30.0, max_age: float = 300.0,
                 resolvers: int = 2, connections_per_origin: int | None = None, max_idle: int = 256) -> None:
        self.per_origin, self.idle_seconds, self.max_age = per_origin, idle_seconds, max_age
        self.max_idle = max_idle
        self.connections_per_origin = connections_per_origin
        self.opened = 0  # new connections made (tests and benchmarks read it)
        self._inbox: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._asleep = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, _READ, None)
        self._conns: set[_Conn] = set()
        self._idle: dict[tuple, list[_Conn]] = {}
        self._idle_order: dict[_Conn, None] = {}  # every idle connection, the longest idle first
        self._open: dict[tuple, int] = {}  # connections per origin, and names being resolved for one
        self._waiting: dict[tuple, deque[_Job]] = {}  # requests waiting for a connection to their origin
        self._next_check = _FOREVER
        self._resolvers = ThreadPoolExecutor(resolvers, thread_name_prefix="pressroom-resolve")
        self._thread = threading.Thread(target=self._run, name="pressroom-http", daemon=True)
        self._thread.start()

    def request(
        self, url: str, done: Done, *, method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None, allow_networks: tuple[IPNetwork, ...] = (),
        connect_timeout: float = 5.0, total_timeout: float = 15.0, max_bytes: int = 10 * 1024 * 1024,
        truncate: bool = False, tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Send a request; `done` is called once, on the loop thread, with the Response (any
        status) or the exception netguard.fetch would raise (InvalidURL, BlockedAddress,
        ResponseTooLarge, DeadlineExceeded, FetchError). `done` must not block: it holds up
        every other request of the process."""
        try:
            job = _Job(url, done, method, body, headers or {}, allow_networks, connect_timeout, total_timeout,
                       max_bytes, truncate, tls_context)
        except (netguard.InvalidURL, ValueError) as exc:
            self._call_soon(partial(_finish, done, exc))
            return
        self._call_soon(partial(self._guarded, job, self._start, job))

    def fetch(self, url: str, total_timeout: float = 15.0, **kwargs) -> Response:
        """`request` for a caller that waits: returns the Response or raises its exception."""
        ready = threading.Event()
        box: list = []
        self.request(url, lambda result: (box.append(result), ready.set()), total_timeout=total_timeout, **kwargs)
        if not ready.wait(total_timeout + 10.0):  # the loop ends every request by its deadline; this is a backstop
            raise DeadlineExceeded(total_timeout)
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def open_count(self, host: str | None = None) -> int:
        """Open connections (to `host`), idle or not; a snapshot, as idle_count."""
        return sum(n for origin, n in list(self._open.items()) if host is None or origin[1] == host)

    def idle_count(self, host: str | None = None) -> int:
        """Idle kept connections (to `host`); read from another thread, so only a snapshot."""
        return sum(len(conns) for origin, conns in list(self._idle.items()) if host is None or origin[1] == host)

    # -- the loop thread --------------------------------------------------------------------

    def _call_soon(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._inbox.append(fn)
            wake, self._asleep = self._asleep, False
        if wake:
            with contextlib.suppress(BlockingIOError):  # a wake-up is already waiting
                self._wake_w.send(b"\0")

    def _run(self) -> None:
        while True:
            try:
                self._turn()
            except Exception:  # a bug must not stop every request of the process
                log.exception("HTTP loop")

    def _turn(self) -> None:
        with self._lock:
            calls, self._inbox = self._inbox, []
            self._asleep = not calls
        for call in calls:
            call()
        timeout = 0.0 if calls else max(0.0, self._next_check - time.monotonic())
        events = self._selector.select(None if timeout == _FOREVER else timeout)
        with self._lock:
            self._asleep = False
        for key, mask in events:
            conn = key.data
            if conn is None:
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(4096):
                        pass
            elif conn in self._conns:
                job = conn.job
                if job is None:
                    try:
                        self._ready(conn, mask)
                    except Exception:
                        log.exception("HTTP idle connection to %s", conn.host)
                        self._close(conn)
                else:
                    self._guarded(job, self._ready, conn, mask)
        if self._waiting:
            self._admit()
        if time.monotonic() >= self._next_check:
            self._sweep(time.monotonic())

    def _start(self, job: _Job) -> None:
        if time.monotonic() >= job.deadline:
            return self._end(job, DeadlineExceeded(job.total_timeout))
        conn = None if job.retried else self._take_idle(job.origin)
        if conn is not None:
            conn.reused = True
            return self._send(conn, job)
        cap = self.connections_per_origin
        if cap is not None and self._open.get(job.origin, 0) >= cap:
            self._waiting.setdefault(job.origin, deque()).append(job)
            self._next_check = min(self._next_check, job.deadline)
            return None
        try:
            ipaddress.ip_address(job.host)
        except ValueError:  # a name: resolved off the loop, it can take seconds
            self._count(job.origin, 1)
            job.resolving = True
            self._resolvers.submit(self._resolve, job)
            return None
        try:
            addresses = netguard.check_url(job.url, job.allow_networks)
        except Exception as exc:
            return self._end(job, exc)
        return self._connect(job, addresses)

    def _resolve(self, job: _Job) -> None:
        try:
            dns_timeout = min(job.connect_timeout, job.deadline - time.monotonic())
            if dns_timeout <= 0:
                raise DeadlineExceeded(job.total_timeout)
            addresses = netguard.check_url(job.url, job.allow_networks, dns_timeout=dns_timeout)
        except Exception as exc:
            self._call_soon(partial(self._end, job, exc))
            return
        self._call_soon(partial(self._guarded, job, self._resolved, job, addresses))

    def _resolved(self, job: _Job, addresses: list[IPAddress]) -> None:
        self._unresolve(job)
        self._connect(job, addresses)

    def _unresolve(self, job: _Job) -> None:
        """The name is resolved (or the request ended): its place among the origin's connections
        passes to the connection it opens, if any."""
        if job.resolving:
            job.resolving = False
            self._count(job.origin, -1)

    def _count(self, origin: tuple, change: int) -> None:
        left = self._open.get(origin, 0) + change
        if left > 0:
            self._open[origin] = left
        else:
            self._open.pop(origin, None)

    def _connect(self, job: _Job, addresses: list[IPAddress], last_error: Exception | None = None) -> None:
        """Open a connection to the first of `addresses` that takes one (each checked already)."""
        addresses = list(addresses)
        while addresses:
            address = addresses.pop(0)
            now = time.monotonic()
            if now >= job.deadline:
                return self._end(job, DeadlineExceeded(job.total_timeout))
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # out of file descriptors, say: a failed connection, as in netguard
                last_error = exc
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex((str(address), job.port))
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                sock.close()
                last_error = OSError(code, errno.errorcode.get(code, str(code)))
                continue
            conn = _Conn(sock, job, addresses, min(now + job.connect_timeout, job.deadline))
            self._conns.add(conn)
            self._count(conn.origin, 1)
            self._selector.register(sock, _WRITE, conn)
            self._next_check = min(self._next_check, conn.connect_deadline)
            return None
        kind = "timed out" if isinstance(last_error, TimeoutError) else "failed"
        return self._end(job, FetchError(f"connection to {job.host}:{job.port} {kind}: {last_error}"))

    def _ready(self, conn: _Conn, mask: int) -> None:
        if conn.state == "connecting":
            code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                return self._retry_connect(conn, OSError(code, errno.errorcode.get(code, str(code))))
            self.opened += 1
            if conn.job.context is None:
                return self._send(conn, conn.job)
            self._selector.unregister(conn.sock)
            conn.sock = conn.job.context.wrap_socket(conn.sock, server_hostname=conn.host,
                                                     do_handshake_on_connect=False)
            self._selector.register(conn.sock, conn.events, conn)
            conn.state = "handshake"
            return self._handshake(conn)
        if conn.state == "handshake":
            return self._handshake(conn)
        if conn.state == "sending":
            return self._write(conn)
        return self._read(conn)

    def _retry_connect(self, conn: _Conn, error: Exception) -> None:
        job, addresses = conn.job, conn.addresses
        self._close(conn)
        self._connect(job, addresses, error)

    def _handshake(self, conn: _Conn) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            return self._want(conn, _READ)
        except ssl.SSLWantWriteError:
            return self._want(conn, _WRITE)
        except ssl.SSLCertVerificationError as exc:
            job = conn.job
            self._close(conn)
            message = f"TLS certificate of {job.host} is not valid: {exc.verify_message}"
            return self._end(job, FetchError(message, transient=False))
        except (OSError, ssl.SSLError) as exc:
            return self._retry_connect(conn, exc)
        return self._send(conn, conn.job)

    def _send(self, conn: _Conn, job: _Job) -> None:
        conn.job, conn.state = job, "sending"
        conn.expect(job.max_bytes, job.head)
        conn.out = memoryview(job.out)
        self._next_check = min(self._next_check, job.deadline)
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, ssl.SSLWantWriteError):
            return self._want(conn, _WRITE)
        except ssl.SSLWantReadError:
            return self._want(conn, _READ)
        except OSError as exc:
            return self._broken(conn, exc)
        conn.out = conn.out[sent:]
        if conn.out:
            return self._want(conn, _WRITE)
        conn.state = "receiving"
        return self._want(conn, _READ)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
            if data and isinstance(conn.sock, ssl.SSLSocket):
                while conn.sock.pending():
                    data += conn.sock.recv(conn.sock.pending())
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        except ssl.SSLWantWriteError:
            return self._want(conn, _WRITE)
        except OSError as exc:
            return self._broken(conn, exc) if conn.job else self._close(conn)
        if conn.state == "idle":  # an idle connection that speaks was closed by its server (or is out of step)
            return self._close(conn)
        if not data:
            if not conn.answered:
                return self._broken(conn, ConnectionError("RemoteDisconnected: closed without an answer"))
            if conn.until_close():
                return self._answered(conn, keep=False)
            return self._broken(conn, ConnectionError("closed in the middle of the answer"))
        try:
            conn.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return self._broken(conn, FetchError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if conn.complete:  # bytes after a whole answer (see on_message_begin): it stands, the connection goes
                return self._answered(conn, keep=False)
            conn.answered = True  # not HTTP, yet an answer: the server saw the request, it is not sent again
            return self._broken(conn, exc)
        job = conn.job
        if conn.answered and not job.truncate:
            declared = conn.headers.get("content-length", "")
            if conn.size > job.max_bytes or (declared.isdigit() and int(declared) > job.max_bytes):
                return self._give_up(conn, ResponseTooLarge(job.max_bytes))
        if conn.size > job.max_bytes:
            return self._answered(conn, keep=False)  # the rest of the answer is still on the wire
        if conn.complete:
            return self._answered(conn, keep=conn.keep)
        return None

    def _answered(self, conn: _Conn, keep: bool) -> None:
        job = conn.job
        response = Response(conn.status, conn.headers, conn.body, time.monotonic() - job.started, job.url)
        conn.job, conn.chunks = None, []
        if keep:
            self._keep(conn)
        else:
            self._close(conn)
        self._end(job, response)

    def _broken(self, conn: _Conn, exc: Exception) -> None:
        """The connection failed under a request: sent again on a new connection if a kept one
        was closed before any answer (the server could not have acted on it), failed otherwise."""
        job = conn.job
        self._close(conn)
        if conn.reused and not conn.answered and not job.retried:
            job.retried = True
            return self._start(job)
        return self._end(job, FetchError(f"{type(exc).__name__} talking to {job.host}: {exc}"))

    def _give_up(self, conn: _Conn, exc: Exception) -> None:
        job = conn.job
        self._close(conn)
        self._end(job, exc)

    def _end(self, job: _Job, result: Response | Exception) -> None:
        self._unresolve(job)
        if not job.finished:  # once, whatever path a failure took
            job.finished = True
            _finish(job.done, result)

    def _guarded(self, job: _Job, step: Callable, *args) -> None:
        """Run a step of `job`; a bug in it fails the request instead of losing it."""
        try:
            step(*args)
        except Exception as exc:
            log.exception("HTTP request to %s", job.host)
            for conn in [c for c in self._conns if c.job is job]:
                self._close(conn)
            self._end(job, FetchError(f"{type(exc).__name__}: {exc}"))

    def _want(self, conn: _Conn, events: int) -> None:
        if conn.events != events:
            self._selector.modify(conn.sock, events, conn)
            conn.events = events

    def _keep(self, conn: _Conn) -> None:
        now = time.monotonic()
        if now - conn.opened_at > self.max_age:
            return self._close(conn)
        waiting = self._waiting.get(conn.origin)
        while waiting:  # a request waits for this origin: it takes the connection now
            job = waiting.popleft()
            if not waiting:
                del self._waiting[conn.origin]
            if now < job.deadline:
                conn.reused = True
                return self._guarded(job, self._send, conn, job)
            self._end(job, DeadlineExceeded(job.total_timeout))
        if len(self._idle.get(conn.origin, ())) >= self.per_origin or self.max_idle < 1:
            return self._close(conn)
        if len(self._idle_order) >= self.max_idle:  # the longest idle makes room
            self._close(next(iter(self._idle_order)))
        conn.state, conn.idle_since, conn.reused = "idle", now, False
        self._want(conn, _READ)
        self._idle.setdefault(conn.origin, []).append(conn)
        self._idle_order[conn] = None
        self._next_check = min(self._next_check, now + self.idle_seconds, conn.opened_at + self.max_age)
        return None

    def _take_idle(self, origin: tuple) -> _Conn | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not idle:
                del self._idle[origin]
            if now - conn.idle_since <= self.idle_seconds and now - conn.opened_at <= self.max_age:
                del self._idle_order[conn]
                return conn
            self._close(conn)
        return None

    def _close(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self._count(conn.origin, -1)
        if conn.state == "idle":
            self._idle_order.pop(conn, None)
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
                if not idle:
                    del self._idle[conn.origin]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _admit(self) -> None:
        """Start the waiting requests whose origins have room for another connection."""
        cap = self.connections_per_origin
        for origin in list(self._waiting):
            waiting = self._waiting.get(origin)
            while waiting and (cap is None or self._open.get(origin, 0) < cap or self._idle.get(origin)):
                job = waiting.popleft()
                self._guarded(job, self._start, job)
                if waiting and waiting[-1] is job:  # it found no room after all and waits again
                    break
            if not waiting:
                self._waiting.pop(origin, None)

    def _sweep(self, now: float) -> None:
        """Fail requests past their deadline, move on from connects past theirs, close stale idle ones."""
        upcoming, self._next_check = _FOREVER, _FOREVER  # what runs below may lower it
        for origin, waiting in list(self._waiting.items()):
            for job in [job for job in waiting if now >= job.deadline]:
                waiting.remove(job)
                self._end(job, DeadlineExceeded(job.total_timeout))
            if waiting:
                upcoming = min(upcoming, min(job.deadline for job in waiting))
            else:
                self._waiting.pop(origin, None)
        for conn in list(self._conns):
            if conn not in self._conns:
                continue
            if conn.state == "idle":
                expires = min(conn.idle_since + self.idle_seconds, conn.opened_at + self.max_age)
                if now >= expires:
                    self._close(conn)
                else:
                    upcoming = min(upcoming, expires)
                continue
            job = conn.job
            if now >= job.deadline:
                self._give_up(conn, DeadlineExceeded(job.total_timeout))
            elif conn.state in ("connecting", "handshake") and now >= conn.connect_deadline:
                self._retry_connect(conn, TimeoutError("timed out"))
            elif conn.state in ("connecting", "handshake"):
                upcoming = min(upcoming, conn.connect_deadline)
            else:
                upcoming = min(upcoming, job.deadline)
        self._next_check = min(self._next_check, upcoming)


def _finish(done: Done, result: Response | Exception) -> None:
    try:
        done(result)
    except Exception:
        log.exception("HTTP request callback")
