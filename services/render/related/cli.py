"""The related-articles operator commands, registered on the `pressroom` command.

`pressroom/cli.py` only calls `add_commands`; heavy imports happen when a command runs,
so every other `pressroom` command starts as fast as before.
"""

from __future__ import annotations

import argparse
import sys


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "related-eval",
        help="index JSONL files of {id,title,body,category[,language]} through the related engine and print its "
        "precision beside same-run TF-IDF and BM25 references",
    )
    p.add_argument("files", metavar="FILE.jsonl", nargs="+")
    p.add_argument("--redis-url", help="use this Redis under a throwaway key prefix (default: start a private one)")
    p.add_argument("--no-reference", action="store_true", help="skip the batch TF-IDF and BM25 references")
    p.add_argument("--strict", action="store_true", help="exit 1 when the engine is below TF-IDF on any set")
    p.set_defaults(func=cmd_related_eval)
    p = sub.add_parser("reindex", help="rebuild the related-articles index from the article store")
    p.add_argument("--fresh", action="store_true", help="drop the index first instead of updating it in place")
    p.set_defaults(func=cmd_reindex)


def cmd_related_eval(args: argparse.Namespace) -> None:
    import redis

    from services.render.related import evaluate
    from shared.commands import fail

    try:
        reports = evaluate.run(
            args.files, args.redis_url, sys.stdout, sys.stderr, with_references=not args.no_reference
        )
    except (OSError, ValueError) as exc:
        fail(str(exc))
    except redis.RedisError as exc:
        fail(f"Redis: {exc}")
    if args.strict and not all(r.holds() for r in reports):
        raise SystemExit(1)


def cmd_reindex(args: argparse.Namespace) -> None:
    from services.render.related import RelatedIndex
    from services.render.related.reindex import reindex
    from shared.commands import fail, load_settings, require_redis
    from shared.runtime import Runtime
    from shared.storage import StorageUnavailable

    settings = load_settings()
    require_redis(settings)
    rt = Runtime(settings)
    try:
        report = reindex(rt.redis, rt.data, RelatedIndex(rt.redis), fresh=args.fresh, progress=sys.stderr)
    except StorageUnavailable as exc:
        fail(f"article store: {exc}", 1)
    print(
        f"reindex: {report.indexed} of {report.published} published articles indexed, "
        f"{report.missing} missing from the article store, {report.removed} no longer published removed"
    )
