"""Related-articles benchmark: cost per article to index and per query as the corpus grows.

The engine must index each article as it arrives and answer a page's list in bounded
time, so the figure that matters is how the cost at 10,000 and 100,000 articles compares
with the cost at 1,000 in the same run (the baseline: it should stay flat). Also reported:
the Redis memory the index takes (INFO used_memory over the empty server), and the
Redis-side time of a query script, which is time the shared Redis is busy.

Articles are synthetic but shaped like news: a few hundred topics, each with its own
vocabulary drawn from the words of ../shared/data/dev_news.jsonl (or a generated
vocabulary if that file is absent), mixed with function words at their real frequencies
and a long tail of rare names; headline 8 words, body `--body-words` words. Articles are
indexed one at a time in a single thread, through the production code, on a redis-server
started here on a free 127.0.0.1 port.

    python bench/related.py [--sizes 1000,10000,100000] [--body-words 300] [--queries 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from pressroom import processes  # noqa: E402
from services.render.related import RelatedDoc, RelatedIndex  # noqa: E402
from services.render.related.scoring import DEFAULT  # noqa: E402
from services.render.related.stopwords import ENGLISH  # noqa: E402
from services.render.related.tokenize import words  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dev_news.jsonl"
TOPICS = 200
TOPIC_WORDS = 250
TOPIC_SHARE = 0.2  # of body words; the rest are function words and general vocabulary
RARE_PER_ARTICLE = 4  # names, places: the long tail that makes the vocabulary grow
WINDOW = 500  # articles indexed just before each checkpoint, timed
FANOUT_SAMPLE = 100
FANOUT = 5  # each checkpoint then indexes this many more articles with fan-out, timed


@dataclass(frozen=True)
class Row:
    articles: int
    index_ms: float  # wall time per article, client and Redis together
    index_redis_ms: float  # Redis CPU per article
    index_client_ms: float  # this process's CPU per article (analysis, encoding)
    fanout_ms: float
    query_ms: float
    query_redis_ms: float
    precision: float  # share of each top 10 from the article's own topic
    precision_wide: float  # the same with 4x the read budgets
    memory: int


class Newsroom:
    """A deterministic stream of synthetic articles."""

    def __init__(self, seed: int, body_words: int, data: Path) -> None:
        self.rng = random.Random(seed)
        self.body_words = body_words
        counts = self._vocabulary(data)
        ranked = [w for w, _ in counts.most_common()]
        self.general = ranked
        self.general_weights = _cumulative([counts[w] for w in ranked])
        content = [w for w in ranked if w not in ENGLISH and not w.isdigit() and len(w) > 2]
        zipf = _cumulative([1.0 / (r + 1) for r in range(TOPIC_WORDS)])
        self.topics = [(self.rng.sample(content, TOPIC_WORDS), zipf) for _ in range(TOPICS)]
        self.syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
        self.topic_of: list[int] = []  # article number -> topic, the right answer for its list

    def _vocabulary(self, data: Path) -> Counter:
        counts: Counter = Counter()
        if data.exists():
            with open(data, encoding="utf-8") as fh:
                for line in fh:
                    record = json.loads(line)
                    counts.update(words(record["title"] + " " + record["body"]))
        else:
            rng = random.Random(1)
            for rank in range(20000):
                counts["".join(rng.choice("etaoinshrdlucmfw") for _ in range(rng.randint(3, 9)))] += 20000 // (rank + 1)
            counts.update({w: 50000 for w in ENGLISH})
        return counts

    def article(self, number: int) -> RelatedDoc:
        rng = self.rng
        assert number == len(self.topic_of), "articles are generated in order"
        topic = rng.randrange(TOPICS)
        self.topic_of.append(topic)
        vocab, weights = self.topics[topic]
        n_topic = int(self.body_words * TOPIC_SHARE)
        body = rng.choices(vocab, cum_weights=weights, k=n_topic)
        body += rng.choices(self.general, cum_weights=self.general_weights, k=self.body_words - n_topic)
        body += ["".join(rng.choices(self.syllables, k=3)) for _ in range(RARE_PER_ARTICLE)]
        rng.shuffle(body)
        title = rng.choices(vocab, cum_weights=weights, k=5) + rng.choices(self.general, self.general_weights, k=3)
        return RelatedDoc(f"bench-{number}", "en", " ".join(title), " ".join(body), (), float(number))


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def topic_precision(newsroom: Newsroom, numbers: list[int], lists: list[list[str]]) -> float:
    hits = 0
    for number, listed in zip(numbers, lists, strict=True):
        topic = newsroom.topic_of[number]
        hits += sum(newsroom.topic_of[int(other.rsplit("-", 1)[1])] == topic for other in listed[:10])
    return hits / (10 * len(numbers))


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the server has used: unlike wall time, not inflated by other work on the machine."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(sizes: list[int], body_words: int, queries: int, seed: int, listpack_entries: int | None) -> list[Row]:
    directory = tempfile.mkdtemp(prefix="pr-bench-related-")
    port = processes.free_port()
    command = processes.redis_command(port, directory)
    if listpack_entries:
        command += ["--zset-max-ziplist-entries", str(listpack_entries)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        processes.wait_for_port(port, 15, proc)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=60)
        index = RelatedIndex(client, prefix="bench:rel")
        t = DEFAULT
        wide = RelatedIndex(client, prefix="bench:rel", tuning=dataclasses.replace(
            t, posting_reads=4 * t.posting_reads, expansion_reads=4 * t.expansion_reads, min_reads=4 * t.min_reads
        ))
        newsroom = Newsroom(seed, body_words, DATA)
        baseline = used_memory(client)
        rows: list[Row] = []
        indexed = 0
        started = time.monotonic()
        for size in sizes:
            untimed = size - WINDOW - indexed
            for _ in range(max(untimed, 0)):
                index.index(newsroom.article(indexed))
                indexed += 1
                if indexed % 10000 == 0:
                    print(f"  ... {indexed:,} articles indexed ({time.monotonic() - started:.0f}s)", file=sys.stderr)
            window = [newsroom.article(indexed + i) for i in range(max(size - indexed, 0))]
            cpu0, own0, t0 = redis_cpu(client), time.process_time(), time.perf_counter()
            for doc in window:
                index.index(doc)
            index_ms = 1000 * (time.perf_counter() - t0) / max(len(window), 1)
            index_redis_ms = 1000 * (redis_cpu(client) - cpu0) / max(len(window), 1)
            index_client_ms = 1000 * (time.process_time() - own0) / max(len(window), 1)
            indexed = max(indexed, size)
            memory = used_memory(client) - baseline
            sample = random.Random(size).sample(range(indexed), min(queries, indexed))
            index.query(f"bench-{sample[0]}")  # script cached
            cpu0, t0 = redis_cpu(client), time.perf_counter()
            lists = [index.query(f"bench-{number}") for number in sample]
            query_ms = 1000 * (time.perf_counter() - t0) / len(sample)
            query_redis_ms = 1000 * (redis_cpu(client) - cpu0) / len(sample)
            deeper = [wide.query(f"bench-{number}") for number in sample]
            precision = topic_precision(newsroom, sample, lists)
            precision_wide = topic_precision(newsroom, sample, deeper)
            # fan-out: the next articles as the render worker indexes them, asking who lists them
            fan = [newsroom.article(indexed + i) for i in range(FANOUT_SAMPLE)]
            t0 = time.perf_counter()
            for doc in fan:
                index.index(doc, fanout=FANOUT)
            fanout_ms = 1000 * (time.perf_counter() - t0) / len(fan)
            indexed += len(fan)
            rows.append(Row(size, index_ms, index_redis_ms, index_client_ms, fanout_ms, query_ms, query_redis_ms,
                            precision, precision_wide, memory))
            print(f"  {size:,}: index {index_ms:.2f} ms, query {query_ms:.2f} ms, P@10 {precision:.3f}, "
                  f"memory {memory / 2**20:.1f} MiB", file=sys.stderr)
        client.close()
        return rows
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(directory, ignore_errors=True)


def table(rows: list[Row]) -> str:
    base = rows[0]
    lines = [
        "| articles | index ms/article | x first | Redis CPU | client CPU | index + fan-out 5 ms "
        "| query ms | x first | Redis CPU | topic P@10 | P@10, 4x reads | index memory | bytes/article |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.articles:,} | {r.index_ms:.2f} | {r.index_ms / base.index_ms:.2f} | {r.index_redis_ms:.2f} "
            f"| {r.index_client_ms:.2f} | {r.fanout_ms:.2f} | {r.query_ms:.2f} | {r.query_ms / base.query_ms:.2f} "
            f"| {r.query_redis_ms:.2f} | {r.precision:.3f} | {r.precision_wide:.3f} | {r.memory / 2**20:.1f} MiB "
            f"| {r.memory / r.articles:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated corpus sizes (ascending)")
    parser.add_argument("--body-words", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300, help="queries timed at each size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--zset-listpack-entries", type=int,
        help="start Redis with this zset-max-ziplist-entries (default: Redis's 128) to see compact posting lists",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    if sizes[0] <= WINDOW:
        parser.error(f"sizes must exceed the {WINDOW}-article timing window")
    print(f"related: sizes {sizes}, {args.body_words}-word bodies, {args.queries} queries per size, "
          f"zset-max-ziplist-entries {args.zset_listpack_entries or 'default'}", file=sys.stderr)
    rows = run(sizes, args.body_words, args.queries, args.seed, args.zset_listpack_entries)
    print(table(rows))


if __name__ == "__main__":
    main()
