"""Site benchmark: a full rebuild of 5,000 articles against Hugo and moto's floor, and how a burst of 1,000 coalesces.

1. Rebuild. The same generated articles (bench/render.py's generator: text sampled from
   `../shared/data/dev_news.jsonl`) are written as Markdown with front matter (title,
   date, tags, categories) into a temporary Hugo site with layouts written here (article
   page with related articles, paginated lists for home, section and every term, RSS and
   Atom for each, sitemap, robots.txt), and `hugo --quiet` builds it to disk: the
   baseline, run three times (median reported), then once to memory (its wall and CPU
   time: the rendering-alone baseline). For Pressroom the articles are stored with the
   ingest path's own `accept_article` (document to the data bucket, state and outbox in
   Redis, render task sent) and `pressroom rebuild --force` is timed end to end on real
   workers (`python -m pressroom.cli worker render` and `worker site`): from the command's
   start until it has returned and the site is idle (no render or site task queued or
   held, no dirty mark, no build queued or running). By default the seeding's own render
   tasks are purged and the rebuild publishes every article (a cold build, as Hugo's
   always is); `--warm` lets the workers publish them first, so the rebuild re-renders a
   published site (as after a template change).
   The floor, measured in the same run after the rebuild: moto serving the same requests
   the rebuild made (a GetObject of every stored document, a PutObject of every object the
   rebuild wrote, same keys and sizes) at the same concurrency (one process per worker
   process, each with PRESSROOM_S3_CONCURRENCY threads on one boto3 client).
   Rendering alone: the CPU time the rebuild's tasks spent turning documents into pages
   (article pages: parse + render; site build: its main thread, rendering and its Redis
   reads), which the tasks record, against Hugo's to memory.
2. Burst. Then 1,000 newer articles are seeded as fast as eight threads can (each queued
   as soon as it is stored, while the workers run); the clock stops when every one is
   published and the home page in the bucket links the newest. The UPLOADS hash
   (services/render/upload.py) says how many times `index.html` was uploaded, against
   1,000 for a renderer that rebuilt it per article.

Everything runs on 127.0.0.1: a redis-server, moto's S3 server and the workers started
here (the helpers of bench/_common.py and pressroom.processes). No scheduler runs: nothing
measured needs it (no embargo, no lost send), and its 30-second site tick would add
builds of its own to the figures. Articles carry no photo (Hugo processes none either).

    .venv/bin/python bench/site.py [--articles 5000] [--burst 1000] [--workers 2] [--warm]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT, BenchFailure, Children, say, stack_env, wait_until
from render import NEWS, SITE_URL, TEMPLATES, Story, load_news, make_stories

HUGO = shutil.which("hugo") or "/usr/bin/hugo"
SEED_THREADS = 8


# --- Hugo, the baseline ------------------------------------------------------------------------------------------

HUGO_CONFIG = """\
baseURL = "{site_url}/"
title = "Pressroom"
languageCode = "en"
paginate = 20
rssLimit = 20
enableRobotsTXT = true
disableKinds = []

[permalinks]
  articles = "/:year/:month/:day/:slug/"

[taxonomies]
  tag = "tags"
  category = "categories"

[mediaTypes."application/atom+xml"]
  suffixes = ["xml"]

[outputFormats.Atom]
  mediaType = "application/atom+xml"
  baseName = "atom"
  isPlainText = false

[outputs]
  home = ["HTML", "RSS", "Atom"]
  section = ["HTML", "RSS", "Atom"]
  taxonomy = ["HTML"]
  term = ["HTML", "RSS", "Atom"]

[related]
  threshold = 1
  includeNewer = true
  toLower = false
  [[related.indices]]
    name = "tags"
    weight = 100

[markup.goldmark.renderer]
  unsafe = false
"""

HUGO_LAYOUTS = {
    "_default/baseof.html": """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ .Title }} | {{ .Site.Title }}</title>
<link rel="canonical" href="{{ .Permalink }}">
{{ block "head" . }}{{ end }}
{{ range .AlternativeOutputFormats }}<link rel="alternate" type="{{ .MediaType.Type }}" href="{{ .Permalink }}">
{{ end }}
__STYLE__
</head>
<body>
<a class="visually-hidden" href="#content">Skip to content</a>
<header class="site-header" role="banner"><a href="{{ .Site.BaseURL }}">{{ .Site.Title }}</a></header>
<main id="content">
{{ block "main" . }}{{ end }}
</main>
<footer class="site-footer" role="contentinfo">Published with Hugo</footer>
</body>
</html>
""",
    "_default/single.html": """\
{{ define "head" }}
<meta name="description" content="{{ .Description }}">
<meta property="og:type" content="article">
<meta property="og:title" content="{{ .Title }}">
<meta property="og:description" content="{{ .Description }}">
<meta property="og:url" content="{{ .Permalink }}">
<meta property="article:published_time" content="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">
{{ range .Params.tags }}<meta property="article:tag" content="{{ . }}">
{{ end }}
<meta name="twitter:card" content="summary">
<script type="application/ld+json">{{ dict "@context" "https://schema.org" "@type" "NewsArticle" "headline" .Title \
"description" .Description "datePublished" (.Date.Format "2006-01-02T15:04:05Z07:00") "url" .Permalink \
"author" (dict "@type" "Person" "name" .Params.byline) "keywords" .Params.tags | jsonify | safeJS }}</script>
{{ end }}
{{ define "main" }}
<article class="story">
<header>
{{ range .Params.categories }}<p class="kicker"><a href="{{ "categories/" | relURL }}{{ . | urlize }}/">\
{{ . }}</a></p>{{ end }}
<h1>{{ .Title }}</h1>
<p class="standfirst">{{ .Description }}</p>
<p class="meta"><span class="dateline">{{ .Params.located }}</span> · \
<time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}" class="published">\
{{ .Date.Format "2 January 2006, 15:04 UTC" }}</time></p>
<p class="meta byline">{{ .Params.byline }}</p>
</header>
<div class="body">{{ .Content }}</div>
<nav aria-label="Topics"><ul class="topics">{{ range .Params.tags }}\
<li><a href="{{ "tags/" | relURL }}{{ . | urlize }}/">{{ . }}</a></li>{{ end }}</ul></nav>
</article>
<aside aria-label="More articles">
<section class="related"><h2>Related articles</h2>
<ul>{{ range first 5 (.Site.RegularPages.Related .) }}<li><a href="{{ .Permalink }}">{{ .Title }}</a></li>{{ end }}\
</ul></section>
</aside>
{{ end }}
""",
    "_default/list.html": """\
{{ define "head" }}<meta name="description" content="{{ .Title }}: the latest articles">{{ end }}
{{ define "main" }}
{{ $pages := .RegularPages }}{{ if .IsHome }}{{ $pages = .Site.RegularPages }}{{ end }}
{{ $pager := .Paginate $pages.ByDate.Reverse }}
<h1>{{ .Title }} <small class="meta">page {{ $pager.PageNumber }} of {{ $pager.TotalPages }}</small></h1>
<ol class="cards">
{{ range $pager.Pages }}
<li class="card"><article>
<h2><a href="{{ .Permalink }}">{{ .Title }}</a></h2>
<p class="meta">{{ range .Params.categories }}{{ . }}{{ end }} · \
<time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "2 January 2006" }}</time></p>
<p>{{ .Description }}</p>
</article></li>
{{ end }}
</ol>
<nav class="pager" aria-label="Pages">
{{ if $pager.HasPrev }}<a rel="prev" href="{{ $pager.Prev.URL }}">Newer articles</a>{{ end }}
{{ if $pager.HasNext }}<a rel="next" href="{{ $pager.Next.URL }}">Older articles</a>{{ end }}
</nav>
{{ end }}
""",
    "_default/terms.html": """\
{{ define "main" }}
<h1>{{ .Title }}</h1>
<ul>{{ range .Data.Terms.ByCount }}<li><a href="{{ .Page.Permalink }}">{{ .Page.Title }}</a> ({{ .Count }})</li>\
{{ end }}</ul>
{{ end }}
""",
    "_default/list.atom.xml": """\
{{ printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\"?>" | safeHTML }}
<feed xmlns="http://www.w3.org/2005/Atom">
<title>{{ .Title }} | {{ .Site.Title }}</title>
<id>{{ .Permalink }}</id>
<link href="{{ .Permalink }}"/>
{{ $all := .RegularPages }}{{ if .IsHome }}{{ $all = .Site.RegularPages }}{{ end }}
{{ $pages := first 20 $all.ByDate.Reverse }}
{{ with index $pages 0 }}<updated>{{ .Lastmod.Format "2006-01-02T15:04:05Z07:00" }}</updated>{{ end }}
{{ range $pages }}
<entry>
<title>{{ .Title }}</title>
<link href="{{ .Permalink }}"/>
<id>{{ .Permalink }}</id>
<published>{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}</published>
<updated>{{ .Lastmod.Format "2006-01-02T15:04:05Z07:00" }}</updated>
<summary>{{ .Description }}</summary>
</entry>
{{ end }}
</feed>
""",
}


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def write_hugo_site(directory: Path, stories: list[Story]) -> None:
    """The Hugo site: config, layouts (with Pressroom's own stylesheet) and one Markdown file per article."""
    from shared import keys

    base = (TEMPLATES / "base.html").read_text()
    style = base[base.index("<style>"):base.index("</style>") + len("</style>")]
    (directory / "config.toml").write_text(HUGO_CONFIG.format(site_url=SITE_URL))
    for name, text in HUGO_LAYOUTS.items():
        path = directory / "layouts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("__STYLE__", style))
    content = directory / "content" / "articles"
    content.mkdir(parents=True)
    for i, story in enumerate(stories):
        doc = story.doc
        front = "\n".join([
            "+++",
            f"title = {_toml(story.headline)}",
            f"date = {story.published.isoformat()}",
            f"slug = {_toml(keys.slugify(story.headline))}",
            f"description = {_toml(doc['description_text'])}",
            f"byline = {_toml(doc['byline'])}",
            f"located = {_toml(doc['located'])}",
            f"tags = [{', '.join(_toml(t) for t in story.tags)}]",
            f"categories = [{_toml(story.section)}]",
            "+++",
        ])
        (content / f"{i:06d}.md").write_text(front + "\n" + story.markdown(), encoding="utf-8")


def run_hugo(directory: Path, runs: int, memory: bool = False) -> tuple[list[float], int, float]:
    """Wall seconds of `hugo --quiet` building to an emptied public/ each time (or to memory); files
    written; and the CPU seconds (user + system) of the last build."""
    public = directory / "public"
    seconds = []
    cpu = 0.0
    for _ in range(runs):
        shutil.rmtree(public, ignore_errors=True)
        command = [HUGO, "--quiet", "--source", str(directory), "--destination", str(public)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command + (["--renderToMemory"] if memory else []), capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise BenchFailure(f"hugo failed ({done.returncode}): {done.stderr[-2000:]}")
    files = sum(1 for p in public.rglob("*") if p.is_file()) if public.exists() else 0
    return seconds, files, cpu


# --- Pressroom ---------------------------------------------------------------------------------------------------


def seed(settings, stories: list[Story], threads: int = SEED_THREADS) -> tuple[float, list[str]]:
    """Accept every story as the API would after validation; returns (seconds, article ids).

    Each thread has its own Runtime (boto3 client, Redis connection) and Celery app, all
    built before the clock starts; boto3 client creation is not thread-safe.
    """
    from services.ingest.articles.intake import accept_article
    from shared.celery_app import create_celery
    from shared.ninjs import load_article
    from shared.runtime import Runtime

    articles = [load_article(s.doc) for s in stories]
    clients = []
    for _ in range(threads):
        rt = Runtime(settings)
        rt.data  # noqa: B018 - build the boto3 client now, in this thread
        clients.append((rt, create_celery(settings)))
    lock = threading.Lock()
    todo = iter(range(len(stories)))
    errors: list[str] = []

    def work(rt, celery) -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            try:
                accepted = accept_article(rt, celery, articles[i], stories[i].doc)
                if accepted.decision.outcome != "accepted":
                    errors.append(f"{articles[i].id}: {accepted.decision}")
            except Exception as exc:  # reported below; the figures would be wrong without every article
                errors.append(f"{articles[i].id}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work, args=client, daemon=True) for client in clients]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise BenchFailure(f"{len(errors)} articles not accepted, e.g. {errors[0]}")
    return seconds, [a.id for a in articles]


def statuses(redis, aids: list[str]) -> dict[str, int]:
    from shared import keys

    pipe = redis.pipeline(transaction=False)
    for aid in aids:
        pipe.hget(keys.article_state(aid), "status")
    counts: dict[str, int] = {}
    for status in pipe.execute():
        name = status.decode() if status else "missing"
        counts[name] = counts.get(name, 0) + 1
    return counts


def site_idle(redis) -> bool:
    """No render task queued or held by a worker, no dirty mark, no site build queued or running."""
    from services.render.site_build import BUILD_LOCK, BUILD_QUEUED
    from services.render.site_index import DIRTY

    if redis.llen("render") or redis.llen("site") or redis.exists(DIRTY, BUILD_QUEUED, BUILD_LOCK):
        return False
    for raw in redis.hvals("unacked"):  # kombu's reserved-but-unacknowledged messages, countdowns included
        try:
            if json.loads(raw)[2] in ("render", "site"):
                return False
        except (ValueError, IndexError, TypeError):
            return False
    return True


def settled(redis, aids: list[str], timeout: float, what: str) -> float:
    """Wait until every article is published and the site is idle twice in a row; returns that time."""
    state = {"hits": 0, "at": 0.0}

    def check() -> bool:
        if statuses(redis, aids).get("published", 0) != len(aids) or not site_idle(redis):
            state["hits"] = 0
            return False
        state["hits"] += 1
        if state["hits"] == 1:
            state["at"] = time.perf_counter()
        return state["hits"] >= 2

    wait_until(check, timeout, what)
    return state["at"]


def renders(redis, aids: list[str]) -> int:
    """Article page renders so far: every reconcile that published writes a 'published' timeline event."""
    from shared import keys

    pipe = redis.pipeline(transaction=False)
    for aid in aids:
        pipe.lrange(keys.article_timeline(aid), 0, -1)
    return sum(1 for events in pipe.execute() for e in events if json.loads(e).get("event") == "published")


def uploads(redis, key: str | None = None) -> int:
    from services.render.upload import UPLOADS

    if key is not None:
        return int(redis.hget(UPLOADS, key) or 0)
    return sum(int(v) for v in redis.hvals(UPLOADS))


def site_builds(log: Path, since: int) -> int:
    """Site builds that rendered something, from the workers' log after byte offset `since`.

    `site_build.build` logs one "site build: N marks" line per build that had dirty marks;
    the count of home page renders is not kept anywhere else.
    """
    with open(log, "rb") as fh:
        fh.seek(since)
        text = fh.read().decode(errors="replace")
    return sum(1 for line in text.splitlines() if "site build:" in line)


def _floor_process(env: dict, op: str, items: list, threads: int, barrier, results) -> None:
    """One floor process: its own S3 client and signed PUT (a Runtime's, as Pressroom's processes
    have) and `threads` threads, released with the others by `barrier`."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.runtime import Runtime
    from shared.settings import Settings
    from shared.storage import S3Storage

    rt = Runtime(Settings.from_env(env))
    data = rt.data
    scratch = S3Storage(rt.s3, env["FLOOR_BUCKET"], rt.s3_put)

    def call(item) -> None:
        if op == "get":
            data.get(item)
        else:
            key, size = item
            scratch.put(key, b"x" * size, "text/html; charset=utf-8", "public, max-age=60")

    with ThreadPoolExecutor(threads) as pool:
        call(items[0])  # connect before the clock starts
        barrier.wait()
        list(pool.map(call, items[1:]))
    results.put(time.perf_counter())


def moto_floor(env: dict, op: str, items: list, processes: int, threads: int) -> float:
    """Seconds moto takes to serve `items` (GetObject keys or (key, size) PutObjects) from `processes`
    processes of `threads` threads each, from the moment all are connected until the last one is done."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    shares = [items[i::processes] for i in range(processes)]
    procs = [ctx.Process(target=_floor_process, args=(env, op, share, threads, barrier, results))
             for share in shares if share]
    for proc in procs:
        proc.start()
    barrier.wait()
    started = time.perf_counter()
    ends = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise BenchFailure(f"a floor process for {op} exited with {proc.exitcode}")
    return max(ends) - started


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the rebuild command, the floor's processes)."""
    t = os.times()
    return t.children_user + t.children_system


def rebuild_meta(redis) -> dict[str, str]:
    """The rebuild run's own record (render CPU, site build CPU) from Redis: the only run in this Redis."""
    from shared import keys

    names = list(redis.scan_iter(match=keys.rebuild_run("*", "meta")))
    if len(names) != 1:
        raise BenchFailure(f"expected one rebuild run in Redis, found {len(names)}")
    return {k.decode(): v.decode() for k, v in redis.hgetall(names[0]).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000, help="articles in the site (rebuild and Hugo)")
    parser.add_argument("--burst", type=int, default=1000, help="new articles in the burst (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="render worker processes (the setting's default: 2)")
    parser.add_argument("--hugo-runs", type=int, default=3, help="Hugo builds (median reported)")
    parser.add_argument("--s3-concurrency", type=int, default=8,
                        help="PRESSROOM_S3_CONCURRENCY: S3 threads per worker process (and per floor process)")
    parser.add_argument("--news", type=Path, default=NEWS, help="dev_news.jsonl to sample text from")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for any one phase")
    parser.add_argument("--warm", action="store_true",
                        help="let the workers publish every article first, then time the rebuild of the published "
                             "site (a re-render after a template change); default: the timed rebuild publishes "
                             "the seeded articles (a cold build, like Hugo's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, Hugo site)")
    args = parser.parse_args(argv)

    import redis as redis_lib

    from shared import keys
    from shared.celery_app import create_celery
    from shared.runtime import Runtime
    from shared.settings import Settings
    from shared.storage import ensure_buckets

    news = load_news(args.news)
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC).replace(microsecond=0)
    stories = make_stories(args.articles, news, run, end=now - timedelta(hours=1))
    burst = make_stories(args.burst, news, f"{run}-burst", end=now + timedelta(minutes=30), days=600 / 86400,
                         seed=2, start=args.articles) if args.burst else []

    workdir = Path(tempfile.mkdtemp(prefix="pressroom-bench-site-"))
    children = Children(workdir)
    succeeded = False
    report: dict = {"articles": args.articles, "burst": args.burst, "workers": args.workers, "warm": args.warm}
    try:
        # 1a. Hugo on the same articles, before any server runs
        hugo_dir = workdir / "hugo"
        hugo_dir.mkdir()
        write_hugo_site(hugo_dir, stories)
        version = " ".join(subprocess.run([HUGO, "version"], capture_output=True, text=True).stdout.split(" ")[:2])
        print(f"site benchmark: {args.articles} articles, burst {args.burst}, {args.workers} render workers; "
              f"{version}; load average {os.getloadavg()[0]:.1f}")
        hugo_seconds, hugo_files, _ = run_hugo(hugo_dir, args.hugo_runs)
        hugo_memory, _, hugo_cpu = run_hugo(hugo_dir, 1, memory=True)
        report.update(hugo_s=hugo_seconds, hugo_files=hugo_files, hugo_memory_s=hugo_memory[0],
                      hugo_memory_cpu_s=hugo_cpu,
                      hugo_markdown_bytes=sum(p.stat().st_size for p in (hugo_dir / "content").rglob("*.md")))
        say(f"Hugo: {', '.join(f'{s:.2f}' for s in hugo_seconds)} s to disk, {hugo_memory[0]:.2f} s to memory "
            f"({hugo_cpu:.2f} s CPU), {hugo_files} files")

        # the stack
        redis_port, s3_port = children.start_storage()
        env = stack_env(workdir, redis_port, s3_port, PRESSROOM_SITE_URL=SITE_URL,
                        PRESSROOM_PUBLIC_API_URL="https://api.example.test",
                        PRESSROOM_WORKER_CONCURRENCY=str(args.workers),
                        PRESSROOM_S3_CONCURRENCY=str(args.s3_concurrency))
        settings = Settings.from_env(env)
        ensure_buckets(settings)
        redis = redis_lib.Redis.from_url(settings.redis_url)

        # 1b. seed; the workers
        seed_s, aids = seed(settings, stories)
        report["seed_s"] = seed_s
        say(f"seeded {len(aids)} articles in {seed_s:.1f} s ({len(aids) / seed_s:.0f}/s, {SEED_THREADS} threads)")
        # moto's speed drifts within a run: its GET floor is measured before the rebuild too
        floor_env = {**env, "FLOOR_BUCKET": f"floor-{run}"}
        processes = args.workers + 1  # the render pool's processes and the site pool's one
        gets = [redis.hget(keys.article_state(aid), "doc_key").decode() for aid in aids]
        report["floor_get_before_s"] = moto_floor(floor_env, "get", gets, processes, args.s3_concurrency)
        say(f"floor before the rebuild: {len(gets)} GetObject in {report['floor_get_before_s']:.1f} s")
        celery = create_celery(settings)
        if not args.warm:
            report["purged"] = celery.control.purge()  # the rebuild alone publishes them, once each
        log = workdir / "site-worker.log"
        started = time.perf_counter()
        children.start("worker", [sys.executable, "-m", "pressroom.cli", "worker", "render", "--concurrency",
                                  str(args.workers), "--loglevel", "INFO"], env)
        children.start("site-worker", [sys.executable, "-m", "pressroom.cli", "worker", "site", "--loglevel", "INFO"],
                       env)
        if args.warm:
            first_s = settled(redis, aids, args.timeout, "the first publication") - started
            first_renders = renders(redis, aids)
            report.update(first_publish_s=first_s, first_renders=first_renders, first_uploads=uploads(redis))
            say(f"first publication (worker start-up included): {first_s:.1f} s, {first_renders} page renders, "
                f"{uploads(redis)} uploads")
        else:
            wait_until(lambda: celery.control.ping(timeout=1.0), 120, "the render workers to answer")

        # 1c. pressroom rebuild --force, end to end
        from services.render.upload import UPLOADS

        before = (uploads(redis), renders(redis, aids))
        counts_before = {k.decode(): int(v) for k, v in redis.hgetall(UPLOADS).items()}
        offset = log.stat().st_size
        cpu_before, command_cpu = children.cpu_by_process(), _children_cpu()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pressroom.cli", "rebuild", "--force",
                               "--timeout", str(args.timeout)], env=env, cwd=ROOT, capture_output=True, text=True)
        command_s = time.perf_counter() - started
        command_cpu = _children_cpu() - command_cpu
        if done.returncode != 0:
            raise BenchFailure(f"pressroom rebuild failed ({done.returncode}): {done.stderr[-1500:]}")
        rebuild_s = settled(redis, aids, args.timeout, "the rebuild's site build") - started
        cpu_after = children.cpu_by_process()
        rebuild_cpu = {name: cpu_after[name] - cpu_before[name] for name in ("redis", "s3", "worker", "site-worker")}
        rebuild_cpu["rebuild command"] = command_cpu
        builds = site_builds(log, offset)
        report.update(
            rebuild_command_s=command_s, rebuild_s=rebuild_s, rebuild_summary=done.stdout.strip(),
            rebuild_uploads=uploads(redis) - before[0], rebuild_renders=renders(redis, aids) - before[1],
            rebuild_site_builds=builds,
        )
        say(f"rebuild: command {command_s:.1f} s, site built at {rebuild_s:.1f} s; {done.stdout.strip()}")
        meta = rebuild_meta(redis)
        report.update(render_cpu_s=float(meta.get("render_cpu_s", 0)), site_cpu_s=float(meta.get("site_cpu_s", 0)),
                      rebuild_cpu=rebuild_cpu)

        # 1d. the floor: moto alone serving the rebuild's own GETs and PUTs at the same concurrency
        s3 = Runtime(settings).s3
        sizes = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.site_bucket):
            sizes.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        written = [k.decode() for k, v in redis.hgetall(UPLOADS).items() if int(v) > counts_before.get(k.decode(), 0)]
        puts = [(f"floor/{k}", sizes[k]) for k in written if k in sizes]
        s3.create_bucket(Bucket=floor_env["FLOOR_BUCKET"])
        moto_before, clients_before = children.cpu_by_process()["s3"], _children_cpu()
        floor_get = moto_floor(floor_env, "get", gets, processes, args.s3_concurrency)
        floor_put = moto_floor(floor_env, "put", puts, processes, args.s3_concurrency)
        report["floor_cpu"] = {"s3": children.cpu_by_process()["s3"] - moto_before,
                               "floor clients": _children_cpu() - clients_before}
        report.update(floor_gets=len(gets), floor_puts=len(puts), floor_get_s=floor_get, floor_put_s=floor_put,
                      floor_processes=processes, s3_concurrency=args.s3_concurrency,
                      page_bytes=int(statistics.median(size for _, size in puts)) if puts else 0)
        say(f"floor: {len(gets)} GetObject in {floor_get:.1f} s, {len(puts)} PutObject in {floor_put:.1f} s "
            f"({processes} processes x {args.s3_concurrency} threads)")

        # 2. burst
        if burst:
            before_home, before_all, before_renders = uploads(redis, "index.html"), uploads(redis), renders(redis, aids)
            offset = log.stat().st_size
            site = Runtime(settings).site
            newest_id = keys.article_id(max(burst, key=lambda s: s.published).doc["uri"])

            def home_shows_newest() -> bool:
                url = redis.hget(keys.article_state(newest_id), "url")
                return bool(url) and url in site.get("index.html").body

            started = time.perf_counter()
            burst_seed_s, burst_ids = seed(settings, burst)
            published_at = wait_until(
                lambda: statuses(redis, burst_ids).get("published", 0) == len(burst_ids), args.timeout,
                "every burst article to be published")
            # checked once all are published, so this is the time until both hold
            shown_at = wait_until(home_shows_newest, args.timeout, "the home page to show the newest article")
            idle_at = settled(redis, burst_ids, args.timeout, "the burst's last site build")
            builds = site_builds(log, offset)
            report.update(
                burst_seed_s=burst_seed_s, burst_published_s=published_at - started,
                burst_home_s=shown_at - started, burst_idle_s=idle_at - started,
                burst_home_uploads=uploads(redis, "index.html") - before_home,
                burst_uploads=uploads(redis) - before_all,
                burst_renders=renders(redis, burst_ids) + renders(redis, aids) - before_renders,
                burst_site_builds=builds,
            )
        report["load_average_end"] = os.getloadavg()[0]
        print_report(report)
        print("\n" + json.dumps(report, default=str))
        succeeded = True
        return 0
    except (RuntimeError, BenchFailure) as exc:
        print(f"\nbench: FAILED: {exc}\n  logs: {workdir}", file=sys.stderr)
        return 1
    finally:
        children.stop()
        if succeeded and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(r: dict) -> None:
    n = r["articles"]
    hugo = statistics.median(r["hugo_s"])
    kind = "of the published site (--warm)" if r["warm"] else "publishing the seeded articles (cold)"
    print(f"\nfull-site rebuild {kind}, {n} articles ({r['workers']} render workers + 1 site worker, "
          f"{r['s3_concurrency']} S3 threads each)")
    print(f"{'target':<62} {'seconds':>8} {'articles/s':>11}")
    floor = r["floor_get_s"] + r["floor_put_s"]
    rows = [
        ("Hugo `hugo --quiet` to disk (median)", hugo),
        ("Pressroom `rebuild --force`, command returned", r["rebuild_command_s"]),
        ("Pressroom `rebuild --force`, end to end (site idle)", r["rebuild_s"]),
        (f"moto alone: the same {r['floor_gets']} GETs + {r['floor_puts']} PUTs", floor),
    ]
    if r["warm"]:
        rows.append(("(Pressroom first publication from the queue, untimed part)", r["first_publish_s"]))
    for label, seconds in rows:
        print(f"{label:<62} {seconds:>8.2f} {n / seconds:>11.1f}")
    print(f"{'ratio rebuild end to end / moto floor (time)':<62} {r['rebuild_s'] / floor:>8.2f}")
    print(f"{'ratio rebuild end to end / Hugo to disk (time)':<62} {r['rebuild_s'] / hugo:>8.2f}")
    before = r["floor_get_before_s"]
    print(f"  moto's drift: the same GETs took {before:.1f} s before the rebuild, {r['floor_get_s']:.1f} s after; "
          f"ratio against the slower floor {r['rebuild_s'] / (max(before, r['floor_get_s']) + r['floor_put_s']):.2f}, "
          f"the faster {r['rebuild_s'] / (min(before, r['floor_get_s']) + r['floor_put_s']):.2f}")
    cpu, floor_cpu = r["rebuild_cpu"], r["floor_cpu"]
    spent = ", ".join(f"{name} {s:.1f}" for name, s in cpu.items())
    print(f"  CPU s, rebuild: {spent} (total {sum(cpu.values()):.1f}); "
          f"floor: moto {floor_cpu['s3']:.1f}, its clients {floor_cpu['floor clients']:.1f} "
          f"(total {sum(floor_cpu.values()):.1f})")
    print(f"  floor: GetObject {r['floor_get_s']:.1f} s, PutObject {r['floor_put_s']:.1f} s "
          f"({r['floor_processes']} processes x {r['s3_concurrency']} threads; median object {r['page_bytes']} bytes)")
    render = r["render_cpu_s"] + r["site_cpu_s"]
    print(f"  rendering alone: Pressroom {render:.2f} CPU s (article pages {r['render_cpu_s']:.2f}, site build "
          f"{r['site_cpu_s']:.2f}); Hugo to memory {r['hugo_memory_s']:.2f} s wall, "
          f"{r['hugo_memory_cpu_s']:.2f} CPU s; ratio (CPU) {render / r['hugo_memory_cpu_s']:.2f}, "
          f"Pressroom CPU / Hugo wall {render / r['hugo_memory_s']:.2f}")
    print(f"  Hugo wrote {r['hugo_files']} files")
    print(f"  rebuild: {r['rebuild_renders']} article page renders, {r['rebuild_uploads']} objects uploaded, "
          f"{r['rebuild_site_builds']} site builds")
    if r.get("burst"):
        b = r["burst"]
        print(f"\nburst of {b} new articles onto the {n}")
        print(f"  home page (index.html) uploads: {r['burst_home_uploads']} (a per-article renderer: {b}); "
              f"ratio {r['burst_home_uploads'] / b:.3f}")
        print(f"  site builds that rendered something: {r['burst_site_builds']} (an upper bound of home renders)")
        print(f"  article page renders {r['burst_renders']}, objects uploaded {r['burst_uploads']}")
        print(f"  seeded in {r['burst_seed_s']:.1f} s; all published at {r['burst_published_s']:.1f} s; home page "
              f"shows the newest at {r['burst_home_s']:.1f} s; site idle at {r['burst_idle_s']:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
