"""Notify benchmark: webhook deliveries per second and fan-out time, each against a baseline.

1. Deliveries: 10,000 webhook subscriptions on one topic, all pointing at a local
   receiver (its own process, 127.0.0.1, HTTP/1.1 keep-alive). One `notify.article_event`
   task goes to real notify workers (`pressroom worker notify`, prefork) and the
   scheduler; the clock stops when the receiver has answered every delivery. The baseline
   it is held to: a bare loop of the same signed POSTs through the client Pressroom sends
   webhooks with (shared.netloop: one non-blocking loop thread, the SSRF guard on every
   new connection), as many in flight as a worker process has slots (64). The two
   alternate for --rounds rounds (a new event each round), so that the machine's drift hits
   both; the median of the rounds' ratios is the result. Other baselines, once: the same POSTs
   from 1 and 16 blocking threads over plain kept-alive http.client connections (the threaded sender
   Pressroom had before), and through netguard.fetch with a new connection per POST (the
   client before batching); and the floor that one Celery task per delivery would set: as
   many `notify.deliver` tasks that find no delivery, through the same workers.
2. Fan-out: 100,000 subscriptions that follow the article's topics, beside 25,000 that
   follow others; the time to match and create every delivery record (the functions the
   fan-out task runs, in this process, on a real Redis), against reading every
   subscription once (what matching without the index would have to do at the least).

With `--compare DIR`, the notify workers and scheduler of another Pressroom checkout
(`git worktree add DIR REV`) run beside this one's on a Redis database of their own with
the same subscriptions, and deliver an event of their own in every round (which of the two
goes first alternates): a change measured against the code before it at the same moment.

Only 127.0.0.1 is used. Run: `.venv/bin/python bench/notify.py` (options: --help).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import http.client
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from _common import BenchFailure, Children, wait_until

from pressroom import processes
from services.notify import batches, matching
from services.notify.transports import webhook
from shared import netguard, netloop, tasknames
from shared.celery_app import create_celery
from shared.deliveries import delivery_key, event_key, webhook_id
from shared.runtime import Runtime
from shared.settings import Settings, parse_webhook_secret
from shared.subscriptions import ALL_SUBSCRIPTIONS, Subscription, SubscriptionStore, _index, sub_key

LOOPBACK = "127.0.0.0/8"
BARE_THREADS = (1, 16)


def receiver_main(ports: list[int]) -> None:
    """The receiver process: answers 204 to every POST on any of its ports, counts them; GET
    /count tells the count, GET /wait?n=N answers it once it reaches N (so a round ends when
    its last POST is answered, not at the next poll). Each port is a receiver host of its own
    to the sender (an origin)."""
    count = 0
    lock = threading.Lock()
    reached = threading.Condition(lock)
    awaited = [math.inf]  # the count a /wait waits for

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as most webhook receivers

        def log_message(self, *args):
            pass

        def do_POST(self):
            nonlocal count
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                count += 1
                if count >= awaited[0]:
                    reached.notify_all()
            self.send_response(204)
            self.end_headers()

        def do_GET(self):
            if self.path.startswith("/wait?n="):
                want = int(self.path.removeprefix("/wait?n="))
                with reached:
                    awaited[0] = want
                    reached.wait_for(lambda: count >= want, timeout=600)
                    awaited[0] = math.inf
            body = str(count).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # listen()'s backlog, read in the constructor: 5 dropped SYNs for a second

    for port in ports[1:]:
        threading.Thread(target=Server(("127.0.0.1", port), Handler).serve_forever, daemon=True).start()
    Server(("127.0.0.1", ports[0]), Handler).serve_forever()


def received(url: str) -> int:
    return int(netguard.fetch(url + "/count", allow_networks=(_loopback(),)).body)


def wait_received(url: str, count: int, timeout: float = 600) -> None:
    """Return once the receiver has answered `count` POSTs in all (it answers the wait then)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout + 10)
    try:
        conn.request("GET", f"/wait?n={count}")
        got = int(conn.getresponse().read())
    finally:
        conn.close()
    if got < count:
        raise BenchFailure(f"timed out after {timeout:.0f}s waiting for every delivery ({got} of {count})")


def _loopback():
    import ipaddress

    return ipaddress.ip_network(LOOPBACK)


def event(topics: list[str]) -> dict:
    aid = "a" + uuid.uuid4().hex[:20]
    return {
        "type": "article.published", "timestamp": "2026-11-27T10:00:00+00:00", "id": aid, "uri": f"urn:bench:{aid}",
        "version": 1, "headline": "Israeli Defence Minister visits Georgia and Azerbaijan", "summary": "",
        "url": f"https://news.example.test/{aid}/", "topics": topics, "language": "en",
    }


def bulk_subscribe(rt: Runtime, url: str | list[str], count: int, topics: list[str]) -> list[tuple[str, str]]:
    """Store `count` webhook subscriptions quickly (pipelined), to `url` or to each of a list of
    URLs in turn; returns (id, secret) pairs."""
    urls = [url] if isinstance(url, str) else url
    store = SubscriptionStore(rt.redis)
    out = []
    pipe = rt.redis.pipeline(transaction=False)
    now = time.time()
    for n in range(count):
        sid = "s" + uuid.uuid4().hex[:20]
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        sub = Subscription(id=sid, channel="webhook", target=urls[n % len(urls)], topics=topics,
                           events=["article.published", "article.updated", "article.withdrawn"], status="active",
                           created_at=now, updated_at=now, secrets=[{"secret": secret, "until": 0}],
                           unsubscribe_token=f"{sid}.x")
        pipe.hset(sub_key(sid), mapping=sub.to_hash())
        pipe.sadd(ALL_SUBSCRIPTIONS, sid)
        _index(pipe, sub, add=True)
        out.append((sid, secret))
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    assert store.get(out[0][0]).target == urls[0]
    return out


def signed_post(ev: dict, sid: str, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one subscriber's POST of `ev`, as the webhook transport makes them."""
    payload = webhook.body(ev)
    return payload, webhook.headers([parse_webhook_secret(secret)], webhook_id("d" + sid), payload)


def bare_loop(url: str, keys: list[tuple[str, str]], threads: int, keep_alive: bool = True) -> float:
    """The same signed POSTs from `threads` blocking threads, no Pressroom around them: kept
    alive, one plain http.client connection per thread (the client of a simple sender, guard
    paid once per connection so left out); otherwise through netguard.fetch, a new checked
    connection per POST. Returns seconds."""
    ev = event(["Defence"])
    allow = (_loopback(),)
    parts = urlsplit(url)
    local = threading.local()

    def post(item):
        payload, headers = signed_post(ev, *item)
        if not keep_alive:
            status = netguard.fetch(url, method="POST", body=payload, headers=headers, allow_networks=allow,
                                    connect_timeout=5, total_timeout=15, max_bytes=200, truncate=True).status
        else:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
            local.conn.request("POST", parts.path, body=payload, headers=headers)
            answer = local.conn.getresponse()
            answer.read(200)
            status = answer.status
        assert status == 204, status

    started = time.perf_counter()
    if threads == 1:
        for item in keys:
            post(item)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool_threads:
            list(pool_threads.map(post, keys))
    elapsed = time.perf_counter() - started
    kind = "kept-alive connection(s)" if keep_alive else "a new connection per POST"
    print(f"  bare loop, {threads} blocking thread(s), {kind}: {n_rate(len(keys), elapsed)} /s", flush=True)
    return elapsed


def floor_client(hosts: int, in_flight: int = batches.IN_FLIGHT) -> netloop.Client:
    """The same-client loop's client, kept from round to round as a worker keeps its own; it
    evicts no idle connection, whatever the number of hosts (the floor)."""
    return netloop.Client(per_origin=in_flight, max_idle=in_flight * hosts)


def client_loop(client: netloop.Client, urls: list[str], keys: list[tuple[str, str]],
                in_flight: int = batches.IN_FLIGHT) -> float:
    """The same signed POSTs through the client Pressroom sends webhooks with (shared.netloop,
    one non-blocking loop thread, the SSRF guard on each new connection), `in_flight` at a
    time as a notify worker process keeps them, from a bare loop, to `urls` in turn. Returns seconds."""
    ev = event(["Defence"])
    allow = (_loopback(),)
    opened = client.opened
    slots = threading.Semaphore(in_flight)
    failures: list = []

    def done(answer) -> None:
        if isinstance(answer, Exception) or answer.status != 204:
            failures.append(answer)
        slots.release()

    started = time.perf_counter()
    for number, item in enumerate(keys):
        if not slots.acquire(timeout=15):
            raise BenchFailure("same-client loop: no answer for 15 s")
        payload, headers = signed_post(ev, *item)
        client.request(urls[number % len(urls)], done, method="POST", body=payload, headers=headers,
                       allow_networks=allow, connect_timeout=5, total_timeout=15, max_bytes=200, truncate=True)
    for _ in range(in_flight):
        if not slots.acquire(timeout=15):
            raise BenchFailure("same-client loop: no answer for 15 s")
    elapsed = time.perf_counter() - started
    if failures:
        raise BenchFailure(f"same-client loop: {len(failures)} failed, e.g. {failures[0]!r}")
    print(f"  bare loop, same client, {in_flight} in flight: {n_rate(len(keys), elapsed)} /s, "
          f"{client.opened - opened} new connection(s)", flush=True)
    return elapsed


def n_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.1f}"


def deliver_event(celery, base: str, n: int) -> tuple[dict, float, float]:
    """One event to the n subscribers of the workers behind `celery`: (the event, when it was
    sent, seconds until the receiver had answered all n)."""
    count = received(base)
    ev = event(["defence", "News"])
    sent_at = time.time()
    started = time.perf_counter()
    celery.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": ev})
    wait_received(base, count + n)
    return ev, sent_at, time.perf_counter() - started


def warm_up(celery, rt: Runtime, what: str) -> None:
    """An event nobody follows, to the workers behind `celery`: they start and load their code."""
    warm = event(["Warm-up"])
    celery.send_task(tasknames.NOTIFY_ARTICLE_EVENT, kwargs={"event": warm})
    wait_until(lambda: rt.redis.exists(event_key(warm["id"], 1, "article.published")), 60, what)


def start_compared(checkout: Path, env: dict[str, str], redis_port: int, workdir: Path, children: Children,
                   hooks: list[str], n: int, processes_option: list[str]):
    """The notify workers and scheduler of another checkout on Redis database 1, with n
    subscriptions of their own; returns the Celery app that sends them events."""
    compared_env = {**env, "PRESSROOM_REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
                    "PRESSROOM_STATE_DIR": str(workdir / "state-compared"), "PYTHONPATH": str(checkout)}
    settings = Settings.from_env(compared_env)
    rt = Runtime(settings)
    bulk_subscribe(rt, hooks, n, ["Defence"])
    me = [sys.executable, "-m", "pressroom.cli"]
    children.start("compared-workers", [*me, "worker", "notify", *processes_option, "--loglevel", "WARNING"],
                   compared_env, cwd=checkout)
    children.start("compared-scheduler", [*me, "scheduler", "--loglevel", "WARNING"], compared_env, cwd=checkout)
    celery = create_celery(settings)
    warm_up(celery, rt, "compared workers")
    print(f"compared: {checkout}'s notify workers and scheduler, {n} subscriptions on Redis database 1", flush=True)
    return celery


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--fanout", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of bare loop then Pressroom (median reported)")
    parser.add_argument("--hosts", type=int, default=1,
                        help="receiver hosts (ports of the receiver process) the subscriptions are spread over, "
                             "in turn; the blocking bare loops use the first")
    parser.add_argument("--concurrency", type=int,
                        help="notify worker processes (default: what `pressroom worker notify` starts, "
                             "PRESSROOM_WORKER_CONCURRENCY, 2)")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="also run the notify workers of the Pressroom checkout in DIR, in the same rounds")
    args = parser.parse_args()
    if args.compare and not (args.compare / "pressroom" / "cli.py").is_file():
        parser.error(f"--compare: {args.compare} is not a Pressroom checkout")

    workdir = Path(tempfile.mkdtemp(prefix="pressroom-bench-notify-"))
    children = Children(workdir)
    succeeded = False  # on failure the logs stay in workdir
    try:
        redis_port = processes.free_port()
        proc = children.start("redis", processes.redis_command(redis_port, str(workdir)))
        processes.wait_for_port(redis_port, 15, proc)
        rports: list[int] = []
        while len(rports) < args.hosts:  # free_port can hand out a port twice
            if (port := processes.free_port()) not in rports:
                rports.append(port)
        proc = children.start("receiver", [sys.executable, str(Path(__file__).resolve()), "--receiver",
                                           ",".join(map(str, rports))])
        for rport in rports:
            processes.wait_for_port(rport, 15, proc)
        base = f"http://127.0.0.1:{rports[0]}"
        hook = base + "/hook"
        hooks = [f"http://127.0.0.1:{rport}/hook" for rport in rports]
        env = {
            **os.environ, "PRESSROOM_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PRESSROOM_WEBHOOK_ALLOW_NETWORKS": LOOPBACK, "PRESSROOM_STATE_DIR": str(workdir / "state"),
            "PRESSROOM_SITE_URL": "https://news.example.test",
        }
        settings = Settings.from_env(env)
        rt = Runtime(settings)

        # 1. deliveries
        n = args.subscriptions
        keys = bulk_subscribe(rt, hooks, n, ["Defence"])
        print(f"{n} subscriptions stored; receiver at {base}"
              + (f" and {args.hosts - 1} more ports (hosts)" if args.hosts > 1 else ""), flush=True)
        bare, bare_cpu = {}, {}
        for threads in BARE_THREADS:
            cpu0 = children.cpu_by_process()
            bare[threads] = n / bare_loop(hook, keys, threads)
            cpu1 = children.cpu_by_process()
            bare_cpu[threads] = tuple(cpu1[p] - cpu0[p] for p in ("benchmark client", "receiver"))
        bare_new_conn = n / bare_loop(hook, keys, 8, keep_alive=False)
        before = received(base)
        assert before == (len(BARE_THREADS) + 1) * n, before  # the threaded loops, new connections

        print(f"worker, scheduler, receiver and Redis logs: {workdir}", flush=True)
        me = [sys.executable, "-m", "pressroom.cli"]
        processes_option = ["--concurrency", str(args.concurrency)] if args.concurrency else []
        children.start("workers", [*me, "worker", "notify", *processes_option, "--loglevel", "WARNING"], env)
        children.start("scheduler", [*me, "scheduler", "--loglevel", "WARNING"], env)
        celery = create_celery(settings)
        warm_up(celery, rt, "workers to start")
        compared = None
        if args.compare:
            compared = start_compared(args.compare.resolve(), env, redis_port, workdir, children, hooks, n,
                                      processes_option)
        time.sleep(2)

        roles = ("workers", "receiver", "redis", "scheduler")  # not this process: it only waits for the receiver
        compared_roles = ("compared-workers", "receiver", "redis", "compared-scheduler")

        def run_compared() -> tuple[float, dict[str, float]]:
            before = children.cpu_by_process()
            seconds = deliver_event(compared, base, n)[2]
            after = children.cpu_by_process()
            return seconds, {role: after[role] - before[role] for role in compared_roles}

        rounds: list[dict] = []
        floor = floor_client(args.hosts)
        for number in range(args.rounds):
            cpu0 = children.cpu_by_process()
            same_s = client_loop(floor, hooks, keys)
            cpu_same = children.cpu_by_process()
            compared_s, compared_cpu = None, {}
            if compared and number % 2:  # the compared checkout first in every other round
                compared_s, compared_cpu = run_compared()
            cpu1 = children.cpu_by_process()
            ev_round, sent_at, pressroom_s = deliver_event(celery, base, n)
            cpu2 = children.cpu_by_process()
            if compared and compared_s is None:
                compared_s, compared_cpu = run_compared()
            rounds.append({
                "event": ev_round["id"], "sent_at": sent_at, "same_client_s": same_s, "pressroom_s": pressroom_s,
                "ratio": same_s / pressroom_s,
                "same_client_cpu_s": {"client": cpu_same["benchmark client"] - cpu0["benchmark client"],
                                      "receiver": cpu_same["receiver"] - cpu0["receiver"]},
                "pressroom_cpu_s": {role: cpu2[role] - cpu1[role] for role in roles},
                **({"compared_s": compared_s, "compared_ratio": same_s / compared_s, "compared_cpu_s": compared_cpu}
                   if compared_s else {}),
            })
            print(f"  round {len(rounds)}: same client {n / same_s:7.1f} /s, Pressroom {n / pressroom_s:7.1f} /s, "
                  f"ratio {same_s / pressroom_s:.3f}" + (
                      f"; compared {n / compared_s:7.1f} /s, this / compared {compared_s / pressroom_s:.3f}"
                      if compared_s else ""), flush=True)
        time.sleep(3)
        extra = received(base) - before - (3 if compared else 2) * n * args.rounds
        if compared:
            children.stop("compared-workers", "compared-scheduler")
            mine = sorted(r["compared_s"] / r["pressroom_s"] for r in rounds)
            print(f"compared ({args.compare}) / same-client loop: median "
                  f"{statistics.median(r['compared_ratio'] for r in rounds):.3f}; this checkout / compared: median "
                  f"{statistics.median(mine):.3f} (rounds {', '.join(f'{x:.3f}' for x in mine)})", flush=True)
            for label, key in (("this checkout", "pressroom_cpu_s"), ("compared", "compared_cpu_s")):
                total = {role: sum(r[key][role] for r in rounds) for role in rounds[0][key]}
                print(f"  CPU ms per delivery over all rounds, {label}: {cpu_line(total, n * len(rounds))}", flush=True)
        states, timings, recorded = _states(rt)
        middle = sorted(rounds, key=lambda r: r["ratio"])[(len(rounds) - 1) // 2]  # the median round
        pressroom, same = middle["pressroom_s"], n / middle["same_client_s"]
        pressroom_cpu, same_cpu = middle["pressroom_cpu_s"], middle["same_client_cpu_s"]
        first_done, last_created = timings[middle["event"]]
        sent_at = middle["sent_at"]
        shares = by_share(recorded[middle["event"]], sent_at)
        ratio = statistics.median(r["ratio"] for r in rounds)

        # the floor of one Celery task per delivery: the same workers taking tasks that find nothing to do
        started = time.perf_counter()
        for i in range(n):
            celery.send_task(tasknames.NOTIFY_DELIVER, args=[f"dnothing{i}"])
        wait_until(lambda: rt.redis.llen("notify") == 0 and rt.redis.hlen("unacked") == 0, 600, "empty tasks", 0.05)
        floor = time.perf_counter() - started

        # 2. fan-out
        fan = args.fanout
        rt.redis.flushdb()
        followers = fan
        bulk_subscribe(rt, hook, followers, ["Defence", "Georgia"])
        bulk_subscribe(rt, hook, fan // 4, ["Sports"])
        ev = event(["News", "Defence", "Arms trade", "Georgia", "Azerbaijan"])
        children.stop("workers", "scheduler")  # no worker may take the deliveries while they are counted
        started = time.perf_counter()
        groups: list = []
        matched = matching.fan_out(rt, ev, lambda loaded, ekey, sids: groups.append((loaded, ekey, sids)))
        match_s = time.perf_counter() - started
        created = sum(len(matching.create_deliveries(rt, ekey, sids, loaded)) for loaded, ekey, sids in groups)
        fan_s = time.perf_counter() - started
        assert matched == created == followers, (matched, created, followers)

        all_subs = SubscriptionStore(rt.redis).get_many
        started = time.perf_counter()
        ids = [m.decode() for m in rt.redis.smembers(ALL_SUBSCRIPTIONS)]
        seen = 0
        for i in range(0, len(ids), 1000):
            seen += len(all_subs(ids[i:i + 1000]))
        scan_s = time.perf_counter() - started
        assert seen == fan + fan // 4, seen

        workers = args.concurrency or settings.worker_concurrency
        report = {
            "subscriptions": n, "hosts": args.hosts, "concurrency": workers, "in_flight_per_process": batches.IN_FLIGHT,
            "rounds": rounds, "ratio_to_same_client_median": ratio,
            "pressroom_per_s": n / pressroom, "pressroom_s": pressroom,
            **{f"bare_{t}_per_s": rate for t, rate in bare.items()}, "bare_8_new_connection_per_s": bare_new_conn,
            "same_client_per_s": same, "celery_floor_per_s": n / floor,
            "extra_requests": extra, "delivery_states": states,
            "first_delivery_recorded_after_s": first_done - sent_at,
            "last_record_created_after_s": last_created - sent_at, "recorded_by_share_after_s": shares,
            "pressroom_cpu_s": pressroom_cpu,
            "bare_cpu_s": {t: {"client": c, "receiver": r} for t, (c, r) in bare_cpu.items()},
            "same_client_cpu_s": same_cpu,
            "fanout_subscriptions": fan + fan // 4, "fanout_matched": matched, "fanout_match_s": match_s,
            "fanout_s": fan_s, "scan_all_s": scan_s,
        }
        print(json.dumps(report, indent=2))
        rows = "\n".join(
            f"  bare loop, http.client kept alive, {t:2d} thread(s) {rate:7.1f} /s   ratio {n / pressroom / rate:6.3f}"
            for t, rate in bare.items()
        )
        bare_cpu_lines = "\n".join(
            f"  CPU ms per POST, bare loop {t:2d} thread(s)      {cpu_line({'client': c, 'receiver': r}, n)}"
            for t, (c, r) in bare_cpu.items()
        )
        same_cpu_line = cpu_line(same_cpu, n)
        round_ratios = ", ".join(f"{r['ratio']:.3f}" for r in rounds)
        print(f"""
deliveries, {n} subscriptions on {args.hosts} receiver host(s) (notify workers: {workers} prefork processes,
{batches.IN_FLIGHT} in flight each);
the median of {len(rounds)} rounds, each a bare loop then Pressroom
  Pressroom (event -> every receiver answered)   {n / pressroom:8.1f} deliveries/s  ({pressroom:.1f} s)
  bare loop, same client (netloop), {batches.IN_FLIGHT:2d} in flight {same:7.1f} /s   ratio {n / pressroom / same:6.3f}
  ratio Pressroom / same-client bare loop        {ratio:8.3f}  (median; rounds {round_ratios})
once, against the median round's Pressroom rate:
{rows}
  bare loop, a new connection per POST, 8 threads {bare_new_conn:7.1f} /s   ratio {n / pressroom / bare_new_conn:6.3f}
  floor of one task per delivery (same workers)  {n / floor:8.1f} tasks/s  ratio {floor / pressroom:6.3f}
  requests beyond one per subscription           {extra}
  first delivery recorded / last record created  +{first_done - sent_at:.2f} s / +{last_created - sent_at:.2f} s
  deliveries recorded by (share of the event's)   {"  ".join(f"{k} +{v:.2f} s" for k, v in shares.items())}
  CPU ms per delivery, Pressroom                 {cpu_line(pressroom_cpu, n)}
{bare_cpu_lines}
  CPU ms per POST, bare loop, same client       {same_cpu_line}
fan-out, {fan + fan // 4} subscriptions ({matched} follow the article's topics)
  match (index union)                            {match_s * 1000:8.1f} ms
  match + create every delivery record           {fan_s:8.2f} s   ({matched / fan_s:,.0f} deliveries/s)
  baseline: read every subscription once         {scan_s:8.2f} s
  ratio fan-out / read-all                       {fan_s / scan_s:8.3f}""")
        succeeded = True
        return 0
    except (RuntimeError, BenchFailure) as exc:
        print(f"\nbench: FAILED: {exc}\n  logs: {workdir}", file=sys.stderr)
        return 1
    finally:
        children.stop()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)


def _states(rt: Runtime) -> tuple[dict, dict[str, tuple[float, float]], dict[str, list[float]]]:
    """Delivery states; for each article when its first delivery was recorded and its last record
    created; and when each of its deliveries was recorded, in order."""
    counts: dict[str, int] = {}
    timings: dict[str, tuple[float, float]] = {}
    recorded: dict[str, list[float]] = {}
    fields = ("state", "created_at", "updated_at", "article")
    for key in rt.redis.scan_iter(delivery_key("*"), count=1000):
        state, created, updated, article = (v.decode() for v in rt.redis.hmget(key, *fields))
        counts[state] = counts.get(state, 0) + 1
        first_done, last_created = timings.get(article, (float("inf"), 0.0))
        timings[article] = min(first_done, float(updated)), max(last_created, float(created))
        recorded.setdefault(article, []).append(float(updated))
    return counts, timings, {article: sorted(times) for article, times in recorded.items()}


def by_share(times: list[float], since: float) -> dict[str, float]:
    """Seconds after `since` by which half, 90 %, 99 % and all of `times` had passed."""
    return {f"{share}%": times[min(len(times) - 1, math.ceil(len(times) * share / 100) - 1)] - since
            for share in (50, 90, 99, 100)}


def cpu_line(cpu: dict[str, float], n: int) -> str:
    return "  ".join(f"{role} {seconds * 1000 / n:.3f}" for role, seconds in cpu.items()) + (
        f"  (total {sum(cpu.values()) * 1000 / n:.3f})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        receiver_main([int(port) for port in sys.argv[2].split(",")])
    else:
        raise SystemExit(main())
