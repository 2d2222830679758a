"""The graph's text view: a character n-gram LSA of the workspace's own texts, checked on
hand-made texts whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from coldrec import text_features
from coldrec.text_features import CharTopics


def _families(rng: np.random.Generator, per_family: int = 30) -> tuple[list[str], np.ndarray]:
    """Titles of three product lines: each shares a model code and words no other line uses,
    with a random size and colour every line uses."""
    lines = [("XR-7 kettle steel", "XR-7"), ("Qvo lamp desk", "Qvo"), ("zhang 电动牙刷 软毛", "牙刷")]
    texts, family = [], []
    for f, (words, _) in enumerate(lines):
        for _ in range(per_family):
            texts.append(f"{words} {rng.integers(1, 99)}cm {rng.choice(['red', 'blue', 'black'])}")
            family.append(f)
    return texts, np.array(family)


def test_transform_is_scikit_learns_tfidf_then_the_svd():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, _ = _families(np.random.default_rng(0))
    topics = CharTopics.fit(texts)
    assert topics is not None
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, dtype=np.float32)
    x = tfidf.fit_transform(texts)
    raw = TruncatedSVD(topics.dims, random_state=0).fit_transform(x)
    np.testing.assert_allclose(np.abs(topics._project(texts)), np.abs(raw), atol=1e-4)
    out = topics.transform(texts)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # unit rows
    np.testing.assert_allclose(_unit_mean(texts, topics), 0.0, atol=1e-5)  # centred on the fit sample's mean


def _unit_mean(texts: list[str], topics: CharTopics) -> np.ndarray:
    raw = topics._project(texts)
    return (raw / np.linalg.norm(raw, axis=1, keepdims=True)).mean(axis=0) - topics.mean


def test_each_title_is_nearest_to_its_own_product_line():
    texts, family = _families(np.random.default_rng(1))
    out = CharTopics.fit(texts).transform(texts)
    sims = out @ out.T
    np.fill_diagonal(sims, -np.inf)
    assert (family[sims.argmax(axis=1)] == family).all()
    # The shared sizes and colours do not join the lines: across lines the cosine is low.
    across = sims[family[:, None] != family[None, :]]
    within = sims[(family[:, None] == family[None, :]) & np.isfinite(sims)]
    assert within.mean() > 0.5 > across.mean() + 0.3


def test_dimensions_follow_the_rank_and_the_fit_reads_a_bounded_sample(monkeypatch):
    texts, _ = _families(np.random.default_rng(2), per_family=4)  # 12 texts: at most 11 topics
    assert CharTopics.fit(texts).dims == 11
    monkeypatch.setattr(text_features, "MAX_FIT_TEXTS", 9)
    assert CharTopics.fit(texts).dims == 8  # fitted on a sample of 9 texts
    assert CharTopics.fit(["ab", "cd"]) is None  # too few texts for two topics
    assert CharTopics.fit(["abc", "xyz", "klm"]) is None  # no n-gram in two texts


def test_the_saved_arrays_give_the_same_model_and_unknown_text_is_a_zero_row():
    texts, _ = _families(np.random.default_rng(3))
    topics = CharTopics.fit(texts)
    again = CharTopics.from_arrays(topics.arrays())
    np.testing.assert_array_equal(again.transform(texts[:5]), topics.transform(texts[:5]))
    assert not again.transform(["ΩΨ"]).any()  # no known n-gram


@pytest.mark.parametrize("n", [0, 1])
def test_empty_input_transforms_to_an_empty_array(n):
    texts, _ = _families(np.random.default_rng(4))
    assert CharTopics.fit(texts).transform(texts[:n]).shape == (n, CharTopics.fit(texts).dims)
