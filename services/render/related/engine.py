"""The related-articles index: incremental, in Redis, with bounded work per article.

Indexing a new article is one script call whatever the corpus size: it counts the
article's words into the document frequencies and writes its record (with its full term
vector) and at most `Tuning.posted_terms` postings into capped lists. A query is one
script call that reads at most `Tuning.posting_reads` + `Tuning.expansion_reads` posting
entries (plus a small per-term floor) and names `Tuning.candidates` by record; a read of
the records this process has not kept yet (`records.py`) and two pipelined reads of
document frequencies feed the second stage (`rerank.py`), so both stay bounded as the
index grows. Every worker shares the index, and it survives worker
restarts because it is nothing but Redis keys.

Callers index only published articles and `remove` withdrawn ones, and should do so under
the article's lock (as render's `reconcile` holds it) so one article's versions are not
indexed in the wrong order; each change is atomic in Redis either way.
"""

from __future__ import annotations

import dataclasses
import heapq
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from services.render.related import lua, minhash, records, rerank, scoring
from services.render.related.document import RelatedDoc
from services.render.related.keys import Keys
from services.render.related.scoring import DEFAULT, Tuning
from shared.keys import RELATED_INDEX
from shared.redis_text import text

if TYPE_CHECKING:
    import redis

LIST_SIZE = 5  # what "an article's top related list" means for fan-out: what a page shows
TIE_DIGITS = 2
WIDEN = 4  # candidates asked for the second time, as a multiple of Tuning.candidates


class Candidate(NamedTuple):
    """A tuple, not a frozen dataclass: a rebuild's queries make hundreds of thousands."""

    id: str
    score: float
    published_at: float
    sketch: frozenset[int]


@dataclass(frozen=True)
class _Reply:
    """The first stage's answer: the article's own sketch, vector and statistics, and its candidates."""

    sketch: frozenset[int]
    vector: rerank.Vector
    language: str
    articles: float
    total_length: float
    candidates: list[tuple[Candidate, rerank.StoredVector]]


class RelatedIndex:
    def __init__(self, redis_client: redis.Redis, prefix: str = RELATED_INDEX, tuning: Tuning = DEFAULT) -> None:
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RelatedIndex stores binary sketches: give it a client with decode_responses=False")
        self.redis = redis_client
        self.keys = Keys(prefix)
        self.tuning = tuning
        self._add = redis_client.register_script(lua.ADD)
        self._remove = redis_client.register_script(lua.REMOVE)
        self._query = redis_client.register_script(lua.QUERY)

    def index(self, doc: RelatedDoc, fanout: int = 0) -> list[str]:
        """Add or replace one published article; safe to repeat.

        Returns up to `fanout` ids of already indexed articles whose top related list now
        includes `doc`, so their pages can be re-rendered ([] when fanout is 0).
        """
        return self.affected_by(doc.id, fanout) if self.upsert(doc) and fanout > 0 else []

    def upsert(self, doc: RelatedDoc) -> bool:
        """Add or replace one published article; False when it is indexed already as it is."""
        return self._upsert(doc, scoring.analyse(doc, self.tuning))

    def analyse(self, doc: RelatedDoc) -> scoring.Analysis:
        """What indexing `doc` writes (its terms, sketch, digest), with this index's tuning."""
        return scoring.analyse(doc, self.tuning)

    def upsert_many(self, docs: list[RelatedDoc], analyses: list[scoring.Analysis] | None = None) -> list[bool]:
        """`upsert` for many articles (a rebuild's chunk): their scripts in one pipeline, each
        atomic in Redis; a correction (an article indexed before with other terms) goes on alone.
        `analyses`, when given, are `analyse(doc)` of each doc, done by the caller meanwhile."""
        analyses = [self.analyse(doc) for doc in docs] if analyses is None else analyses
        pipe = self.redis.pipeline(transaction=False)
        for doc, analysis in zip(docs, analyses, strict=True):
            self._add(keys=[self.keys.ids], args=self._add_args(doc, analysis), client=pipe)
        outcomes = [self._outcome(doc, analysis, reply)
                    for doc, analysis, reply in zip(docs, analyses, pipe.execute() if docs else [], strict=True)]
        return [outcome == "added" if outcome != "retry" else self._upsert(doc, analysis, tries=2)
                for doc, analysis, outcome in zip(docs, analyses, outcomes, strict=True)]

    def _upsert(self, doc: RelatedDoc, analysis: scoring.Analysis, tries: int = 3) -> bool:
        for _ in range(tries):
            outcome = self._outcome(doc, analysis, self._add(keys=[self.keys.ids], args=self._add_args(doc, analysis)))
            if outcome != "retry":
                return outcome == "added"
        raise RuntimeError(f"related index: {doc.id} kept changing under concurrent indexing")

    def remove(self, article_id: str) -> None:
        """Take an article out of every list (withdrawal); a no-op for an unknown article."""
        for _ in range(3):
            number = self.redis.hget(self.keys.ids, article_id)
            if number is None or self._remove_number(article_id, text(number)):
                return
        raise RuntimeError(f"related index: {article_id} kept changing under concurrent indexing")

    def query(
        self, article_id: str, k: int = 10, rescore: Callable[[list[Candidate]], list[Candidate]] | None = None
    ) -> list[str]:
        """Ids of up to `k` related articles, best first.

        Never the article itself, only its language, never a near-duplicate of it, and at
        most one article of any set of near-duplicates (the best scored, then the newest).
        `rescore`, when given, replaces the second stage's candidates (new scores) before the
        list is picked by these same rules: the seam for measuring an extra stage, such as
        bench/related_embedding.py's embedding hybrid, without copying the query.
        """
        if k <= 0:
            return []
        own, candidates = self._candidates(article_id)
        picked = self._pick(own, rescore(candidates) if rescore else candidates, k)
        if len(picked) < k and len(candidates) >= self.tuning.candidates:
            # a cluster of near-duplicates filled the candidates; look once further down
            own, candidates = self._candidates(article_id, self.tuning.candidates * WIDEN)
            picked = self._pick(own, rescore(candidates) if rescore else candidates, k)
        return [c.id for c in picked]

    def query_many(self, article_ids: list[str], k: int = 10, chunk: int = 50) -> dict[str, list[str]]:
        """`query` for many articles at once (a rebuild): the same lists, in a few round trips per `chunk`.

        The first stages of a chunk go out in one pipeline and their second stages share the
        three pipelined reads of `_rank`; a list cut short by near-duplicates is asked again
        alone, wider, exactly as `query` does.
        """
        out: dict[str, list[str]] = {}
        if k <= 0:
            return {aid: [] for aid in article_ids}
        for start in range(0, len(article_ids), chunk):
            ids = article_ids[start:start + chunk]
            pipe = self.redis.pipeline(transaction=False)
            for aid in ids:
                self._query(keys=[self.keys.ids], args=self._query_args(aid), client=pipe)
            for aid, (own, candidates) in zip(ids, self._rank(self._replies(pipe.execute())), strict=True):
                picked = self._pick(own, candidates, k)
                if len(picked) < k and len(candidates) >= self.tuning.candidates:
                    out[aid] = self.query(aid, k)
                else:
                    out[aid] = [c.id for c in picked]
        return out

    def affected_by(self, article_id: str, fanout: int, list_size: int = LIST_SIZE) -> list[str]:
        """Which of this article's closest neighbours now list it among their top `list_size`.

        Similarity is close to symmetric, so the articles most likely to list this one are
        the ones it lists; only its first `fanout` are checked, with all their queries
        pipelined into one round trip.
        """
        own, candidates = self._candidates(article_id)
        neighbours = [c.id for c in self._pick(own, candidates, fanout, collapse=False)]
        if not neighbours:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for neighbour in neighbours:
            self._query(keys=[self.keys.ids], args=self._query_args(neighbour), client=pipe)
        affected = []
        for neighbour, (theirs, their_candidates) in zip(
                neighbours, self._rank(self._replies(pipe.execute())), strict=True):
            if article_id in (c.id for c in self._pick(theirs, their_candidates, list_size)):
                affected.append(neighbour)
        return affected

    def __len__(self) -> int:
        return int(self.redis.hlen(self.keys.ids))

    def drop(self) -> int:
        """Delete every key of this index (for a rebuild from scratch); returns how many."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=self.keys.pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.redis.unlink(*batch)
                batch = []
        if batch:
            deleted += self.redis.unlink(*batch)
        return deleted

    # internals

    def _add_args(self, doc: RelatedDoc, analysis: scoring.Analysis) -> list:
        t = self.tuning
        return [
            self.keys.prefix, doc.id, analysis.language, repr(float(doc.published_at)), repr(analysis.length),
            analysis.terms_arg(), "\n".join(analysis.entities), rerank.blob_of(analysis.tf, analysis.entities),
            minhash.pack(analysis.sketch), analysis.digest, t.k1, t.b, t.posted_terms, t.entity_weight,
            t.posting_cap,
        ]

    def _outcome(self, doc: RelatedDoc, analysis: scoring.Analysis, reply: list) -> str:
        """What an add script's reply means: added, unchanged, or (a correction, now removed) retry."""
        if int(reply[0]) == 1:
            return "added"
        if text(reply[1]) == analysis.digest:
            return "unchanged"
        self.remove(doc.id)  # a correction: out with the old terms, then in again
        return "retry"

    def _remove_number(self, article_id: str, number: str) -> bool:
        vector_blob, legacy = self.redis.hmget(self.keys.doc(number), ["f", "u"])
        if vector_blob:
            df_terms = "\n".join(rerank.Vector.from_blob(vector_blob, 0.0).terms())
        else:  # a record written before full vectors were kept (analyzer version 2)
            df_terms = zlib.decompress(legacy).decode("utf-8") if legacy else ""
        return bool(self._remove(keys=[self.keys.ids], args=[self.keys.prefix, article_id, number, df_terms]))

    def _query_args(self, article_id: str, limit: int | None = None) -> list:
        t = self.tuning
        return [
            self.keys.prefix, article_id, t.query_terms, t.posting_reads, t.min_reads, t.feedback_docs,
            t.expansion_terms, t.expansion_reads, t.feedback_mix, limit or t.candidates,
        ]

    def _candidates(self, article_id: str, limit: int | None = None) -> tuple[frozenset[int], list[Candidate]]:
        raw = self._query(keys=[self.keys.ids], args=self._query_args(article_id, limit))
        return self._rank(self._replies([raw]))[0]

    def _replies(self, raws: list[list], kept: records.Records | None = None) -> list[_Reply | None]:
        """First-stage replies with their candidates' records: those `kept` (the process's) does
        not hold yet are read in one pipelined round trip and kept. A candidate whose record
        changed in between (removed or corrected meanwhile) is left out, as the next query would."""
        kept = records.RECORDS if kept is None else kept
        kept.trim()
        heads = [_head(raw) for raw in raws]
        found: dict[records.Key, records.Record | None] = {}
        missing: list[records.Key] = []
        for head in heads:
            for key, _ in head[1] if head else ():
                if key not in found:
                    found[key] = kept.get(key)
                    if found[key] is None:
                        missing.append(key)
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for key in missing:
                pipe.hmget(self.keys.doc(key[0].decode()), records.FIELDS)
            for key, fields in zip(missing, pipe.execute(), strict=True):
                found[key] = record = records.decode(key, fields)
                if record is not None:
                    kept.put(key, record)
        replies: list[_Reply | None] = []
        for head in heads:
            if head is None:
                replies.append(None)
                continue
            own, refs = head
            replies.append(dataclasses.replace(own, candidates=[
                (Candidate(record.id, score, record.published_at, record.sketch),
                 rerank.StoredVector(record.blob, record.length))
                for key, score in refs if (record := found[key]) is not None
            ]))
        return replies

    def _rank(
        self, replies: list[_Reply | None], terms: rerank.Terms = rerank.TERMS
    ) -> list[tuple[frozenset[int], list[Candidate]]]:
        """The second stage for each first-stage reply (`rerank.py`): full-vector BM25 with feedback.

        Two pipelined round trips for all replies together: the document frequencies of the
        articles' own terms, then those of their best `feedback_docs` candidates' terms not
        read yet. Vectors are coded by `terms` and weighed by term id (`rerank.Frequencies`,
        the same floats as `weights_of` and `expansion`), and a reply's candidates are
        scored all at once (`rerank.Candidates`).
        """
        t = self.tuning
        terms.trim()
        wanted = [r for r in replies if r is not None and r.candidates and r.vector.terms()]
        names = terms.names
        coded = [(terms.code(r.vector),
                  rerank.Candidates([v for _, v in r.candidates], r.total_length / (r.articles or 1.0), t, terms))
                 for r in wanted]
        if terms.names is not names:  # another thread trimmed the ids meanwhile: code this batch apart
            return self._rank(replies, rerank.Terms())
        freqs = {language: rerank.Frequencies(names) for language in dict.fromkeys(r.language for r in wanted)}
        own_ids: dict[str, list[np.ndarray]] = {language: [] for language in freqs}
        for reply, (own, _) in zip(wanted, coded, strict=True):
            own_ids[reply.language].append(own[0])
        self._read_dfs(freqs, own_ids)
        plain, feedback_ids = [], {language: [] for language in freqs}
        for reply, (own, batch) in zip(wanted, coded, strict=True):
            n = reply.articles or 1.0
            query = freqs[reply.language].weights(own, n, t)
            scores = batch.bm25(query)
            top = heapq.nlargest(t.feedback_docs, range(len(scores)), key=scores.__getitem__)
            plain.append((query, batch, scores, top))
            feedback_ids[reply.language].extend(batch.coded[i][0] for i in top)
        self._read_dfs(freqs, feedback_ids)
        ranked = {}
        for reply, (query, batch, scores, top) in zip(wanted, plain, strict=True):
            n, frequencies = reply.articles or 1.0, freqs[reply.language]
            feedback = [(scores[i], frequencies.weights(batch.coded[i], n, t)) for i in top]
            expansion = rerank.expansion_of(feedback, t)
            alpha = t.feedback_mix if len(expansion) else 0.0
            mass = query.total() or 1.0
            widened = batch.bm25(expansion) if alpha else [0.0] * len(scores)
            ranked[id(reply)] = [
                (1 - alpha) * plain / mass + (alpha * more if alpha else 0.0)
                for plain, more in zip(scores, widened, strict=True)
            ]
        out = []
        for reply in replies:
            if reply is None:
                out.append((frozenset(), []))
                continue
            scores = ranked.get(id(reply)) or [c.score for c, _ in reply.candidates]
            out.append((reply.sketch, [
                Candidate(c.id, score, c.published_at, c.sketch)
                for (c, _), score in zip(reply.candidates, scores, strict=True)
            ]))
        return out

    def _read_dfs(self, freqs: dict[str, rerank.Frequencies], ids: dict[str, list]) -> None:
        """Read the document frequencies of the given term ids not read yet, every language in
        one pipelined round trip. A batch's articles share most of their words, so each term
        is asked once for all of them."""
        asks = []
        for language, frequencies in freqs.items():
            frequencies.grow()
            unread = frequencies.unasked(np.concatenate(ids[language])) if ids.get(language) else None
            if unread is not None and len(unread):
                asks.append((language, unread))
        if not asks:
            return
        pipe = self.redis.pipeline(transaction=False)
        for language, unread in asks:
            names = freqs[language].names
            pipe.hmget(self.keys.df(language), [names[i] for i in unread.tolist()])
        for (language, unread), counts in zip(asks, pipe.execute(), strict=True):
            freqs[language].update(unread, counts)

    def _pick(
        self, own: frozenset[int], candidates: list[Candidate], k: int, collapse: bool = True
    ) -> list[Candidate]:
        """Best first, newest first among equal scores, skipping near-duplicates.

        With `collapse` off, near-duplicates of each other are all kept (fan-out: every copy
        of a story may list the new article); near-duplicates of `own` are always skipped.

        Candidates scoring under `Tuning.min_score_share` of the best are not related enough
        to list: in a small or young index they are whatever shares a word or two.

        Scores within about 1% of each other (equal to `TIE_DIGITS` decimals as a share of
        the best) count as equal: differences that small say nothing about the stories
        (float noise, one word's frequency), so the newer story wins.
        """
        threshold = self.tuning.duplicate_threshold
        top = max((c.score for c in candidates), default=0.0) or 1.0
        floor = self.tuning.min_score_share * top
        ordered = sorted(
            (c for c in candidates if c.score >= floor),
            key=lambda c: (-round(c.score / top, TIE_DIGITS), -c.published_at, c.id),
        )
        picked: list[Candidate] = []
        for candidate in ordered:
            if len(picked) >= k:
                break
            if minhash.near_duplicates(candidate.sketch, own, threshold):
                continue
            if collapse and any(minhash.near_duplicates(candidate.sketch, p.sketch, threshold) for p in picked):
                continue
            picked.append(candidate)
        return picked


def _head(raw: list) -> tuple[_Reply, list[tuple[records.Key, float]]] | None:
    """A first-stage reply, decoded but for its candidates, which it names by record key and score."""
    if not raw:
        return None
    own = _Reply(
        sketch=frozenset(minhash.unpack(raw[0])),
        vector=rerank.Vector.from_blob(raw[1], 0.0),
        language=text(raw[2]),
        articles=float(raw[3] or 1),
        total_length=float(raw[4] or 0),
        candidates=[],
    )
    refs = [((raw[i], raw[i + 2], raw[i + 3]), float(raw[i + 1])) for i in range(5, len(raw) - 3, 4)]
    return own, refs
