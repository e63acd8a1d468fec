"""`pressroom deliveries …`: what notify has to do, and sending failed deliveries again."""

from __future__ import annotations

import argparse
import json
import time

from shared import tasknames


def add_commands(sub) -> None:
    p = sub.add_parser("deliveries", help="notification deliveries: status, show, retry")
    cmds = p.add_subparsers(dest="deliveries_command", required=True)
    c = cmds.add_parser("status", help="due deliveries and the notify queue")
    c.set_defaults(func=cmd_status)
    c = cmds.add_parser("show", help="one delivery's record as JSON")
    c.add_argument("ids", nargs="+", metavar="DELIVERY_ID")
    c.set_defaults(func=cmd_show)
    c = cmds.add_parser("retry", help="send failed or cancelled deliveries again with a fresh schedule")
    c.add_argument("ids", nargs="+", metavar="DELIVERY_ID")
    c.set_defaults(func=cmd_retry)


def _context():
    from shared.commands import load_settings, require_redis
    from shared.deliveries import DeliveryStore
    from shared.runtime import Runtime

    settings = load_settings()
    require_redis(settings)
    rt = Runtime(settings)
    return settings, rt, DeliveryStore(rt.redis)


def cmd_status(args: argparse.Namespace) -> None:
    from shared.deliveries import DUE

    _settings, rt, _store = _context()
    now = time.time()
    print(json.dumps({
        "due_now": rt.redis.zcount(DUE, "-inf", now),
        "due_later": rt.redis.zcount(DUE, f"({now}", "+inf"),
        "notify_queue": rt.redis.llen(tasknames.queue_for(tasknames.NOTIFY_DELIVER)),
    }, indent=2))


def cmd_show(args: argparse.Namespace) -> None:
    _settings, _rt, store = _context()
    for did in args.ids:
        print(json.dumps(store.get(did) or {"id": did, "state": "missing"}, indent=2))


def cmd_retry(args: argparse.Namespace) -> None:
    from shared.celery_app import create_celery

    settings, _rt, store = _context()
    celery = create_celery(settings)
    failed = 0
    for did in args.ids:
        outcome = store.reset(did)
        if outcome == "reset":
            celery.send_task(tasknames.NOTIFY_DELIVER, args=[did])
            print(f"{did}: queued")
        else:
            failed += 1
            print(f"{did}: not retried ({outcome})")
    if failed:
        raise SystemExit(1)
