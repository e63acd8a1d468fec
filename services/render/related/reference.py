"""Batch references for `pressroom related-eval`: what the engine must match, measured in the same run.

Both see the whole set at once, which the engine never does (it indexes one article at a
time as it arrives), so they are the bar, not a competitor:

- TF-IDF cosine as scikit-learn computes it (sublinear tf, min_df=2, its English stop
  words for English sets), the usual baseline of the literature and of
  ../shared/data/README.md;
- Okapi BM25 (k1 1.2, b 0.75, Lucene's idf) over the same tokens, each article's whole
  text as the query.

They need scikit-learn (the `eval` extra: `pip install 'pressroom[eval]'`); without it
related-eval reports the engine alone and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

K = 10


@dataclass(frozen=True)
class Precision:
    at_5: float
    at_10: float


def available() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def _precision(scores, categories) -> Precision:
    import numpy as np

    labels = np.asarray(categories)
    np.fill_diagonal(scores, -np.inf)
    k = min(K, max(len(labels) - 1, 1))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    same = labels[top] == labels[:, None]
    return Precision(float(same[:, :5].sum() / (5 * len(labels))), float(same[:, :10].sum() / (10 * len(labels))))


def _vectorizer(language: str, **options):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    stop = "english" if language == "en" else None
    if options.pop("counts", False):
        return CountVectorizer(stop_words=stop, min_df=2, **options)
    return TfidfVectorizer(stop_words=stop, min_df=2, sublinear_tf=True, **options)


def tfidf(texts: list[str], categories: list[str], language: str = "en") -> Precision:
    matrix = _vectorizer(language).fit_transform(texts)
    return _precision((matrix @ matrix.T).toarray(), categories)


def bm25(texts: list[str], categories: list[str], language: str = "en", k1: float = 1.2, b: float = 0.75) -> Precision:
    import numpy as np
    from scipy.sparse import csr_matrix

    counts = _vectorizer(language, counts=True).fit_transform(texts).tocsr().astype(np.float64)
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    norm = k1 * (1 - b + b * lengths[coo.row] / max(lengths.mean(), 1.0))
    docs = csr_matrix((coo.data * (k1 + 1) / (coo.data + norm), (coo.row, coo.col)), shape=counts.shape)
    queries = csr_matrix((coo.data * (k1 + 1) / (coo.data + k1) * idf[coo.col], (coo.row, coo.col)), shape=counts.shape)
    return _precision((queries @ docs.T).toarray(), categories)
