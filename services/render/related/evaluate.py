"""The quality harness behind `pressroom related-eval`: category precision of the real engine.

Records ({id, title, body, category}, optionally `language`, default "en") are indexed one
by one in file order through the production code and storage (a Redis of its own, or a
throwaway key prefix on a given one), then every record's top 10 is asked for. A listed
article counts as relevant when it has the record's category; a list shorter than k counts
its gaps as misses. Each set is reported beside the batch references of `reference.py`
computed on the same records in the same run.
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

from services.render.related import reference
from services.render.related.document import RelatedDoc
from services.render.related.engine import RelatedIndex
from services.render.related.progress import Progress
from services.render.related.scoring import DEFAULT, Tuning
from services.render.related.tokenize import language_key
from shared import keys

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
            if not isinstance(record.get("language", "en"), str):
                missing.append("language")
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
        index.index(RelatedDoc(record["id"], record.get("language", "en"), record["title"], record["body"], (),
                               float(position)))
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
    from shared import servers

    directory = tempfile.mkdtemp(prefix="pr-related-eval-")
    port = servers.free_port()
    proc = subprocess.Popen(
        servers.redis_command(port, directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        servers.wait_for_port(port, 15, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class SetReport:
    name: str
    engine: Report
    tfidf: reference.Precision | None
    bm25: reference.Precision | None

    def holds(self) -> bool:
        """At or above the TF-IDF reference at both depths (True when there is no reference)."""
        if self.tfidf is None:
            return True
        return (self.engine.precision_at_5 >= self.tfidf.at_5 - 5e-4
                and self.engine.precision_at_10 >= self.tfidf.at_10 - 5e-4)


def references(records: list[dict]) -> tuple[reference.Precision | None, reference.Precision | None]:
    """TF-IDF and BM25, each article ranked within its own language, or (None, None) without scikit-learn."""
    if not reference.available() or len(records) < 3:
        return None, None
    texts = [f"{r['title']} {r['body']}" for r in records]
    categories = [r["category"] for r in records]
    languages = [language_key(r.get("language") or "en") for r in records]
    return reference.tfidf(texts, categories, languages), reference.bm25(texts, categories, languages)


def run(
    paths: list[str | Path] | str | Path,
    redis_url: str | None,
    out: TextIO,
    progress: TextIO | None = None,
    tuning: Tuning = DEFAULT,
    with_references: bool = True,
) -> list[SetReport]:
    """Evaluate each file on `redis_url` under a throwaway prefix (deleted afterwards), or on an embedded Redis."""
    import redis

    if isinstance(paths, str | Path):
        paths = [paths]
    sets = [(str(p), load_records(p)) for p in paths]
    reports = []
    with contextlib.ExitStack() as stack:
        where = f"Redis at {redis_url.split('@')[-1]}" if redis_url else "embedded Redis"
        url = redis_url or stack.enter_context(embedded_redis())
        client = redis.Redis.from_url(url, socket_timeout=30)
        stack.callback(client.close)
        for name, records in sets:
            print(f"related-eval: {len(records)} articles from {name} on {where}", file=out, flush=True)
            index = RelatedIndex(client, prefix=f"{keys.RELATED_EVAL}{uuid.uuid4().hex[:12]}", tuning=tuning)
            try:
                report = evaluate(records, index, progress)
            finally:
                index.drop()
            tfidf, bm25 = references(records) if with_references else (None, None)
            reports.append(SetReport(Path(name).name, report, tfidf, bm25))
    print_table(reports, out, with_references)
    return reports


def print_table(reports: list[SetReport], out: TextIO, with_references: bool = True) -> None:
    def cell(p: reference.Precision | None, at: int) -> str:
        return "-" if p is None else f"{p.at_5 if at == 5 else p.at_10:.3f}"

    print(file=out)
    print(f"{'set':<28} {'articles':>8}  {'engine P@5':>10} {'P@10':>6}  {'TF-IDF P@5':>10} {'P@10':>6}  "
          f"{'BM25 P@5':>8} {'P@10':>6}  {'index ms':>8} {'query ms':>8}", file=out)
    for r in reports:
        e = r.engine
        print(f"{r.name:<28} {e.articles:>8}  {e.precision_at_5:>10.3f} {e.precision_at_10:>6.3f}  "
              f"{cell(r.tfidf, 5):>10} {cell(r.tfidf, 10):>6}  {cell(r.bm25, 5):>8} {cell(r.bm25, 10):>6}  "
              f"{e.index_ms:>8.2f} {e.query_ms:>8.2f}", file=out)
    if with_references and any(r.tfidf is None for r in reports):
        print("(no TF-IDF/BM25 reference: install scikit-learn, e.g. pip install 'pressroom[eval]')", file=out)
    elif with_references:
        below = [r.name for r in reports if not r.holds()]
        print("engine at or above TF-IDF on every set" if not below else f"engine below TF-IDF on: {', '.join(below)}",
              file=out)
    for r in reports:
        print(f"{r.name}: {r.engine.last_line()}", file=out)
