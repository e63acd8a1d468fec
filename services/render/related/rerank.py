"""Second stage: score the first stage's candidates with every term of both articles.

The first stage (`lua.QUERY`) reads posting lists, which hold only each article's best
`Tuning.posted_terms` terms and are read to a budget, so its score is BM25 cut short. That is
cheap and finds the right neighbourhood, but on long articles (hundreds of words, many
shared terms of middling weight) the cut decides too much: on full-length news the
first stage alone fell well behind batch TF-IDF. So the best `Tuning.candidates` of the
first stage are scored again here with the exact BM25 of `scoring.py` over the full term
vectors (stored compressed in each article's record), with the live document frequencies
and average length, and once more with the query expanded by the best terms of its top
results (`expansion`); the first stage's own score is only used to pick the candidates.

Both passes use statistics as they are at query time (the full vectors hold raw term
frequencies, not weights), so a list does not depend on the order articles arrived in
beyond which candidates the first stage finds.
"""

from __future__ import annotations

import array
import heapq
import math
import sys
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.render.related.scoring import Tuning


@dataclass(frozen=True)
class Vector:
    """An article's full term vector: its word terms with their frequencies, and its entity terms.

    Kept as parallel sequences rather than a dict: a query decodes up to a hundred of
    these, and splitting one string and reading one float array is several times
    cheaper than building a dict (or decoding JSON) each time.
    """

    words: list[str]
    freqs: Sequence[float]
    entities: tuple[str, ...]
    length: float
    source: bytes | None = field(default=None, compare=False, repr=False)  # the stored blob: a content key

    @classmethod
    def of(cls, tf: dict[str, float], entities: tuple[str, ...] = (), length: float = 0.0) -> Vector:
        return cls(list(tf), array.array("f", tf.values()), tuple(entities), length)

    @classmethod
    def from_blob(cls, blob: bytes | None, length: float) -> Vector:
        if not blob:
            return cls([], (), (), length)
        words, entities, freqs = zlib.decompress(blob).split(b"\0", 2)
        values = array.array("f")
        values.frombytes(freqs)
        if sys.byteorder == "big":
            values.byteswap()
        return cls(words.decode("utf-8").split(), values, tuple(e for e in entities.decode("utf-8").split("\t") if e),
                   length, blob)

    @property
    def tf(self) -> dict[str, float]:
        return dict(zip(self.words, self.freqs, strict=True))

    def terms(self) -> list[str]:
        """Every term counted in document frequencies: words and entities."""
        return [*self.words, *self.entities]


class StoredVector:
    """A candidate's vector as stored, decoded only when its terms are read.

    Scoring reads only its coded form (`Terms`, cached by blob), and a rebuild's queries
    meet the same candidates again and again: only a reply's few best candidates (their
    feedback terms) and candidates not coded yet are decoded.
    """

    __slots__ = ("source", "length", "_vector")

    def __init__(self, blob: bytes | None, length: float) -> None:
        self.source, self.length, self._vector = blob, length, None

    def decoded(self) -> Vector:
        if self._vector is None:
            self._vector = Vector.from_blob(self.source, self.length)
        return self._vector

    @property
    def words(self) -> list[str]:
        return self.decoded().words

    @property
    def freqs(self) -> Sequence[float]:
        return self.decoded().freqs

    @property
    def entities(self) -> tuple[str, ...]:
        return self.decoded().entities

    def terms(self) -> list[str]:
        return self.decoded().terms()


def blob_of(tf: dict[str, float], entities: tuple[str, ...]) -> bytes:
    """The stored form `Vector.from_blob` reads: words, entities, then little-endian float32 frequencies."""
    values = array.array("f", tf.values())
    if sys.byteorder == "big":
        values.byteswap()
    names = "\t".join(e.replace("\0", "").replace("\t", " ") for e in entities)
    return zlib.compress(b"\0".join([" ".join(tf).encode("utf-8"), names.encode("utf-8"), values.tobytes()]))


def idf(df: float, n: float) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def weights_of(
    vector: Vector | StoredVector, df: dict[str, float], n: float, tuning: Tuning,
    idfs: dict[float, float] | None = None,
) -> dict[str, float]:
    """idf * saturated tf of each of the article's terms that another article shares (df > 1).

    Many terms share a document frequency: `idfs` (df -> idf, for this `n`) keeps them,
    across calls when the caller passes one.
    """
    k1 = tuning.k1
    weights: dict[str, float] = {}
    idfs = {} if idfs is None else idfs
    for term, tf in zip(vector.words, vector.freqs, strict=True):
        d = df.get(term, 1.0)
        if d > 1:
            i = idfs.get(d)
            if i is None:
                i = idfs[d] = idf(d, n)
            weights[term] = i * tf * (k1 + 1) / (tf + k1)
    for entity in vector.entities:
        d = df.get(entity, 1.0)
        if d > 1:
            i = idfs.get(d)
            if i is None:
                i = idfs[d] = idf(d, n)
            weights[entity] = tuning.entity_weight * i
    return weights


def expansion(feedback: list[tuple[float, dict[str, float]]], tuning: Tuning) -> dict[str, float]:
    """The best terms of a query's top results, summing to 1 (RM3's relevance model, over full vectors).

    `feedback` holds (score, term weights) of the top results; each gives its terms in
    proportion to its score and to their share of its own weight. The query the second
    stage ranks by is then (1 - feedback_mix) * query + feedback_mix * expansion, the
    query scaled to sum 1 too; BM25 is linear in the query weights, so that is scored as
    the same mix of the two scores.
    """
    total = sum(score for score, _ in feedback)
    if total <= 0 or tuning.rerank_expansion_terms <= 0:
        return {}
    terms: dict[str, float] = {}
    for score, weights in feedback:
        share = score / (total * (sum(weights.values()) or 1.0))
        for term, w in weights.items():
            terms[term] = terms.get(term, 0.0) + share * w
    best = heapq.nlargest(tuning.rerank_expansion_terms, terms.items(), key=lambda x: x[1])
    mass = sum(w for _, w in best) or 1.0
    return {t: w / mass for t, w in best}


def bm25(weights: dict[str, float], other: Vector | StoredVector, avg_length: float, tuning: Tuning) -> float:
    """score(q, d) of `scoring.py` over every shared term; entities weigh 1 in d, as in postings."""
    k1, b = tuning.k1, tuning.b
    norm = k1 * (1 - b + b * other.length / (avg_length or 1.0))
    score = 0.0
    get = weights.get
    for term, f in zip(other.words, other.freqs, strict=True):
        w = get(term)
        if w is not None:
            score += w * f * (k1 + 1) / (f + norm)
    for entity in other.entities:
        score += weights.get(entity, 0.0)
    return score


# coded vectors a process keeps between batches (a few kB each). 10,000 until stop 29: past it a rebuild
# of 20,000 articles coded and read its candidates again every few batches and took 332-345 s instead of
# 271; a render process holding 20,000 of each (records.RECORD_LIMIT too) has 268 MB resident
CODE_LIMIT = 40_000


class Terms:
    """Integer ids for terms, so one query's BM25 over all its candidates is a few array operations.

    A rebuild's queries name the same candidates again and again, so coded vectors are kept
    by the blob they were read from (content, so never stale) across batches, up to
    `limit`; `trim`, called before a batch codes anything, starts afresh past it. Ids mean
    something only within one `Terms`. Thread-safe: ids are handed out under a lock.
    """

    def __init__(self, limit: int = CODE_LIMIT) -> None:
        self.limit = limit
        self.index: dict[str, int] = {}
        self.names: list[str] = []  # by id
        self._coded: dict = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._coded)

    def trim(self) -> None:
        """Forget every id once past the limit; only safe before a batch codes its first vector."""
        with self._lock:
            if len(self._coded) > self.limit:
                self.index, self.names, self._coded = {}, [], {}

    def code(self, vector: Vector | StoredVector) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the vector's words then entities (the order `bm25` adds them in), and their
        frequencies (NaN for entities, which weigh 1 in d)."""
        key = vector.source if vector.source is not None else id(vector)
        found = self._coded.get(key)
        if found is not None and (vector.source is not None or found[0] is vector):
            return found[1], found[2]
        with self._lock:
            index, known = self.index, self.names
            names = vector.terms()
            for term in names:
                if term not in index:
                    index[term] = len(known)
                    known.append(term)
            ids = np.fromiter((index[term] for term in names), np.int32, len(names))
            freqs = np.concatenate([np.asarray(vector.freqs, np.float64), np.full(len(vector.entities), np.nan)])
            self._coded[key] = (None if vector.source is not None else vector, ids, freqs)
        return ids, freqs

    def dense(self, weights: dict[str, float]) -> np.ndarray:
        """The weights by term id; terms no coded vector has weigh nothing (they match nothing)."""
        out = np.zeros(len(self.index) or 1)
        index = self.index
        for term, w in weights.items():
            i = index.get(term)
            if i is not None:
                out[i] = w
        return out


TERMS = Terms()  # this process's: see `Terms`


class Candidates:
    """A reply's candidate vectors as flat arrays: `bm25` for all of them at once.

    Each term's share is computed with the same operations in the same order as `bm25`,
    and `np.bincount` adds them up per candidate in order (words, then entities), so the
    scores are the very floats `bm25` gives: lists do not depend on which path scored them.
    """

    def __init__(self, vectors: list[Vector | StoredVector], avg_length: float, tuning: Tuning, terms: Terms) -> None:
        self.count = len(vectors)
        self.terms = terms
        self.k1 = k1 = tuning.k1
        b = tuning.b
        self.coded = coded = [terms.code(v) for v in vectors]
        if not coded:
            return
        self.ids = np.concatenate([ids for ids, _ in coded])
        self.size = int(self.ids.max(initial=-1)) + 1
        self.freq = np.concatenate([freqs for _, freqs in coded])
        self.owner = np.repeat(np.arange(self.count), [len(ids) for ids, _ in coded])
        norms = np.array([k1 * (1 - b + b * v.length / (avg_length or 1.0)) for v in vectors])
        self.norm = norms[self.owner]
        self.is_word = ~np.isnan(self.freq)

    def bm25(self, weights: dict[str, float] | Weights) -> list[float]:
        if not self.count:
            return []
        if isinstance(weights, Weights):
            dense = np.zeros(max(self.size, int(weights.ids.max(initial=-1)) + 1))
            dense[weights.ids] = weights.values
            w = dense[self.ids]
        else:
            w = self.terms.dense(weights)[self.ids]
        f = self.freq
        share = np.where(self.is_word, w * f * (self.k1 + 1) / (f + self.norm), w)
        return np.bincount(self.owner, share, minlength=self.count).tolist()


class Weights:
    """Term weights by id (`Terms`), in the order `weights_of` gives them: words, then entities."""

    __slots__ = ("ids", "values")

    def __init__(self, ids: np.ndarray, values: np.ndarray) -> None:
        self.ids, self.values = ids, values

    def __len__(self) -> int:
        return len(self.ids)

    def total(self) -> float:
        """`sum` of the values, added in order as `sum(dict.values())` does (not numpy's pairwise sum)."""
        return sum(self.values.tolist())

    def named(self, terms: Terms) -> dict[str, float]:
        return {terms.names[i]: w for i, w in zip(self.ids.tolist(), self.values.tolist(), strict=True)}


class Frequencies:
    """One language's document frequencies by term id, for one batch of queries.

    `weights` is `weights_of` over a coded vector, and `expansion_of` is `expansion`: the
    same operations in the same order (each idf by `math.log`, sums added in order), so
    the very floats; but a batch's hundreds of vectors cost a few array operations each
    instead of a dict lookup per term. Ids are those of the `Terms` whose `names` it holds;
    only vectors coded before it was made (or `grow`n) can be weighed.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names  # `Terms.names` when the vectors were coded: a `trim` starts a new list
        self.df = np.ones(len(self.names) or 1)
        self.asked = np.zeros(len(self.df), bool)
        self._idf: dict[float, np.ndarray] = {}

    def grow(self) -> None:
        size = len(self.names)
        if size > len(self.df):
            self.df = np.concatenate([self.df, np.ones(size - len(self.df))])
            self.asked = np.concatenate([self.asked, np.zeros(size - len(self.asked), bool)])

    def unasked(self, ids: np.ndarray) -> np.ndarray:
        """The distinct ids among `ids` not read yet."""
        return np.unique(ids[~self.asked[ids]])

    def update(self, ids: np.ndarray, counts: list) -> None:
        """Record what Redis answered for `ids` (None: no article has the term)."""
        self.asked[ids] = True
        self.df[ids] = [1.0 if c is None else float(c) for c in counts]
        self._idf = {}

    def idf(self, n: float) -> np.ndarray:
        found = self._idf.get(n)
        if found is None:
            asked = np.flatnonzero(self.asked)
            values, inverse = np.unique(self.df[asked], return_inverse=True)
            found = np.zeros(len(self.df))
            found[asked] = np.array([idf(d, n) for d in values.tolist()])[inverse]
            self._idf[n] = found
        return found

    def weights(self, coded: tuple[np.ndarray, np.ndarray], n: float, tuning: Tuning) -> Weights:
        ids, freqs = coded
        keep = self.df[ids] > 1
        ids, f = ids[keep], freqs[keep]
        i = self.idf(n)[ids]
        k1 = tuning.k1
        with np.errstate(invalid="ignore"):
            values = np.where(np.isnan(f), tuning.entity_weight * i, i * f * (k1 + 1) / (f + k1))
        return Weights(ids, values)


def expansion_of(feedback: list[tuple[float, Weights]], tuning: Tuning) -> Weights:
    """`expansion` over `Weights`: contributions added per term in the order the dict adds
    them (np.bincount adds in input order), ties kept in first-seen order as nlargest does."""
    total = sum(score for score, _ in feedback)
    if total <= 0 or tuning.rerank_expansion_terms <= 0:
        return Weights(np.zeros(0, np.int32), np.zeros(0))
    ids = np.concatenate([w.ids for _, w in feedback])
    if not len(ids):
        return Weights(ids, np.zeros(0))
    shares = np.concatenate([
        (score / (total * (w.total() or 1.0))) * w.values for score, w in feedback
    ])
    sums = np.bincount(ids, shares)
    distinct, first = np.unique(ids, return_index=True)
    values = sums[distinct]
    order = np.lexsort((first, -values))[:tuning.rerank_expansion_terms]
    best_ids, best = distinct[order], values[order]
    mass = sum(best.tolist()) or 1.0
    return Weights(best_ids, best / mass)
