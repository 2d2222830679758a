"""Active learning: query strategies on tiny known data, and the active-learning protocol."""

from __future__ import annotations

import numpy as np
import pytest

from coldrec.errors import ConfigError
from coldrec.active import STRATEGIES, rank_unlabelled, uncertainty
from coldrec.evaluate import LabelledData, run_active_learning
from tests.conftest import unit_rows

# Row 0: confident; 1: flattest (lowest top probability, highest entropy); 2: smallest gap
# between the top two; 3: in between.
PROBA = np.array(
    [
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.30, 0.30],  # flattest: least confident, highest entropy
        [0.48, 0.47, 0.05],  # smallest margin
        [0.70, 0.20, 0.10],
    ]
)


def test_strategies_are_the_contract_names():
    assert STRATEGIES == ("random", "least-confidence", "margin", "entropy", "cluster-margin")


def test_least_confidence_picks_the_flattest_row():
    vectors = unit_rows(np.random.default_rng(0), 4, 8)
    assert rank_unlabelled("least-confidence", PROBA, vectors, 1).tolist() == [1]
    assert rank_unlabelled("least-confidence", PROBA, vectors, 4).tolist() == [1, 2, 3, 0]
    np.testing.assert_allclose(uncertainty("least-confidence", PROBA), [0.10, 0.60, 0.52, 0.30])


def test_margin_picks_the_smallest_top_two_gap():
    vectors = unit_rows(np.random.default_rng(0), 4, 8)
    assert rank_unlabelled("margin", PROBA, vectors, 2).tolist() == [2, 1]
    np.testing.assert_allclose(uncertainty("margin", PROBA), [0.15, 0.90, 0.99, 0.50])


def test_entropy_prefers_the_spread_out_row():
    vectors = unit_rows(np.random.default_rng(0), 4, 8)
    assert rank_unlabelled("entropy", PROBA, vectors, 1).tolist() == [1]
    score = uncertainty("entropy", PROBA)
    assert score[1] == pytest.approx(-(0.4 * np.log(0.4) + 0.6 * np.log(0.3)))
    assert score.argmin() == 0


def test_cluster_margin_does_not_pick_two_near_duplicates():
    rng = np.random.default_rng(1)
    centres = unit_rows(rng, 3, 16)
    # Rows 0 and 1: the same listing twice (the two most uncertain); row 2: slightly less
    # uncertain but elsewhere; the rest: confident, spread over the three areas.
    vectors = np.vstack([centres[0], centres[0] + 1e-3, centres[1], *(centres[i % 3] for i in range(9))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    proba = np.array([[0.50, 0.49, 0.01], [0.50, 0.495, 0.005], [0.55, 0.40, 0.05]] + [[0.98, 0.01, 0.01]] * 9)
    assert rank_unlabelled("margin", proba, vectors, 2).tolist() == [1, 0]  # both duplicates
    picked = rank_unlabelled("cluster-margin", proba, vectors, 2).tolist()
    assert picked[0] == 1 and picked[1] == 2  # the most uncertain, then the other area
    np.testing.assert_allclose(uncertainty("cluster-margin", proba), uncertainty("margin", proba))


def test_cluster_margin_survives_exact_duplicates():
    vectors = np.tile(unit_rows(np.random.default_rng(2), 1, 8), (30, 1))
    proba = np.tile([[0.5, 0.3, 0.2]], (30, 1))
    picked = rank_unlabelled("cluster-margin", proba, vectors, 5)
    assert len(picked) == 5 and len(set(picked.tolist())) == 5


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    vectors = unit_rows(np.random.default_rng(3), 50, 8)
    proba = np.full((50, 3), 1 / 3)
    a = rank_unlabelled("random", proba, vectors, 10, seed=7)
    assert a.tolist() == rank_unlabelled("random", proba, vectors, 10, seed=7).tolist()
    assert a.tolist() != rank_unlabelled("random", proba, vectors, 10, seed=8).tolist()
    assert len(set(a.tolist())) == 10


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_distinct_valid_indices_and_caps_n(strategy):
    rng = np.random.default_rng(4)
    vectors = unit_rows(rng, 40, 8)
    proba = rng.dirichlet(np.ones(5), size=40)
    picked = rank_unlabelled(strategy, proba, vectors, 12, seed=1)
    assert len(picked) == 12 and len(set(picked.tolist())) == 12 and picked.max() < 40
    assert picked.tolist() == rank_unlabelled(strategy, proba, vectors, 12, seed=1).tolist()
    assert len(rank_unlabelled(strategy, proba[:3], vectors[:3], 10)) == 3
    assert len(rank_unlabelled(strategy, proba, vectors, 0)) == 0


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(ConfigError, match="least-confidence.*cluster-margin"):
        rank_unlabelled("smallest-margin", PROBA, np.zeros((4, 2)), 1)
    with pytest.raises(ConfigError, match="valid strategies"):
        uncertainty("bogus", PROBA)


def _toy(n_per_class=16):
    words = [("pan", "pot", "wok"), ("boot", "shoe", "sandal"), ("dog", "cat", "pet")]
    texts, labels = [], []
    for c, vocab in enumerate(words):
        for i in range(n_per_class):
            texts.append(f"{vocab[i % 3]} {vocab[(i + 1) % 3]} {i}")
            labels.append(c)
    return LabelledData(texts, texts, np.array(labels), ["Cookware", "Footwear", "Pets"], "toy")


def test_run_active_learning_records_a_curve_per_strategy(tiny_encoder):
    data = _toy()
    doc = run_active_learning(data, tiny_encoder, ["random", "margin", "cluster-margin"], budget=12, step=5,
                              seeds=2, test_size=10)
    rows = doc["results"]
    for strategy in ("random", "margin", "cluster-margin"):
        mine = [r for r in rows if r["method"] == f"active:{strategy}"]
        assert [r["labels"] for r in mine] == [0, 5, 10, 12]
        for r in mine:
            assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0
            assert {"accuracy_std", "macro_f1_std", "seeds"} <= set(r) and r["seeds"] == 2
        # Zero labels is the same zero-shot model whatever the strategy.
        assert mine[0]["accuracy"] == rows[0]["accuracy"]
    assert set(doc["labels_to_match_random"]) == {"random", "margin", "cluster-margin"}
    assert doc["labels_to_match_random"]["random"] <= 12
    assert doc["active"]["budget"] == 12 and doc["active"]["step"] == 5


class _TextIdEncoder:
    """Each text gets its own fixed random unit vector, so a vector identifies its row."""

    name, dim, device = "text-id", 24, "cpu"

    def encode(self, texts, progress=None):
        import zlib

        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts]
        x = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-9)


def test_active_learning_labels_come_from_the_pool_only(monkeypatch):
    """Queried items never include test rows or rows sharing a title with one."""
    import coldrec.evaluate as ev

    data = _toy()
    data.groups = [" ".join(t.split()[:2]) for t in data.texts]  # many rows share a "title"
    encoder = _TextIdEncoder()
    seen: list[np.ndarray] = []
    real_update = ev.ColdStartClassifier.update_labels

    def spy(self, rows, classes, **kwargs):
        seen.append(np.asarray(rows))  # rows are positions in the data (every row is a graph item)
        return real_update(self, rows, classes, **kwargs)

    monkeypatch.setattr(ev.ColdStartClassifier, "update_labels", spy)
    split = ev.make_splits(data, [], 1, 6)[0]
    assert 0 < len(split.pool) < len(data.texts) - 6  # some rows excluded for sharing a title
    run_active_learning(data, encoder, ["margin", "cluster-margin"], budget=10, step=5, seeds=1, test_size=6)
    for rows in seen:
        assert set(rows.tolist()) <= set(split.pool.tolist())
    assert [len(v) for v in seen] == [5, 10, 5, 10]


def test_run_active_learning_validates_its_arguments(tiny_encoder):
    data = _toy(4)
    with pytest.raises(ConfigError, match="valid strategies"):
        run_active_learning(data, tiny_encoder, ["nope"], budget=10, step=5)
    with pytest.raises(ConfigError, match="step"):
        run_active_learning(data, tiny_encoder, ["margin"], budget=5, step=10)
    with pytest.raises(ConfigError, match="positive"):
        run_active_learning(data, tiny_encoder, ["margin"], budget=10, step=0)


def test_shots_protocol_reports_the_predictor_with_and_without_the_graph(tiny_encoder):
    from coldrec.evaluate import DEFAULT_METHODS, METHODS, run_evaluation

    assert {"coldrec", "coldrec-inductive", "prototype", "tfidf-logreg"} == set(DEFAULT_METHODS)
    assert set(METHODS) == set(DEFAULT_METHODS) | {"coldrec+finetune"}  # fine-tuning only when asked
    doc = run_evaluation(_toy(), tiny_encoder, shots=[0, 4], seeds=1, test_size=10,
                         methods=["coldrec", "coldrec-inductive"])
    rows = {(r["method"], r["shots"]): r for r in doc["results"]}
    assert set(rows) == {("coldrec", 0), ("coldrec", 4), ("coldrec-inductive", 0), ("coldrec-inductive", 4)}
    assert all(0.0 <= r["accuracy"] <= 1.0 and "ece" in r and "fit_predict_s" in r for r in rows.values())
    with pytest.raises(ConfigError, match="valid methods"):
        run_evaluation(_toy(), tiny_encoder, shots=[4], seeds=1, test_size=10, methods=["nope"])
