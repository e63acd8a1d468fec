"""Ingest benchmark: signed, validated, durably stored, queued `POST /v1/articles` per second.

Two baselines run in the same process, on the same machine, at the same concurrency:

- a bare Flask route that answers 202 doing nothing, served by the very gunicorn command
  line `pressroom ingest` builds (it is captured from `pressroom.cli`, not copied, so the
  two cannot drift apart): what Flask + gunicorn cost on their own;
- the S3 server's own PutObject rate with a document-sized body: Pressroom writes every
  document to the data bucket before it answers, so that write is the floor.

Everything listens on 127.0.0.1: a redis-server and moto's S3 server started here, the
real ingest API (`python -m pressroom.cli ingest`) and the bare app. No Celery worker
runs; accepted articles just wait in the render queue, which is checked at the end.

The requests are split into rounds (`--rounds`, default 5); each round runs every target
in turn, starting with a different one each time, so load that other work puts on the
machine falls on Pressroom and its baselines alike; the per-round ratios show the spread.

With `--compare DIR`, the API of another Pressroom checkout (`git worktree add DIR REV`)
runs as one more target in the same rounds, on articles of its own, against the same
Redis and S3 server: a change is measured against the code before it on the same machine
at the same moment, which separate runs on a noisy machine cannot do.

    python bench/ingest.py [--requests 2000] [--concurrency 8] [--rounds 5] [--compare DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

# Only Flask and the standard library at module level: gunicorn imports this module for the
# bare app, whose workers must not carry Pressroom's clients and libraries. Pressroom is
# imported where it is used.
from _common import HOST, ROOT, ApiConnection, BenchFailure, Children, percentile, signed_json_headers, stack_env
from flask import Flask, request

if TYPE_CHECKING:
    from shared.settings import Settings

SAMPLE = ROOT / "tests" / "samples" / "seed-article.ninjs.json"


def bare_app() -> Flask:
    """The baseline app, loaded by gunicorn as `ingest:bare_app()` with bench/ on its path."""
    app = Flask("bench.bare")

    @app.post("/v1/articles")
    def accept():
        request.get_data()  # read the body like any real endpoint must, then do nothing with it
        return {"status": "queued"}, 202

    return app


@dataclass
class Result:
    """Latencies and outcomes of one load run."""

    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, other: Result) -> None:
        """Fold one round's run into this total (rate = all requests over all measured seconds)."""
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.statuses.update(other.statuses)
        self.failures.extend(other.failures)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        return percentile(self.latencies, q) * 1000


def run_load(name: str, count: int, concurrency: int, make_worker: Callable[[], Callable[[int], tuple]]) -> Result:
    """Run `count` calls over `concurrency` threads, each with its own client.

    `make_worker()` returns a function taking the request index and returning
    (status, failure text or None); the time it takes is the request's latency. The
    clients are built here, one after another, because boto3's default session is not
    thread-safe, and before the clock starts, so connecting is not measured.
    """
    result = Result(name)
    lock = threading.Lock()
    next_index = iter(range(count))
    ready = threading.Barrier(concurrency + 1)
    callers = [make_worker() for _ in range(concurrency)]

    def thread_main(call: Callable[[int], tuple]) -> None:
        ready.wait()
        latencies: list[float] = []
        statuses: Counter = Counter()
        failures: list[str] = []
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            started = time.perf_counter()
            try:
                status, failure = call(i)
            except Exception as exc:  # connection trouble counts as a failed request, loudly
                status, failure = 0, f"{type(exc).__name__}: {exc}"
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if failure and len(failures) < 5:
                failures.append(failure)
        with lock:
            result.latencies.extend(latencies)
            result.statuses.update(statuses)
            result.failures.extend(failures)

    threads = [threading.Thread(target=thread_main, args=(call,), daemon=True) for call in callers]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def http_worker(port: int, bodies: list[bytes], key: bytes, expect: int) -> Callable[[], Callable[[int], tuple]]:
    """A factory of per-thread HTTP callers: one persistent connection each, every request signed when sent."""

    def make() -> Callable[[int], tuple]:
        conn = ApiConnection(port)
        conn.connect()

        def call(i: int) -> tuple:
            status, data = conn.post("/v1/articles", bodies[i], signed_json_headers(key, bodies[i]))
            if status != expect:
                return status, f"{status}: {data[:300].decode(errors='replace')}"
            return status, None

        return call

    return make


def s3_put_worker(settings: Settings, body: bytes, prefix: str) -> Callable[[], Callable[[int], tuple]]:
    """A factory of per-thread PutObject callers, each on its own Runtime's data storage: the
    S3 client and signed PUT Pressroom's own processes use."""
    from shared.runtime import Runtime

    def make() -> Callable[[int], tuple]:
        store = Runtime(settings).data

        def call(i: int) -> tuple:
            store.put(f"{prefix}/{i}.json", body, "application/json", metadata={"uri": f"urn:bench:{i}"})
            return 200, None

        return call

    return make


def article_bodies(count: int, run_id: str, body_kb: int = 0) -> list[bytes]:
    """`count` distinct articles (unique uri), so each one is new work and none is a replay.
    With `body_kb`, the body is that long: paragraphs of real news text from dev_news.jsonl
    (a long feature runs to 20-40 kB of HTML; the sample's body is 1.7 kB)."""
    doc = json.loads(SAMPLE.read_text())
    if body_kb:
        doc["body_html"] = long_body(body_kb * 1024)
    base = doc["uri"]
    bodies = []
    for i in range(count):
        doc["uri"] = f"{base}-bench-{run_id}-{i}"
        bodies.append(json.dumps(doc).encode())
    return bodies


def ingest_gunicorn_argv(env: dict[str, str]) -> list[str]:
    """The exact command `pressroom ingest` would exec under `env`, captured instead of run."""
    from pressroom import cli

    captured: list[str] = []

    class Captured(Exception):
        pass

    def fake_execvp(file: str, argv: list[str]) -> None:
        captured.extend(argv)
        raise Captured

    with mock.patch.dict(os.environ, env), mock.patch("os.execvp", fake_execvp), contextlib.suppress(Captured):
        cli.cmd_ingest(cli.build_parser().parse_args(["ingest"]))
    if not captured or not captured[-1].startswith("services.ingest.app:"):
        raise SystemExit(f"bench: cannot read the gunicorn command of `pressroom ingest`: {captured}")
    return captured


def print_table(results: list[Result], pressroom: Result, bare: Result, put: Result) -> None:
    print(f"\n{'target':<34} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for r in results:
        print(f"{r.name:<34} {r.rate:>9.1f} {r.percentile(50):>9.2f} {r.percentile(99):>9.2f}")
    print(f"\n{'ratio':<34} {'req/s':>9} {'p50':>9} {'p99':>9}")
    for label, base in (("Pressroom / bare Flask", bare), ("Pressroom / S3 PutObject", put)):
        print(
            f"{label:<34} {pressroom.rate / base.rate:>9.3f} "
            f"{pressroom.percentile(50) / base.percentile(50):>9.2f} "
            f"{pressroom.percentile(99) / base.percentile(99):>9.2f}"
        )


def long_body(size: int) -> str:
    from render import NEWS, load_news

    items = [item for category in load_news(NEWS).values() for item in category]
    paragraphs, length = [], 0
    for item in items:
        paragraph = f"<p>{html.escape(item['title'])}. {html.escape(item['body'])}</p>"
        paragraphs.append(paragraph)
        length += len(paragraph)
        if length >= size:
            break
    return "".join(paragraphs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", "-n", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--concurrency", "-c", type=int, default=8, help="client threads, one connection each")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per target first")
    parser.add_argument("--rounds", type=int, default=5,
                        help="the requests are split into rounds, each running every target in turn, so a load "
                             "that other work puts on the machine falls on all of them alike")
    parser.add_argument("--body-kb", type=int, default=0,
                        help="make each article's body_html this many kB of real news text (default: the sample's)")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="also run the API of the Pressroom checkout in DIR, in the same rounds")
    args = parser.parse_args(argv)
    if args.compare and not (args.compare / "pressroom" / "cli.py").is_file():
        parser.error(f"--compare: {args.compare} is not a Pressroom checkout")

    import redis

    from pressroom import processes
    from shared.settings import Settings, parse_webhook_secret
    from shared.storage import ensure_buckets

    workdir = Path(tempfile.mkdtemp(prefix="pressroom-bench-"))
    children = Children(workdir)
    succeeded = False  # on failure the servers' logs stay in workdir
    try:
        # AOF on, as in docker-compose.yml: the state Pressroom writes per request is durable there too.
        redis_port, s3_port = children.start_storage()
        api_port, bare_port = processes.free_port(), processes.free_port()
        env = stack_env(workdir, redis_port, s3_port, api_port)
        settings = Settings.from_env(env)
        ensure_buckets(settings)

        proc = children.start("ingest", [sys.executable, "-m", "pressroom.cli", "ingest"], env)
        processes.wait_for_port(api_port, 60, proc)
        bare_argv = ingest_gunicorn_argv({**env, "PRESSROOM_PORT": str(bare_port)})[:-1] + ["ingest:bare_app()"]
        bare_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), env.get("PYTHONPATH")]))}
        proc = children.start("bare", bare_argv, bare_env)
        processes.wait_for_port(bare_port, 60, proc)
        gunicorn_flags = " ".join(bare_argv[3:-1]).replace(f"{HOST}:{bare_port}", f"{HOST}:PORT")
        if args.compare:
            compared_port = processes.free_port()
            compared_env = {**env, "PRESSROOM_PORT": str(compared_port), "PYTHONPATH": str(args.compare.resolve())}
            proc = children.start("compared", [sys.executable, "-m", "pressroom.cli", "ingest"], compared_env,
                                  cwd=args.compare.resolve())
            processes.wait_for_port(compared_port, 60, proc)

        key = parse_webhook_secret(env["PRESSROOM_WEBHOOK_SECRETS"])
        run_id = uuid.uuid4().hex[:8]
        total = args.warmup + args.requests
        bodies = article_bodies(total, run_id, args.body_kb)
        doc_size = len(bodies[0])
        load_start = os.getloadavg()[0]
        print(
            f"ingest benchmark: {args.requests} requests per target in {args.rounds} rounds at concurrency "
            f"{args.concurrency} (+{args.warmup} warm-up), {doc_size}-byte NINJS documents\n"
            f"gunicorn (both apps): {gunicorn_flags}",
            flush=True,
        )

        targets = [
            ("bare Flask 202 (same gunicorn)", lambda b: http_worker(bare_port, b, key, 202), 202),
            ("Pressroom POST /v1/articles", lambda b: http_worker(api_port, b, key, 202), 202),
            ("S3 PutObject (moto server)",
             lambda b: s3_put_worker(settings, bodies[0], f"bench/put/{run_id}/{uuid.uuid4().hex[:6]}"), 200),
        ]
        if args.compare:  # articles of its own: the same ones would be stale there, answered 200
            theirs = dict(zip(bodies, article_bodies(total, f"{run_id}-compared", args.body_kb), strict=True))
            targets.append((f"compared: {args.compare.name} POST", lambda b: http_worker(
                compared_port, [theirs[body] for body in b], key, 202), 202))

        def run(name: str, make_for: Callable[[list[bytes]], Callable], expect: int, part: list[bytes],
                phase: str) -> Result:
            """One load run; any answer but `expect` stops the benchmark with the server's words."""
            result = run_load(name, len(part), args.concurrency, make_for(part))
            if result.statuses != Counter({expect: len(part)}):
                failures = "\n  ".join(dict.fromkeys(f.strip() for f in result.failures))
                raise BenchFailure(f"{name} ({phase}): expected {len(part)} x {expect}, got "
                                   f"{dict(result.statuses)}\n  {failures}")
            return result

        for name, make_for, expect in targets:
            run(name, make_for, expect, bodies[: args.warmup], "warm-up")
        totals = {name: Result(name) for name, _, _ in targets}
        cpu = {name: Counter() for name, _, _ in targets}
        per_round: list[dict[str, float]] = []
        size = args.requests // args.rounds
        for r in range(args.rounds):
            part = bodies[args.warmup + r * size: args.warmup + (r + 1) * size]
            rates = {}
            for name, make_for, expect in targets[r % len(targets):] + targets[: r % len(targets)]:  # none always first
                cpu_before = children.cpu_by_process()
                result = run(name, make_for, expect, part, f"round {r + 1}")
                for process, seconds in children.cpu_by_process().items():
                    cpu[name][process] += seconds - cpu_before[process]
                totals[name].add(result)
                rates[name] = result.rate
            per_round.append(rates)
            print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{n.split(' (')[0]} {v:.0f}/s" for n, v in
                                                                  rates.items()), flush=True)
        bare, pressroom, put = (totals[name] for name, _, _ in targets[:3])
        compared = totals[targets[3][0]] if args.compare else None
        queued = redis.Redis.from_url(settings.redis_url).llen("render")
        accepted = (args.warmup + size * args.rounds) * (2 if args.compare else 1)
        if queued != accepted:
            raise BenchFailure(f"{queued} render tasks queued for {accepted} accepted articles")

        print_table([pressroom, bare, put, *([compared] if compared else [])], pressroom, bare, put)
        processes = list(cpu[pressroom.name])
        print(f"\n{'CPU ms per request':<34} {'total':>9} " + " ".join(f"{p:>9}" for p in processes))
        per_request = {}
        for r in (pressroom, bare, put, *([compared] if compared else [])):
            per_request[r.name] = {p: 1000 * cpu[r.name][p] / len(r.latencies) for p in processes}
            print(f"{r.name:<34} {sum(per_request[r.name].values()):>9.2f} "
                  + " ".join(f"{per_request[r.name][p]:>9.2f}" for p in processes))
        cpu_ratio = sum(per_request[put.name].values()) / sum(per_request[pressroom.name].values())
        print(f"{'ratio S3 PutObject / Pressroom':<34} {cpu_ratio:>9.3f}  (the rate ratio of a machine loaded "
              "by other work)")
        cores = os.cpu_count() or 1

        def quiet_rate(name: str) -> float:
            # all processes share the cores, and moto serves from one (GIL-bound) process
            cost = per_request[name]
            return min(cores / sum(cost.values()), 1 / cost["s3"]) * 1000

        print(f"{'ratio on a quiet machine (model)':<34} {quiet_rate(pressroom.name) / quiet_rate(put.name):>9.3f}  "
              f"(rate <= min({cores} cores / total CPU, 1 / moto CPU) for each)")
        ratios = sorted(r[pressroom.name] / r[put.name] for r in per_round)
        print(f"\nPressroom / S3 PutObject per round: {', '.join(f'{x:.3f}' for x in ratios)} "
              f"(median {statistics.median(ratios):.3f})")
        if compared:
            mine = sorted(r[pressroom.name] / r[compared.name] for r in per_round)
            print(f"compared ({args.compare}) / S3 PutObject: {compared.rate / put.rate:.3f}; this checkout / "
                  f"compared: {pressroom.rate / compared.rate:.3f} (per round {', '.join(f'{x:.3f}' for x in mine)}; "
                  f"median {statistics.median(mine):.3f})")
        print(f"all {len(pressroom.latencies)} Pressroom answers were 202; {queued} render tasks queued (warm-up "
              f"included); load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        succeeded = True
        return 0
    except (RuntimeError, BenchFailure) as exc:
        print(f"\nbench: FAILED: {exc}\n  server logs: {workdir}", file=sys.stderr)
        return 1
    finally:
        children.stop()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
