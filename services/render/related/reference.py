"""Batch references for `pressroom related-eval`: what the engine must match, measured in the same run.

Both see the whole set at once, which the engine never does (it indexes one article at a
time as it arrives), so they are the bar, not a competitor:

- TF-IDF cosine as scikit-learn computes it (sublinear tf, min_df=2, its English stop
  words for English sets), the usual baseline of the literature and of
  ../shared/data/README.md;
- Okapi BM25 (k1 1.2, b 0.75, Lucene's idf) over the same tokens, each article's whole
  text as the query.

Like the engine, they rank each article only among articles of its own language (each
language's block of the score matrix, with that language's stop words for English), so
a set of several languages holds both to the same bar.

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


def _precision(scores, categories, languages) -> Precision:
    import numpy as np

    labels = np.asarray(categories)
    langs = np.asarray(languages)
    scores = np.where(langs[:, None] == langs[None, :], scores, -np.inf)
    np.fill_diagonal(scores, -np.inf)
    k = min(K, max(len(labels) - 1, 1))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    listed = np.isfinite(np.take_along_axis(scores, top, axis=1))  # a list shorter than k counts its gaps as misses
    same = (labels[top] == labels[:, None]) & listed
    return Precision(float(same[:, :5].sum() / (5 * len(labels))), float(same[:, :10].sum() / (10 * len(labels))))


def _blocks(texts: list[str], languages: list[str], score) -> object:
    """The whole score matrix, each language's block computed on that language's articles alone."""
    import numpy as np

    n = len(texts)
    matrix = np.full((n, n), -np.inf)
    for language in dict.fromkeys(languages):
        rows = [i for i, lang in enumerate(languages) if lang == language]
        if len(rows) < 2:
            continue
        try:
            block = score([texts[i] for i in rows], language)
        except ValueError:  # no term in two articles (min_df=2): nothing to rank by
            continue
        matrix[np.ix_(rows, rows)] = block
    return matrix


def _vectorizer(language: str, **options):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    stop = "english" if language == "en" else None
    if options.pop("counts", False):
        return CountVectorizer(stop_words=stop, min_df=2, **options)
    return TfidfVectorizer(stop_words=stop, min_df=2, sublinear_tf=True, **options)


def _tfidf_scores(texts: list[str], language: str):
    matrix = _vectorizer(language).fit_transform(texts)
    return (matrix @ matrix.T).toarray()


def _bm25_scores(texts: list[str], language: str, k1: float = 1.2, b: float = 0.75):
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
    return (queries @ docs.T).toarray()


def tfidf(texts: list[str], categories: list[str], languages: list[str]) -> Precision:
    return _precision(_blocks(texts, languages, _tfidf_scores), categories, languages)


def bm25(texts: list[str], categories: list[str], languages: list[str]) -> Precision:
    return _precision(_blocks(texts, languages, _bm25_scores), categories, languages)
