"""`pressroom status`: one look at the whole pipeline, read from Redis.

Everything here is a bounded read: queue lengths, sorted-set cardinalities and the heads
of a few sorted sets. Articles are counted with ZCARD of the per-status sets that
shared.article_state keeps in step with every status change, never by scanning article
hashes; `--reindex` fills those sets once for articles stored before they existed (that
one is a scan, in batches).
"""

from __future__ import annotations

import json
import time

import redis

from shared import heartbeat, keys, redis_text, tasknames
from shared.article_state import STATUSES
from shared.times import iso_utc as iso

UNACKED_SCAN_LIMIT = 10_000  # kombu holds at most prefetch x processes per worker here; a cap, just in case


def collect(client: redis.Redis, failed_limit: int = 10, now: float | None = None) -> dict:
    """The status report as a JSON-ready dict (times are ISO-8601 UTC, ages in seconds)."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for pool in tasknames.POOLS:
        pipe.llen(keys.broker_queue(pool))
    for status in STATUSES:
        pipe.zcard(keys.articles_by_status(status))
    pipe.zrevrange(keys.articles_by_status("failed"), 0, failed_limit - 1, withscores=True)
    pipe.zcount(keys.NOTIFY_DUE, "-inf", now)
    pipe.zcount(keys.NOTIFY_DUE, f"({now}", "+inf")
    pipe.zrangebyscore(keys.NOTIFY_DUE, f"({now}", "+inf", start=0, num=1, withscores=True)
    pipe.zcard(keys.OUTBOX)
    pipe.zrange(keys.OUTBOX, 0, 0, withscores=True)
    pipe.zcard(keys.EMBARGOES)
    pipe.zrange(keys.EMBARGOES, 0, 0, withscores=True)
    values = pipe.execute()
    depths = dict(zip(tasknames.POOLS, values[: len(tasknames.POOLS)], strict=True))
    values = values[len(tasknames.POOLS) :]
    counts = dict(zip(STATUSES, values[: len(STATUSES)], strict=True))
    failed, due_now, due_later, next_due, outbox, outbox_head, embargoes, embargo_head = values[len(STATUSES) :]
    unacked = _unacked_by_queue(client)
    workers = heartbeat.alive(client, now)
    return {
        "at": iso(now),
        "queues": [
            {"queue": pool, "waiting": depths[pool], "unacked": unacked.get(pool, 0)} for pool in tasknames.POOLS
        ],
        "workers": {
            "by_pool": {pool: sum(1 for w in workers if pool in w["pools"]) for pool in tasknames.POOLS},
            "alive": [
                {"name": w["name"], "pools": w["pools"], "host": w.get("host", ""), "pid": _int(w.get("pid")),
                 "concurrency": _int(w.get("concurrency")), "metrics_port": _int(w.get("metrics_port")),
                 "last_seen_seconds": round(now - float(w.get("seen") or now), 1)}
                for w in sorted(workers, key=lambda w: w["name"])
            ],
        },
        "articles": counts,
        "failed": _failed_details(client, failed),
        "deliveries": {
            "due_now": due_now,
            "retrying": due_later,
            "next_due_at": iso(next_due[0][1]) if next_due else None,
        },
        "outbox": {
            "entries": outbox,
            "oldest_age_seconds": round(now - outbox_head[0][1], 1) if outbox_head else None,
        },
        "embargoes": {
            "scheduled": embargoes,
            "next_release_at": iso(embargo_head[0][1]) if embargo_head else None,
        },
    }


def _unacked_by_queue(client: redis.Redis) -> dict[str, int]:
    """Messages delivered to a worker and not yet acknowledged, per queue (kombu's routing key)."""
    out: dict[str, int] = {}
    for seen, (_tag, raw) in enumerate(client.hscan_iter(keys.BROKER_UNACKED, count=500)):
        if seen >= UNACKED_SCAN_LIMIT:
            break
        try:
            queue = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            queue = "?"
        out[queue] = out.get(queue, 0) + 1
    return out


def _failed_details(client: redis.Redis, failed: list) -> list[dict]:
    pipe = client.pipeline(transaction=False)
    for aid, _score in failed:
        pipe.hmget(keys.article_state(aid.decode()), ["uri", "version", "reason"])
    out = []
    for (aid, score), (uri, version, reason) in zip(failed, pipe.execute(), strict=True):
        out.append({
            "id": aid.decode(), "uri": redis_text.text(uri), "version": _int(redis_text.text(version)),
            "failed_at": iso(score), "reason": redis_text.text(reason),
        })
    return out


def render(report: dict) -> str:
    """The report as aligned plain-text tables for a terminal."""
    lines = [f"Pressroom status at {report['at']}", ""]
    lines += _table(["queue", "waiting", "unacked", "workers"], [
        [q["queue"], q["waiting"], q["unacked"], report["workers"]["by_pool"].get(q["queue"], 0)]
        for q in report["queues"]
    ])
    if report["workers"]["alive"]:
        lines += [""] + _table(["worker", "pools", "processes", "metrics port", "last seen"], [
            [w["name"], ",".join(w["pools"]), w["concurrency"] or "", w["metrics_port"] or "-",
             f"{w['last_seen_seconds']}s ago"]
            for w in report["workers"]["alive"]
        ])
    else:
        lines += ["", "no workers alive (none has sent a heartbeat in the last "
                  f"{heartbeat.TTL} s)"]
    lines += [""] + _table(["articles", "count"], [[s, n] for s, n in report["articles"].items()])
    d, o, e = report["deliveries"], report["outbox"], report["embargoes"]
    lines += [""] + _table(["backlog", "count", "when"], [
        ["deliveries due now", d["due_now"], ""],
        ["deliveries retrying", d["retrying"], f"next {d['next_due_at']}" if d["next_due_at"] else ""],
        ["outbox entries", o["entries"],
         f"oldest {o['oldest_age_seconds']}s old" if o["oldest_age_seconds"] is not None else ""],
        ["embargoes scheduled", e["scheduled"], f"next {e['next_release_at']}" if e["next_release_at"] else ""],
    ])
    if report["failed"]:
        lines += ["", f"latest failed articles ({len(report['failed'])}):"]
        lines += _table(["id", "version", "failed at", "reason"], [
            [f["id"], f["version"], f["failed_at"], _clip(f["reason"], 90)] for f in report["failed"]
        ])
    return "\n".join(lines)


# Moves each article of a batch into the set of its stored status, scored by its last change.
# KEYS: state hashes   ARGV: the per-status key prefix, then the statuses
_REINDEX = """
local n = 0
for i = 1, #KEYS do
  local status, at = unpack(redis.call('HMGET', KEYS[i], 'status', 'updated_at'))
  if status then
    local aid = string.match(KEYS[i], '[^:]+$')
    for j = 2, #ARGV do
      if ARGV[j] ~= status then redis.call('ZREM', ARGV[1] .. ARGV[j], aid) end
    end
    redis.call('ZADD', ARGV[1] .. status, tonumber(at) or 0, aid)
    n = n + 1
  end
end
return n
"""


def reindex(client: redis.Redis, batch: int = 500) -> int:
    """Fill the per-status sets from every article hash (a SCAN); returns how many were indexed.

    Atomic per batch, so a status changed meanwhile is never overwritten by an older read.
    """
    script = client.register_script(_REINDEX)
    names: list[str] = []
    total = 0
    for name in client.scan_iter(match=keys.article_state(keys.ARTICLE_ID_GLOB), count=1000):
        names.append(name.decode())
        if len(names) >= batch:
            total += script(keys=names, args=[keys.ARTICLES_BY_STATUS, *STATUSES])
            names = []
    if names:
        total += script(keys=names, args=[keys.ARTICLES_BY_STATUS, *STATUSES])
    return int(total)


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
