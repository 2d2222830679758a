"""Analytics: every query on a small hand-made store whose counts, centroids and nearest pairs
are worked out by hand in the comments."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from coldrec.errors import NotReadyError
from coldrec import analytics
from coldrec.analytics import (
    category_health,
    category_summary,
    confidence_histogram,
    drift,
    emerging_clusters,
    near_duplicates,
    near_duplicates_indexed,
    unsure_by_batch,
)
from coldrec.store import Store

MODEL = "m"

# 4-d unit vectors. Catalog: A = {a1, a2}, B = {b1, b2}, C = {c1}; category E has nothing.
# Batch "jan": n1 = a2, n2 = b2, n3 and n4 near/far from c1, n5 far from everything.
# Batch "feb" (newer): m1 = a1, m2 close to a2 (cos 0.96), m2 has no prediction.
VECTORS = {
    "a1": [1, 0, 0, 0],
    "a2": [0.6, 0.8, 0, 0],
    "b1": [0, 1, 0, 0],
    "b2": [0, 0.8, 0.6, 0],
    "c1": [0, 0, 0.6, 0.8],
    "n1": [0.6, 0.8, 0, 0],
    "n2": [0, 0.8, 0.6, 0],
    "n3": [0, 0, 0, 1],
    "n4": [0, 0, -0.6, 0.8],
    "n5": [-0.6, 0, -0.8, 0],
    "m1": [1, 0, 0, 0],
    "m2": [0.8, 0.6, 0, 0],
}
IDS = list(VECTORS)
MATRIX = np.array([VECTORS[i] for i in IDS], dtype=np.float32)

# item_id: (predicted category, probability, unsure) for model "m"
PREDICTIONS = {
    "n1": ("A", 0.95, False),
    "n2": ("B", 0.7, False),
    "n3": ("C", 0.45, True),
    "n4": ("C", 0.29, True),
    "n5": ("D", 0.4, True),
    "m1": ("A", 1.0, False),
}


def _save(store: Store, model: str, rows: dict[str, tuple[str, float, bool]]) -> None:
    store.save_predictions(
        model,
        pd.DataFrame(
            {
                "item_id": list(rows),
                "category": [r[0] for r in rows.values()],
                "probability": [r[1] for r in rows.values()],
                "unsure": [r[2] for r in rows.values()],
                "top3_json": [json.dumps([{"category": r[0], "probability": r[1]}]) for r in rows.values()],
            }
        ),
    )


@pytest.fixture
def seeded(store: Store) -> Store:
    store.upsert_categories(pd.DataFrame({"name": ["A", "B", "C", "D", "E"]}))
    titles = {i: f"title {i}" for i in IDS}
    titles["n5"] = "<b>odd</b> lamp"

    def frame(ids: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"item_id": ids, "title": [titles[i] for i in ids]})

    store.upsert_items(frame(["a1", "a2", "b1", "b2", "c1"]), source="catalog")
    store.upsert_items(frame(["n1", "n2", "n3", "n4", "n5"]), source="upload", batch="jan")
    store.upsert_items(frame(["m1", "m2"]), source="upload", batch="feb")
    store.add_labels(["a1", "a2", "b1", "b2", "c1"], ["A", "A", "B", "B", "C"], who="ana", source="import")
    store.label("n1", "A", who="ana")
    # A label that was changed: only the latest counts (b1 ends as B).
    store.label("b1", "C", who="ben")
    store.label("b1", "B", who="ben")
    _save(store, MODEL, PREDICTIONS)
    _save(store, "other", {"n1": ("B", 0.5, True), "n2": ("E", 0.1, True)})
    return store


def test_category_summary_counts_labels_and_predictions_per_category(seeded):
    summary = category_summary(seeded, MODEL)
    assert list(summary.columns) == [
        "category", "labelled", "labelled_catalog", "labelled_uploads", "predicted", "predicted_unsure", "mean_confidence"
    ]
    expected = pd.DataFrame(
        {
            "category": ["A", "B", "C", "D", "E"],
            "labelled": [3, 2, 1, 0, 0],
            "labelled_catalog": [2, 2, 1, 0, 0],
            "labelled_uploads": [1, 0, 0, 0, 0],
            "predicted": [2, 1, 2, 1, 0],
            "predicted_unsure": [0, 0, 2, 1, 0],
        }
    )
    pd.testing.assert_frame_equal(summary.drop(columns="mean_confidence"), expected, check_dtype=False)
    assert summary["mean_confidence"].iloc[:4].tolist() == pytest.approx([0.975, 0.7, 0.37, 0.4])
    assert math.isnan(summary["mean_confidence"].iloc[4])


def test_category_summary_of_an_unknown_model_has_zero_predictions(seeded):
    summary = category_summary(seeded, "nobody")
    assert summary["predicted"].sum() == 0 and summary["labelled"].tolist() == [3, 2, 1, 0, 0]


def test_confidence_histogram_bins_each_prediction_once(seeded):
    hist = confidence_histogram(seeded, MODEL)
    assert list(hist.columns) == ["category", "bin_start", "bin_end", "items"]
    rows = [(c, round(s, 6), round(e, 6), n) for c, s, e, n in hist.itertuples(index=False)]
    # 1.0 falls in the last bin; 0.7 in [0.7, 0.8) although 0.7 * 10 is not exactly 7 in floats.
    assert rows == [
        ("A", 0.9, 1.0, 2),
        ("B", 0.7, 0.8, 1),
        ("C", 0.2, 0.3, 1),
        ("C", 0.4, 0.5, 1),
        ("D", 0.4, 0.5, 1),
    ]
    fine = confidence_histogram(seeded, MODEL, bins=100)
    c = fine[fine["category"] == "C"]
    # 0.29 * 100 = 28.999999999999996: still bin 29.
    assert c["bin_start"].round(6).tolist() == [0.29, 0.45]
    assert fine["items"].sum() == len(PREDICTIONS)
    with pytest.raises(ValueError):
        confidence_histogram(seeded, MODEL, bins=0)


def test_unsure_by_batch_lists_upload_batches_newest_first(seeded):
    frame = unsure_by_batch(seeded, MODEL)
    assert list(frame.columns) == ["batch", "items", "predicted", "unsure", "unsure_share"]
    assert frame["batch"].tolist() == ["feb", "jan"]
    assert frame["items"].tolist() == [2, 5]
    assert frame["predicted"].tolist() == [1, 5]
    assert frame["unsure"].tolist() == [0, 3]
    assert frame["unsure_share"].tolist() == pytest.approx([0.0, 0.6])
    other = unsure_by_batch(seeded, "nobody")
    assert other["predicted"].tolist() == [0, 0] and other["unsure_share"].isna().all()


def test_category_health_centroids_spread_and_nearest_category(seeded):
    health = category_health(seeded, IDS, MATRIX)
    assert list(health.columns) == ["category", "items", "spread", "nearest_category", "centroid_cosine"]
    # Labelled: A = {a1, a2, n1}, B = {b1, b2}, C = {c1}.
    # A's centroid ∝ (2.2, 1.6, 0, 0); B's ∝ (0, 3, 1, 0) / √10; C = c1.
    a = np.array([2.2, 1.6, 0, 0]) / np.hypot(2.2, 1.6)
    b = np.array([0, 3, 1, 0]) / math.sqrt(10)
    c = np.array([0, 0, 0.6, 0.8])
    assert health["category"].tolist() == ["A", "B", "C"]  # A-B most confusable, then C (nearest B)
    assert health["items"].tolist() == [3, 2, 1]
    assert health["nearest_category"].tolist() == ["B", "A", "B"]
    assert health["centroid_cosine"].tolist() == pytest.approx([a @ b, a @ b, b @ c], abs=1e-6)
    spread_a = 1 - np.mean([np.array(VECTORS[i]) @ a for i in ("a1", "a2", "n1")])
    assert health["spread"].tolist() == pytest.approx([spread_a, 1 - 3 / math.sqrt(10), 0.0], abs=1e-6)


def test_category_health_uses_only_the_given_items_and_handles_one_category(seeded):
    only_a = category_health(seeded, ["a1", "a2", "m1"], MATRIX[[0, 1, 10]])
    assert only_a["category"].tolist() == ["A"] and only_a["items"].tolist() == [2]
    assert only_a["nearest_category"].isna().all() and only_a["centroid_cosine"].isna().all()
    assert category_health(seeded, ["m2"], MATRIX[[11]]).empty
    with pytest.raises(ValueError):
        category_health(seeded, IDS, MATRIX[:3])


def test_drift_compares_each_predicted_category_with_the_catalog(seeded):
    report = drift(seeded, MODEL, "jan", IDS, MATRIX, far_below=0.5)
    by = report.by_category
    assert list(by.columns) == ["category", "batch_items", "catalog_items", "centroid_distance", "far_share"]
    # D has no catalog items (NaN distance, listed first); then by distance: C, A, B.
    assert by["category"].tolist() == ["D", "C", "A", "B"]
    assert by["batch_items"].tolist() == [1, 2, 1, 1]
    assert by["catalog_items"].tolist() == [0, 1, 2, 2]
    assert math.isnan(by["centroid_distance"].iloc[0])
    # C: batch centroid ∝ (0, 0, -1, 3) vs c1 -> cos 1.8/√10; A: n1 vs (2, 1)/√5; B: n2 vs (0, 3, 1)/√10.
    expected = [1 - 1.8 / math.sqrt(10), 1 - 2 / math.sqrt(5), 1 - 3 / math.sqrt(10)]
    assert by["centroid_distance"].iloc[1:].tolist() == pytest.approx(expected, abs=1e-6)
    # Best catalog cosines: n1 1.0, n2 1.0, n3 0.8, n4 0.28, n5 0.0 (b1).
    assert by["far_share"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_drift_lists_items_far_from_the_whole_catalog(seeded):
    report = drift(seeded, MODEL, "jan", IDS, MATRIX, far_below=0.5)
    cand = report.new_category_candidates
    assert list(cand.columns) == [
        "item_id", "title", "predicted", "probability", "nearest_catalog_id", "nearest_catalog_title",
        "nearest_similarity",
    ]
    assert cand["item_id"].tolist() == ["n5", "n4"]
    assert cand["title"].tolist() == ["<b>odd</b> lamp", "title n4"]
    assert cand["predicted"].tolist() == ["D", "C"]
    assert cand["probability"].tolist() == pytest.approx([0.4, 0.29])
    assert cand["nearest_catalog_id"].tolist() == ["b1", "c1"]
    assert cand["nearest_catalog_title"].tolist() == ["title b1", "title c1"]
    assert cand["nearest_similarity"].tolist() == pytest.approx([0.0, 0.28], abs=1e-6)
    # A stricter threshold adds n3 (0.8) but never the exact copies n1, n2 (1.0).
    strict = drift(seeded, MODEL, "jan", IDS, MATRIX, far_below=0.9).new_category_candidates
    assert strict["item_id"].tolist() == ["n5", "n4", "n3"]


def test_drift_of_a_batch_with_an_unpredicted_item(seeded):
    report = drift(seeded, MODEL, "feb", IDS, MATRIX, far_below=0.97)
    # m2 has no prediction: not in by_category, but a candidate (cos 0.96 to a2) with no predicted category.
    assert report.by_category["category"].tolist() == ["A"]
    assert report.by_category["batch_items"].tolist() == [1]
    assert report.by_category["centroid_distance"].tolist() == pytest.approx([1 - 2 / math.sqrt(5)], abs=1e-6)
    cand = report.new_category_candidates
    assert cand["item_id"].tolist() == ["m2"] and cand["nearest_catalog_id"].tolist() == ["a2"]
    assert pd.isna(cand["predicted"].iloc[0])
    empty = drift(seeded, MODEL, "no such batch", IDS, MATRIX)
    assert empty.by_category.empty and empty.new_category_candidates.empty
    with pytest.raises(NotReadyError, match="catalog"):
        drift(seeded, MODEL, "jan", IDS[5:], MATRIX[5:])


def test_drift_from_kept_nearest_catalog_items_is_the_same_report(seeded, monkeypatch):
    nearest = analytics.nearest_catalog(seeded, "jan", IDS, MATRIX)
    assert nearest["item_id"].tolist() == ["n1", "n2", "n3", "n4", "n5"]
    assert nearest["nearest_catalog_id"].tolist() == ["a2", "b2", "c1", "c1", "b1"]
    assert nearest["nearest_similarity"].tolist() == pytest.approx([1, 1, 0.8, 0.28, 0], abs=1e-6)
    monkeypatch.setattr(analytics, "_NEAREST_BUDGET", 4 * 5 * 2)  # blocks of two queries
    pd.testing.assert_frame_equal(analytics.nearest_catalog(seeded, "jan", IDS, MATRIX), nearest)
    whole = drift(seeded, MODEL, "jan", IDS, MATRIX, far_below=0.5)
    kept = drift(seeded, MODEL, "jan", IDS, MATRIX, far_below=0.5, nearest=nearest)
    pd.testing.assert_frame_equal(kept.by_category, whole.by_category)
    pd.testing.assert_frame_equal(kept.new_category_candidates, whole.new_category_candidates)
    assert analytics.nearest_catalog(seeded, "no such batch", IDS, MATRIX).empty


def test_near_duplicates_lists_each_pair_once_catalog_first(seeded):
    dupes = near_duplicates(seeded, IDS, MATRIX, threshold=0.95)
    assert list(dupes.columns) == ["item_a", "title_a", "source_a", "item_b", "title_b", "source_b", "similarity"]
    pairs = list(zip(dupes["item_a"], dupes["item_b"]))
    # Exact copies first (ties by id), then m2 ~ a2 and m2 ~ n1 at 0.96 (two uploads: by id).
    assert pairs == [("a1", "m1"), ("a2", "n1"), ("b2", "n2"), ("a2", "m2"), ("m2", "n1")]
    assert dupes["similarity"].tolist() == pytest.approx([1, 1, 1, 0.96, 0.96], abs=1e-6)
    assert dupes["source_a"].tolist() == ["catalog", "catalog", "catalog", "catalog", "upload"]
    assert dupes["source_b"].tolist() == ["upload"] * 5
    assert dupes["title_b"].iloc[0] == "title m1"
    assert near_duplicates(seeded, IDS, MATRIX, threshold=0.99)["item_b"].tolist() == ["m1", "n1", "n2"]
    assert len(near_duplicates(seeded, IDS, MATRIX, threshold=0.95, limit=2)) == 2


def test_near_duplicates_are_the_same_when_compared_in_small_blocks(seeded, monkeypatch):
    whole = near_duplicates(seeded, IDS, MATRIX, threshold=0.5)
    # 0.5 catches 22 of the 66 pairs (0.8: a1-m2, b1-b2, b1-n2, n3-c1, ...; 0.64; 0.6: a1-a2, ...).
    assert len(whole) == 22 and whole["similarity"].is_monotonic_decreasing
    monkeypatch.setattr(analytics, "_PAIR_BLOCK", 3)
    pd.testing.assert_frame_equal(near_duplicates(seeded, IDS, MATRIX, threshold=0.5), whole)
    # The running top-`limit` across blocks keeps the globally best pairs.
    top = near_duplicates(seeded, IDS, MATRIX, threshold=0.5, limit=4)
    pd.testing.assert_frame_equal(top, whole.head(4))


def test_near_duplicates_keep_the_best_pairs_when_blocks_overflow(store, monkeypatch):
    # 60 random 3-d items: at threshold 0 most of the 1,770 pairs qualify, far more than the limit.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"x{k:02d}" for k in range(60)]
    store.upsert_items(pd.DataFrame({"item_id": ids, "title": ids}), source="catalog")
    sims = x.astype(np.float64) @ x.astype(np.float64).T
    a, b = np.triu_indices(60, 1)
    best = np.argsort(-sims[a, b], kind="stable")[:10]
    expected = [(ids[a[i]], ids[b[i]]) for i in best]
    monkeypatch.setattr(analytics, "_PAIR_BLOCK", 4)
    got = near_duplicates(store, ids, x, threshold=0.0, limit=10)
    assert list(zip(got["item_a"], got["item_b"])) == expected
    assert got["similarity"].tolist() == pytest.approx(sims[a[best], b[best]].tolist(), abs=1e-5)
    # 40 identical items: 780 pairs at 1.0, of which exactly `limit` come back, each once.
    same = np.repeat(x[:1], 40, axis=0)
    tied = near_duplicates(store, ids[:40], same, threshold=0.99, limit=25)
    assert len(tied) == 25 and (tied["similarity"] == 1.0).all()
    assert len(set(zip(tied["item_a"], tied["item_b"]))) == 25 and (tied["item_a"] < tied["item_b"]).all()
    with pytest.raises(ValueError, match="limit"):
        near_duplicates(store, ids, x, limit=0)


def _planted_duplicates(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` clustered 16-d unit vectors where every tenth item is a near-copy (cos 0.8-1.0) of
    the one before, and one group of 30 exact copies (more than the first neighbours asked for)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 16))
    x = centres[rng.integers(0, 8, n)] + rng.normal(scale=0.6, size=(n, 16))
    x[1::10] = x[0::10][: len(x[1::10])] + rng.uniform(0, 0.5, size=(len(x[1::10]), 1)) * rng.normal(size=(len(x[1::10]), 16))
    x[n - 30 :] = x[n - 31]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return [f"d{i:04d}" for i in range(n)], x


@pytest.mark.parametrize("hnsw", [False, True])
def test_near_duplicates_from_the_index_equal_the_exact_search(store, monkeypatch, hnsw):
    import coldrec.neighbours as neighbours

    ids, x = _planted_duplicates(600, seed=3)
    store.upsert_items(pd.DataFrame({"item_id": ids, "title": ids}), source="catalog")
    if hnsw:  # the faiss path, on data small enough to compare with every pair
        monkeypatch.setattr(neighbours, "EXACT_MAX_ITEMS", 100)
    index = neighbours.VectorIndex.build(ids, x)
    assert index.kind == ("faiss-hnsw" if hnsw else "exact")
    for threshold, limit in ((0.8, 500), (0.9, 2000), (0.99, 40)):
        exact = near_duplicates(store, ids, x, threshold=threshold, limit=limit)
        found = near_duplicates_indexed(store, index, threshold=threshold, limit=limit)
        assert len(exact) == limit or len(exact) > 60  # the copies (435 pairs) and the planted pairs
        if not hnsw:
            pd.testing.assert_frame_equal(found, exact)
        else:  # faiss' float32 dot products may differ in the last bit, reordering near-ties
            assert found["similarity"].to_numpy() == pytest.approx(exact["similarity"].to_numpy(), abs=2e-6)
            if limit > len(exact):  # (at the limit, equally similar pairs may be cut differently)
                assert set(zip(found["item_a"], found["item_b"])) == set(zip(exact["item_a"], exact["item_b"]))


def test_near_duplicates_from_the_index_skip_retired_rows(store):
    from coldrec.neighbours import VectorIndex

    ids, x = _planted_duplicates(200, seed=5)
    store.upsert_items(pd.DataFrame({"item_id": ids, "title": ids}), source="catalog")
    index = VectorIndex.build(ids, x)
    index.remove(["d0000", "d0001"])  # a planted pair: gone with its items
    pairs = near_duplicates_indexed(store, index, threshold=0.8, limit=10_000)
    assert not {"d0000", "d0001"} & (set(pairs["item_a"]) | set(pairs["item_b"]))
    expected = near_duplicates(store, ids[2:], x[2:], threshold=0.8, limit=10_000)
    pd.testing.assert_frame_equal(pairs, expected)
    with pytest.raises(ValueError, match="limit"):
        near_duplicates_indexed(store, index, limit=0)


def _cluster_data() -> tuple[pd.DataFrame, np.ndarray]:
    titles = [
        # around e1: 5 items
        "dog food 2024", "dog food chicken 2024", "dog chew toy 2024", "puppy dog food", "dog bowl 2024",
        # around e2: 4 items ("24" would outrank "frying" if digits were kept)
        "steel frying pan 24", "steel pan 24", "steel wok pan", "the steel pot",
        # around e3: 3 items
        "yoga mat", "thick yoga mat", "yoga block",
    ]
    centre = np.repeat(np.eye(3), [5, 4, 3], axis=0)
    rng = np.random.default_rng(7)
    x = centre + 0.05 * rng.normal(size=centre.shape)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    items = pd.DataFrame({"item_id": [f"u{i}" for i in range(12)], "title": titles})
    return items, x


def test_emerging_clusters_finds_the_clusters_and_their_keywords():
    items, x = _cluster_data()
    report = emerging_clusters(items, x, n_keywords=3)
    clusters, members = report.clusters, report.members
    assert list(clusters.columns) == ["cluster", "size", "keywords", "example_titles"]
    assert clusters["cluster"].tolist() == [0, 1, 2] and clusters["size"].tolist() == [5, 4, 3]
    # c-TF-IDF: counts dog 5, food 3; steel 4, pan 3; yoga 3, mat 2; ties (1 each) alphabetical.
    assert clusters["keywords"].tolist() == [["dog", "food", "bowl"], ["steel", "pan", "frying"], ["yoga", "mat", "block"]]
    assert all(len(e) == 3 for e in clusters["example_titles"])
    assert set(clusters["example_titles"].iloc[2]) == {"yoga mat", "thick yoga mat", "yoga block"}
    assert members["item_id"].tolist() == items["item_id"].tolist()
    assert members["cluster"].tolist() == [0] * 5 + [1] * 4 + [2] * 3
    # distance = 1 - cos to the normalised mean of the cluster (the k-means centre).
    for c, rows in ((0, slice(0, 5)), (1, slice(5, 9)), (2, slice(9, 12))):
        centre = x[rows].mean(axis=0)
        centre /= np.linalg.norm(centre)
        assert members["distance"].iloc[rows].tolist() == pytest.approx((1 - x[rows] @ centre).tolist(), abs=1e-5)
    # Asking for 3 clusters gives the same grouping.
    fixed = emerging_clusters(items, x, n_clusters=3, n_keywords=3)
    assert fixed.members["cluster"].tolist() == members["cluster"].tolist()


def test_emerging_clusters_on_tiny_inputs():
    items, x = _cluster_data()
    one = emerging_clusters(items.head(2), x[:2])
    assert one.clusters["size"].tolist() == [2] and one.members["cluster"].tolist() == [0, 0]
    assert one.clusters["keywords"].iloc[0] == ["dog", "food", "chicken"]  # "2024" dropped
    five = emerging_clusters(items.head(5), x[:5])
    assert five.clusters["size"].tolist() == [5]
    with pytest.raises(ValueError, match="no items"):
        emerging_clusters(items.head(0), x[:0])
    with pytest.raises(ValueError, match="n_clusters"):
        emerging_clusters(items.head(2), x[:2], n_clusters=3)
    with pytest.raises(ValueError):
        emerging_clusters(items, x[:5])
    only_stop_words = emerging_clusters(pd.DataFrame({"item_id": ["a", "b"], "title": ["the 1", "of 22"]}), x[:2])
    assert only_stop_words.clusters["keywords"].tolist() == [[]]
