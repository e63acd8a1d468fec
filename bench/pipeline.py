"""Pipeline benchmark: accept -> page live latency at a steady rate, and for a burst of 1,000.

The whole embedded stack runs on 127.0.0.1, started here: a redis-server (AOF on, as in
docker-compose.yml), moto's S3 server, the API (`python -m pressroom.cli ingest`), real
render and notify workers (`pressroom worker render`, `pressroom worker notify`) and the
scheduler (`pressroom scheduler`). Articles are generated like bench/site.py's (text
sampled from `../shared/data/dev_news.jsonl`, topics from fixed pools, no photo: fetching
one would leave loopback), each new (version 1) and carrying a marker paragraph.

1. Steady: articles are POSTed signed, open-loop, at `--rate` per second (default 20) for
   `--duration` seconds (default 120), each at its scheduled moment whatever the answers
   before it took, from a pool of client threads with one persistent connection each.
2. Burst: `--burst` articles (default 1,000) are POSTed as fast as 8 client threads can.

Latency is from the moment the POST is sent until the page is live. "Page live" is read
from the article's state record in Redis, the record `GET /v1/articles/{id}` reports: the
render task writes `published_version` only after the page's PUT to the site bucket has
returned, so the first time the record shows the posted version the page is readable in
the bucket with that version (S3 is read-after-write consistent); the record is written a
few milliseconds after the PUT, so the figure errs on the slow side. One pipelined HMGET
for every outstanding article every 10 ms costs Redis next to nothing, where polling the
status endpoint or S3 itself at that rate would load the very processes measured on a
2-core machine. Afterwards a sample of pages is fetched from the site bucket and must hold
its article's marker.

Baseline, in the same run: the same Jinja render (`services.render.pages.article_page`,
empty lists) and the same S3 PUTs (the document to the data bucket, the page to the site
bucket) in a plain loop in this process, one article after another: its per-article time
is the floor of accept -> live for one article; for the burst, article k of the loop is
live when the loop has done k+1 articles.

    .venv/bin/python bench/pipeline.py [--rate 20] [--duration 120] [--burst 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ApiConnection, BenchFailure, Children, percentile, say, signed_json_headers, stack_env, wait_until
from render import NEWS, SITE_URL, load_news, make_stories

POLL_SECONDS = 0.01
CLIENT_THREADS = 8


@dataclass
class Post:
    aid: str
    body: bytes
    marker: str
    sent: float = 0.0
    answered: float = 0.0
    live: float = 0.0
    status: int = 0


def make_posts(count: int, news, run: str, start: int) -> list[Post]:
    from shared import keys

    now = datetime.now(UTC).replace(microsecond=0)
    stories = make_stories(count, news, run, end=now - timedelta(minutes=1), days=1, seed=start + 3, start=start)
    posts = []
    for i, story in enumerate(stories):
        marker = f"pipeline-{run}-{start + i}"
        doc = {**story.doc, "body_html": story.doc["body_html"] + f"<p>{marker}</p>"}
        posts.append(Post(keys.article_id(doc["uri"]), json.dumps(doc).encode(), marker))
    return posts


class Client:
    """Signed POSTs from a pool of threads, one persistent connection each."""

    def __init__(self, port: int, key: bytes) -> None:
        self.port, self.key = port, key
        self.local = threading.local()

    def post(self, item: Post) -> None:
        headers = signed_json_headers(self.key, item.body)
        conn = self.local.__dict__.setdefault("conn", ApiConnection(self.port))
        item.sent = time.perf_counter()
        for attempt in (1, 2):  # gunicorn closes idle keep-alive connections; the same webhook-id is safe to resend
            try:
                item.status, _ = conn.post("/v1/articles", item.body, headers)
                break
            except (OSError, http.client.HTTPException):
                if attempt == 2:
                    item.status = -1
                    return
        item.answered = time.perf_counter()


class Watcher:
    """Marks each article live the first time its state record shows the posted version published."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self.pending: dict[str, Post] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def watch(self, item: Post) -> None:
        with self.lock:
            self.pending[item.aid] = item

    def run(self) -> None:
        from shared import keys

        while not self.stop.is_set():
            with self.lock:
                items = list(self.pending.values())
            if items:
                pipe = self.redis.pipeline(transaction=False)
                for item in items:
                    pipe.hmget(keys.article_state(item.aid), ["status", "published_version"])
                seen = time.perf_counter()
                for item, (status, version) in zip(items, pipe.execute(), strict=True):
                    if status == b"published" and version == b"1":
                        item.live = seen
                        with self.lock:
                            self.pending.pop(item.aid, None)
            time.sleep(POLL_SECONDS)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending:
                    return
            time.sleep(0.1)
        with self.lock:
            raise BenchFailure(f"{len(self.pending)} articles not live after {timeout:.0f} s")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def steady(client: Client, watcher: Watcher, posts: list[Post], rate: float) -> None:
    """Open loop: post i goes out at start + i / rate, whatever the answers before it took."""
    started = time.perf_counter() + 0.2

    def send(i: int) -> None:
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        watcher.watch(posts[i])
        client.post(posts[i])

    with ThreadPoolExecutor(CLIENT_THREADS * 4) as pool:
        list(pool.map(send, range(len(posts))))


def burst(client: Client, watcher: Watcher, posts: list[Post]) -> float:
    started = time.perf_counter()

    def send(item: Post) -> None:
        watcher.watch(item)
        client.post(item)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(send, posts))
    return started


def plain_loop(settings, posts: list[Post]) -> list[float]:
    """The baseline: validate, PUT the document, render the page, PUT it; seconds per article."""
    from services.render.pages import SiteContext, article_page
    from services.render.publish import page_path
    from shared import keys
    from shared.ninjs import load_article
    from shared.runtime import Runtime

    rt = Runtime(settings)
    site = SiteContext(site_url=settings.site_url, api_url=settings.public_api_url)
    seconds = []
    for n, item in enumerate(posts):
        started = time.perf_counter()
        article = load_article(json.loads(item.body))
        rt.data.put(f"bench/loop/{article.id}.json", item.body, "application/json", metadata={"uri": "bench"})
        path = f"bench-loop/{n}/{page_path(article)}"
        page = article_page(article, path, site).encode()
        rt.site.put(keys.page_key(path), page, "text/html; charset=utf-8", "public, max-age=60")
        seconds.append(time.perf_counter() - started)
    return seconds


def verify(settings, redis, posts: list[Post], sample: int) -> int:
    """Fetch a sample of pages from the site bucket; each must hold its article's marker."""
    from shared import keys
    from shared.runtime import Runtime

    site = Runtime(settings).site
    chosen = random.Random(7).sample(posts, min(sample, len(posts))) + posts[-3:]
    for item in chosen:
        key = redis.hget(keys.article_state(item.aid), "key")
        if not key or item.marker.encode() not in site.get(key.decode()).body:
            raise BenchFailure(f"page of {item.aid} ({key}) does not show its posted version")
    return len(chosen)


def figures(posts: list[Post]) -> dict[str, float]:
    live = [1000 * (p.live - p.sent) for p in posts]
    answered = [1000 * (p.answered - p.sent) for p in posts]
    return {"p50": percentile(live, 50), "p99": percentile(live, 99), "max": max(live),
            "post_p50": percentile(answered, 50), "post_p99": percentile(answered, 99),
            "after_202_p50": percentile([1000 * (p.live - p.answered) for p in posts], 50)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20, help="articles per second in the steady phase")
    parser.add_argument("--duration", type=float, default=120, help="seconds of the steady phase")
    parser.add_argument("--burst", type=int, default=1000, help="articles in the burst (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="render worker processes (the setting's default: 2)")
    parser.add_argument("--baseline", type=int, default=200, help="articles in the steady baseline loop")
    parser.add_argument("--verify", type=int, default=50, help="pages fetched from S3 per phase to check")
    parser.add_argument("--news", type=Path, default=NEWS, help="dev_news.jsonl to sample text from")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the pages of a phase")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)

    import redis as redis_lib

    from pressroom import processes
    from shared.settings import Settings, parse_webhook_secret
    from shared.storage import ensure_buckets

    news = load_news(args.news)
    run = uuid.uuid4().hex[:8]
    steady_posts = make_posts(int(args.rate * args.duration), news, f"{run}-steady", 0)
    burst_posts = make_posts(args.burst, news, f"{run}-burst", len(steady_posts)) if args.burst else []
    loop_posts = make_posts(max(args.baseline, args.burst), news, f"{run}-loop", 10**6)

    workdir = Path(tempfile.mkdtemp(prefix="pressroom-bench-pipeline-"))
    children = Children(workdir)
    succeeded = False
    watcher = None
    report: dict = {"rate": args.rate, "duration": args.duration, "burst": args.burst, "workers": args.workers,
                    "load_start": os.getloadavg()[0]}
    try:
        redis_port, s3_port = children.start_storage()
        api_port = processes.free_port()
        env = stack_env(workdir, redis_port, s3_port, api_port, PRESSROOM_SITE_URL=SITE_URL,
                        PRESSROOM_WORKER_CONCURRENCY=str(args.workers))
        settings = Settings.from_env(env)
        ensure_buckets(settings)
        redis = redis_lib.Redis.from_url(settings.redis_url)
        cli = [sys.executable, "-m", "pressroom.cli"]
        proc = children.start("ingest", [*cli, "ingest"], env)
        children.start("render", [*cli, "worker", "render", "--loglevel", "INFO"], env)
        children.start("notify", [*cli, "worker", "notify", "--concurrency", "2"], env)
        children.start("scheduler", [*cli, "scheduler"], env)
        processes.wait_for_port(api_port, 60, proc)
        from shared.celery_app import create_celery

        celery = create_celery(settings)
        wait_until(lambda: celery.control.ping(timeout=1.0), 120, "the workers to answer")
        say(f"stack up: API on {api_port}, {args.workers} render workers; load average {os.getloadavg()[0]:.1f}")

        client = Client(api_port, parse_webhook_secret(env["PRESSROOM_WEBHOOK_SECRETS"]))
        watcher = Watcher(redis)

        def settle(phase: str, posts: list[Post]) -> tuple[dict[str, float], int]:
            """Every post answered 202 and its page live; the figures, and how many pages were checked in S3."""
            bad = [p for p in posts if p.status != 202]
            if bad:
                raise BenchFailure(f"{len(bad)} {phase} posts not answered 202, e.g. {bad[0].status}")
            watcher.wait_all(args.timeout)
            return figures(posts), verify(settings, redis, posts, args.verify)

        warm = make_posts(20, news, f"{run}-warm", 2 * 10**6)
        steady(client, watcher, warm, 5)
        settle("warm-up", warm)
        plain_loop(settings, loop_posts[:20])  # warm the loop's clients and templates too

        loop = plain_loop(settings, loop_posts[: args.baseline])
        report["loop_ms"] = [1000 * s for s in loop]
        say(f"baseline loop: {len(loop)} articles, p50 {percentile(report['loop_ms'], 50):.1f} ms")

        # 1. steady rate
        started = time.perf_counter()
        steady(client, watcher, steady_posts, args.rate)
        sent_s = time.perf_counter() - started
        report["steady"], report["steady_verified"] = settle("steady", steady_posts)
        report["steady_sent_rate"] = len(steady_posts) / sent_s
        say(f"steady: {len(steady_posts)} articles at {report['steady_sent_rate']:.1f}/s, live p50 "
            f"{report['steady']['p50']:.0f} ms, p99 {report['steady']['p99']:.0f} ms")

        # 2. burst
        if burst_posts:
            loop = plain_loop(settings, loop_posts[: args.burst])
            report["burst_loop_s"] = sum(loop)
            cumulative = [1000 * s for s in itertools.accumulate(loop)]  # article k is live after k+1 iterations
            report["burst_loop"] = {"p50": percentile(cumulative, 50), "p99": percentile(cumulative, 99)}
            started = burst(client, watcher, burst_posts)
            posted = time.perf_counter() - started
            report["burst_figures"], report["burst_verified"] = settle("burst", burst_posts)
            report["burst_posted_s"] = posted
            report["burst_all_live_s"] = max(p.live for p in burst_posts) - started
            say(f"burst: {len(burst_posts)} posted in {posted:.1f} s, all live at {report['burst_all_live_s']:.1f} s")
        report["load_end"] = os.getloadavg()[0]
        print_report(report)
        print("\n" + json.dumps({k: v for k, v in report.items() if k != "loop_ms"}, default=str))
        succeeded = True
        return 0
    except (RuntimeError, BenchFailure) as exc:
        print(f"\nbench: FAILED: {exc}\n  logs: {workdir}", file=sys.stderr)
        return 1
    finally:
        if watcher is not None:
            watcher.close()
        children.stop()
        if succeeded and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(r: dict) -> None:
    loop = r["loop_ms"]
    s = r["steady"]
    n = int(r["rate"] * r["duration"])
    print(f"\nsteady: {n} articles at {r['steady_sent_rate']:.1f}/s ({r['workers']} render workers); "
          f"accept -> page live, from the POST")
    print(f"{'target':<52} {'p50 ms':>9} {'p99 ms':>9}")
    print(f"{'Pressroom (POST sent -> page live)':<52} {s['p50']:>9.0f} {s['p99']:>9.0f}")
    print(f"{'  of which POST -> 202':<52} {s['post_p50']:>9.0f} {s['post_p99']:>9.0f}")
    print(f"{'baseline: render + 2 PUTs in a plain loop, per article':<52} "
          f"{percentile(loop, 50):>9.1f} {percentile(loop, 99):>9.1f}")
    print(f"{'ratio Pressroom / baseline':<52} {s['p50'] / percentile(loop, 50):>9.1f} "
          f"{s['p99'] / percentile(loop, 99):>9.1f}")
    print(f"  targets p50 <= 250 ms, p99 <= 1000 ms: {'met' if s['p50'] <= 250 and s['p99'] <= 1000 else 'MISSED'};"
          f" slowest {s['max']:.0f} ms; {r['steady_verified']} pages checked in the bucket")
    if r.get("burst_figures"):
        b, bl = r["burst_figures"], r["burst_loop"]
        print(f"\nburst of {r['burst']}: posted in {r['burst_posted_s']:.1f} s, all pages live at "
              f"{r['burst_all_live_s']:.1f} s; the plain loop did them in {r['burst_loop_s']:.1f} s "
              f"(ratio {r['burst_all_live_s'] / r['burst_loop_s']:.2f})")
        print(f"{'target':<52} {'p50 ms':>9} {'p99 ms':>9}")
        print(f"{'Pressroom (POST sent -> page live)':<52} {b['p50']:>9.0f} {b['p99']:>9.0f}")
        print(f"{'baseline: article k live after k+1 loop iterations':<52} {bl['p50']:>9.0f} {bl['p99']:>9.0f}")
        print(f"  {r['burst_verified']} pages checked in the bucket")
    print(f"\nload average {r['load_start']:.1f} at the start, {r['load_end']:.1f} at the end "
          f"(other work on the machine)")


if __name__ == "__main__":
    raise SystemExit(main())
