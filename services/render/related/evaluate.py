"""The quality harness behind `pressroom related-eval`: category precision of the real engine.

Records ({id, title, body, category}) are indexed one by one in file order through the
production code and storage (a Redis of its own, or a throwaway key prefix on a given
one), then every record's top 10 is asked for. A listed article counts as relevant when it
has the record's category; a list shorter than k counts its gaps as misses.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.render.related.document import RelatedDoc
from services.render.related.engine import RelatedIndex
from services.render.related.progress import Progress

K = 10


@dataclass(frozen=True)
class Report:
    articles: int
    precision_at_5: float
    precision_at_10: float
    index_ms: float  # mean per article
    query_ms: float  # mean per query

    def last_line(self) -> str:
        return (
            f"P@5={self.precision_at_5:.3f} P@10={self.precision_at_10:.3f} "
            f"index_ms={self.index_ms:.2f} query_ms={self.query_ms:.2f}"
        )


def load_records(path: str | Path) -> list[dict]:
    """The records of a JSONL file; raises ValueError naming the line of a bad record."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            missing = [f for f in ("id", "title", "body", "category") if not isinstance(record.get(f), str)]
            if missing:
                raise ValueError(f"{path}:{number}: missing or non-string {', '.join(missing)}")
            records.append(record)
    return records


def evaluate(records: list[dict], index: RelatedIndex, progress: TextIO | None = None) -> Report:
    """Index every record in order (arrival order is also its recency), then query each."""
    category = {r["id"]: r["category"] for r in records}
    bar = Progress(len(records), "index", progress)
    started = time.perf_counter()
    for position, record in enumerate(records):
        index.index(RelatedDoc(record["id"], "en", record["title"], record["body"], (), float(position)))
        bar.advance()
    index_seconds = time.perf_counter() - started
    bar.finish()
    bar = Progress(len(records), "query", progress)
    hits5 = hits10 = 0
    started = time.perf_counter()
    for record in records:
        listed = index.query(record["id"], K)
        same = [category.get(other) == record["category"] for other in listed]
        hits5 += sum(same[:5])
        hits10 += sum(same[:10])
        bar.advance()
    query_seconds = time.perf_counter() - started
    bar.finish()
    count = max(len(records), 1)
    return Report(
        articles=len(records),
        precision_at_5=hits5 / (5 * count),
        precision_at_10=hits10 / (10 * count),
        index_ms=1000 * index_seconds / count,
        query_ms=1000 * query_seconds / count,
    )


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A private redis-server on a free loopback port, stopped and deleted on exit; yields its URL."""
    from pressroom import processes

    directory = tempfile.mkdtemp(prefix="pr-related-eval-")
    port = processes.free_port()
    proc = subprocess.Popen(
        processes.redis_command(port, directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        processes.wait_for_port(port, 15, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def run(path: str | Path, redis_url: str | None, out: TextIO, progress: TextIO | None = None) -> Report:
    """Evaluate on `redis_url` under a throwaway prefix (deleted afterwards), or on an embedded Redis."""
    import redis

    records = load_records(path)
    with contextlib.ExitStack() as stack:
        where = f"Redis at {redis_url.split('@')[-1]}" if redis_url else "embedded Redis"
        url = redis_url or stack.enter_context(embedded_redis())
        client = redis.Redis.from_url(url, socket_timeout=30)
        stack.callback(client.close)
        index = RelatedIndex(client, prefix=f"pr:releval:{uuid.uuid4().hex[:12]}")
        stack.callback(index.drop)
        print(f"related-eval: {len(records)} articles from {path} on {where}", file=out)
        report = evaluate(records, index, progress)
    print(f"precision@5   {report.precision_at_5:.3f}", file=out)
    print(f"precision@10  {report.precision_at_10:.3f}", file=out)
    print(f"index         {report.index_ms:.2f} ms per article (one at a time, file order)", file=out)
    print(f"query         {report.query_ms:.2f} ms per query (top {K})", file=out)
    print(report.last_line(), file=out)
    return report
