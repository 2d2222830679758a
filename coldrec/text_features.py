"""Character n-gram topics of a workspace's own texts: the item graph's second view.

A sentence encoder reads a title as a whole and misses what a shop's titles share letter by
letter: a model series, a unit, a brand in two scripts, a Chinese compound the encoder's
vocabulary splits badly. A latent semantic analysis (Deerwester et al. 1990) of the catalogue's
own texts keeps that: TF-IDF of character 1-3-grams (no tokenizer, so it works for text without
spaces), reduced by a truncated SVD to :data:`MAX_DIMS` topics. The graph's edges then mix the
two views' cosines (:mod:`coldrec.graph`); measured in BENCHMARKS.md, "Catalogues in other
languages".

Everything is fitted on the workspace's texts, nothing on a benchmark: the n-gram range and the
minimum document frequency are the usual ones for character n-grams, the dimension is
``min(MAX_DIMS, rank - 1)`` of the sample's TF-IDF matrix (the SVD cannot have more). Bounded at
any catalogue size: the fit reads a seeded sample of at most :data:`MAX_FIT_TEXTS` texts and keeps
at most :data:`MAX_NGRAMS` n-grams (the most frequent), so the fitted model is at most
``MAX_DIMS x MAX_NGRAMS`` floats (64 MB); :meth:`CharTopics.transform` works in chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Texts the fit reads at most (a seeded sample of a larger catalogue).
MAX_FIT_TEXTS = 50_000
#: N-grams kept at most (the most frequent in the sample).
MAX_NGRAMS = 65_536
#: Topics at most: LSA's usual size (a few hundred); fewer when the sample's rank is lower.
MAX_DIMS = 256
#: Character n-gram lengths and the documents an n-gram must occur in to count.
NGRAM_RANGE = (1, 3)
MIN_DF = 2
#: Texts transformed at once (a sparse block of about 20k x 100 and its 20k x 256 topics).
_CHUNK = 20_000


@dataclass
class CharTopics:
    """A fitted character n-gram LSA: ``transform(texts)`` gives unit rows, centred on the mean
    of the fit sample's rows (as the graph centres the embedding, so cosines spread over [-1, 1])."""

    ngrams: np.ndarray  # the n-grams, in column order
    idf: np.ndarray  # (n_ngrams,) float32
    components: np.ndarray  # (dims, n_ngrams) float32
    mean: np.ndarray  # (dims,) float32

    @property
    def dims(self) -> int:
        """Number of topics."""
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, texts: Sequence[str]) -> "CharTopics | None":
        """Fit on ``texts`` (a seeded sample of :data:`MAX_FIT_TEXTS` when more); ``None`` when
        they have too few shared n-grams for two topics (a handful of texts)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [str(t) for t in texts]
        if len(texts) > MAX_FIT_TEXTS:
            pick = np.sort(np.random.default_rng(0).choice(len(texts), MAX_FIT_TEXTS, replace=False))
            texts = [texts[i] for i in pick]
        if len(texts) < 3:
            return None
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=NGRAM_RANGE, min_df=MIN_DF, sublinear_tf=True,
                                     max_features=MAX_NGRAMS, dtype=np.float32)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # no n-gram in two texts
            return None
        dims = min(MAX_DIMS, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
        if dims < 2:
            return None
        svd = TruncatedSVD(dims, random_state=0).fit(tfidf)
        vocabulary = vectorizer.vocabulary_
        ngrams = np.empty(len(vocabulary), dtype=object)
        for ngram, column in vocabulary.items():
            ngrams[column] = ngram
        topics = cls(ngrams.astype(str), vectorizer.idf_.astype(np.float32), svd.components_.astype(np.float32),
                     np.zeros(dims, dtype=np.float32))
        topics.mean = _unit(topics._project(texts)).mean(axis=0).astype(np.float32)
        return topics

    def _project(self, texts: Sequence[str]) -> np.ndarray:
        """Topic scores of ``texts`` (TF-IDF exactly as fitted, then the SVD), not normalised."""
        from sklearn.feature_extraction.text import CountVectorizer

        counts = CountVectorizer(analyzer="char", ngram_range=NGRAM_RANGE, dtype=np.float32,
                                 vocabulary={str(g): i for i, g in enumerate(self.ngrams)}).transform(list(texts))
        counts.data = (1.0 + np.log(counts.data)) * self.idf[counts.indices]  # sublinear tf times idf
        norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
        counts = counts.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]).tocsr()
        return np.asarray(counts @ self.components.T, dtype=np.float32)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Unit, centred topic rows of ``texts`` (``(n, dims)`` float32; a text with no known
        n-gram gives a zero row), in chunks of 20,000 texts."""
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for start in range(0, len(texts), _CHUNK):
            raw = self._project(texts[start : start + _CHUNK])
            known = np.linalg.norm(raw, axis=1) > 0
            block = _unit(_unit(raw) - self.mean)
            out[start : start + len(block)] = np.where(known[:, None], block, 0.0)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as plain arrays (saved without pickle with the predictor's state)."""
        return {"ngrams": self.ngrams.astype(str), "idf": self.idf, "components": self.components, "mean": self.mean}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "CharTopics":
        """The model :meth:`arrays` described."""
        return cls(np.asarray(arrays["ngrams"]).astype(str), np.asarray(arrays["idf"], np.float32),
                   np.asarray(arrays["components"], np.float32), np.asarray(arrays["mean"], np.float32))


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)).astype(np.float32)
