"""The `pressroom` command: the embedded stack, each server on its own, and operator tools."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

from shared.commands import article_post_headers, fail, load_settings, require_redis

POOL_NAMES = ("render", "site", "notify", "scheduler")
# Modules that define more subcommands (each an `add_commands(subparsers)`); they import shared.commands only.
COMMAND_MODULES = ("services.render.related.cli", "services.notify.cli")


def cmd_ingest(args: argparse.Namespace) -> None:
    settings = load_settings()
    require_redis(settings)
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="pressroom-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    host = os.environ.get("PRESSROOM_HOST", "127.0.0.1")
    argv = [
        "gunicorn", "--workers", str(settings.ingest_workers), "--worker-class", "gthread",
        "--threads", "4", "--bind", f"{host}:{settings.port}", "--graceful-timeout", "20",
        "--config", "python:services.ingest.gunicorn_conf",
    ]
    if args.access_log:
        argv += ["--access-logfile", "-"]
    argv.append("services.ingest.app:create_app()")
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def cmd_worker(args: argparse.Namespace) -> None:
    settings = load_settings()
    for pool in args.pools:
        if pool not in POOL_NAMES:
            fail(f"unknown pool {pool!r}; pools are: {', '.join(POOL_NAMES)}")
    require_redis(settings)
    name = "-".join(args.pools)
    concurrency = args.concurrency or settings.worker_concurrency
    if args.pools == ["site"] and not args.concurrency:
        concurrency = 1  # builds take turns under one lock; a build's uploads run on its own thread pool
    argv = [
        sys.executable, "-m", "celery", "-A", "shared.worker_app", "--quiet", "worker",
        "-Q", ",".join(args.pools), "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
        "--concurrency", str(concurrency),
        "--loglevel", args.loglevel, "--without-gossip", "--without-mingle",
    ]
    _metrics_port(args)
    os.execvp(sys.executable, argv)


def _metrics_port(args: argparse.Namespace) -> None:
    """`--metrics-port` overrides PRESSROOM_WORKER_METRICS_PORT for this worker (several on one host)."""
    if args.metrics_port is not None:
        os.environ["PRESSROOM_WORKER_METRICS_PORT"] = str(args.metrics_port)


def cmd_scheduler(args: argparse.Namespace) -> None:
    settings = load_settings()
    require_redis(settings)
    os.makedirs(settings.state_dir, exist_ok=True)
    argv = [
        sys.executable, "-m", "celery", "-A", "shared.worker_app", "--quiet", "worker", "--beat",
        "-Q", "scheduler", "-n", f"scheduler-{uuid.uuid4().hex[:6]}@%h", "--concurrency", "1",
        "--schedule", os.path.join(settings.state_dir, "beat-schedule"),
        "--loglevel", args.loglevel, "--without-gossip", "--without-mingle",
    ]
    _metrics_port(args)
    os.execvp(sys.executable, argv)


def cmd_run(args: argparse.Namespace) -> None:
    from pressroom.embedded import run_stack

    raise SystemExit(run_stack(verbose=args.verbose, fresh=args.fresh, demo=not args.no_demo))


def cmd_site(args: argparse.Namespace) -> None:
    from pressroom.site_server import serve

    serve(load_settings())


def cmd_post(args: argparse.Namespace) -> None:
    """Post a NINJS file, signed with the first webhook secret (or the API token)."""
    settings = load_settings()
    with open(args.file, "rb") as fh:
        body = fh.read()
    headers = article_post_headers(settings, body)
    if headers is None:
        fail("set PRESSROOM_WEBHOOK_SECRETS or PRESSROOM_API_TOKEN to sign the request")
    url = (args.api or settings.public_api_url) + "/v1/articles"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - operator-given URL
            print(response.status, json.dumps(json.loads(response.read()), indent=2))
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode(errors="replace"), file=sys.stderr)
        raise SystemExit(1) from None
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}", 1)


def cmd_demo(args: argparse.Namespace) -> None:
    """Publish the demo site through the running API (what a first `pressroom run` does)."""
    from pressroom import demo

    settings = load_settings()
    require_redis(settings)
    try:
        loaded = demo.load(settings, api_url=args.api, say=lambda line: print(line, file=sys.stderr),
                           timeout=args.timeout)
    except demo.DemoError as exc:
        fail(str(exc), 1)
    print(f"demo site published: {loaded.articles} articles; the seed article is at {loaded.seed_url}")


def cmd_rebuild(args: argparse.Namespace) -> None:
    from pressroom.rebuild import rebuild

    settings = load_settings()
    require_redis(settings)
    summary = rebuild(settings, force=args.force, timeout=args.timeout)
    parts = ", ".join(f"{k} {v}" for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)
                      and k not in ("total",))
    if not summary["complete"]:
        fail(f"timed out with {parts or 'nothing done'} of {summary['total']} articles (are the render and site "
             "workers running?); run `pressroom rebuild` again to continue this rebuild", 1)
    phases = ", ".join(f"{name.removesuffix('_s')} {summary[name]}s" for name in ("indexing_s", "rendering_s")
                       if name in summary)
    print(f"rebuilt {summary['total']} articles in {summary['seconds']}s ({parts or 'nothing to do'}; {phases}); "
          "every list, feed and sitemap built")


def cmd_status(args: argparse.Namespace) -> None:
    import redis

    from pressroom import status

    settings = load_settings()
    require_redis(settings)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        if args.reindex:
            print(f"indexed {status.reindex(client)} articles by status", file=sys.stderr)
        report = status.collect(client, failed_limit=args.failed)
    except redis.RedisError as exc:
        fail(f"cannot read the pipeline's state from Redis: {exc}", 1)
    print(json.dumps(report, indent=2) if args.json else status.render(report))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pressroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="the whole stack in the foreground (embedded Redis and S3 unless configured)")
    p.add_argument("--verbose", action="store_true", help="show every log line of the children, not only warnings")
    p.add_argument("--fresh", action="store_true", help="forget the embedded Redis and S3 data and start empty")
    p.add_argument("--no-demo", action="store_true",
                   help="do not publish the demo site on the first start (`pressroom demo` does it any time)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("ingest", help="the ingest API under gunicorn")
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("worker", help="a Celery worker for the named pools")
    p.add_argument("pools", nargs="+", metavar="POOL", help=f"one or more of {', '.join(POOL_NAMES)}")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--metrics-port", type=int, help="serve this worker's /metrics here (0 = off)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help="periodic work: outbox sweep, embargo release")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--metrics-port", type=int, help="serve this worker's /metrics here (0 = off)")
    p.set_defaults(func=cmd_scheduler)
    p = sub.add_parser("site", help="serve the site bucket at PRESSROOM_SITE_PORT for local browsing")
    p.set_defaults(func=cmd_site)
    p = sub.add_parser("rebuild", help="re-render the whole site from the article store on the render and site "
                                       "workers (run again to continue an interrupted rebuild)")
    p.add_argument(
        "--force",
        action="store_true",
        help="forget the upload cache: write every object again (repairs objects changed outside Pressroom)",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the workers")
    p.set_defaults(func=cmd_rebuild)
    p = sub.add_parser("status", help="queues, workers, articles by status, failures, retries, outbox, embargoes")
    p.add_argument("--json", action="store_true", help="one JSON document for scripts")
    p.add_argument("--failed", type=int, default=10, metavar="N", help="show the latest N failed articles (10)")
    p.add_argument("--reindex", action="store_true",
                   help="first count every stored article by status (once, after upgrading; scans all articles)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("demo", help="publish the demo site (a few dozen articles around the seed) through the API")
    p.add_argument("--api", help="the API's base URL (default: PRESSROOM_PUBLIC_API_URL)")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for the pages")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("post", help="post a NINJS file to the API, signed")
    p.add_argument("file")
    p.add_argument("--api", help="API base URL (default PRESSROOM_PUBLIC_API_URL)")
    p.set_defaults(func=cmd_post)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
