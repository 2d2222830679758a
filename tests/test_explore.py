"""The explorer's views over a real workspace (tiny model)."""

from __future__ import annotations

import pandas as pd
import pytest

from coldrec import explore
from coldrec.errors import NotReadyError

NEW = pd.DataFrame(
    {
        "item_id": ["n1", "n2", "n3", "n4", "n5", "n6"],
        "title": ["garden hose", "garden hose long", "garden hose reel", "lawn mower", "lawn mower electric", "leather boot"],
        "description": [""] * 6,
    }
)


def test_item_table_has_every_item_with_label_and_prediction(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    table = explore.item_table(workspace)
    assert len(table) == len(workspace.store.items())
    assert table.loc[table["item_id"] == "C1", "category"].item() == "Cookware"
    assert table.loc[table["item_id"] == "n1", "labelled"].item() == False  # noqa: E712
    assert set(table["predicted"]) <= set(workspace.store.category_names())
    assert table["confidence"].between(0, 1).all()


def test_map_frame_is_stored_once_per_item_set(workspace):
    frame = explore.map_frame(workspace, "pca")
    assert {"x", "y", "predicted"} <= set(frame.columns) and len(frame) == 12
    stored = workspace.store.query_df("SELECT count(*) AS n, count(DISTINCT key) AS keys FROM projections")
    assert stored.loc[0, "n"] == 12 and stored.loc[0, "keys"] == 1
    explore.map_frame(workspace, "pca")
    assert workspace.store.query_df("SELECT count(DISTINCT key) AS keys FROM projections").loc[0, "keys"] == 1
    workspace.predictor.upload_and_predict(NEW, batch="b1")  # a new item set gets its own map
    assert len(explore.map_frame(workspace, "pca")) == 18


def test_neighbours_of_excludes_the_item_and_is_sorted(workspace):
    hits = explore.neighbours_of(workspace, "C1", k=5)
    assert len(hits) == 5 and "C1" not in set(hits["item_id"])
    assert list(hits["similarity"]) == sorted(hits["similarity"], reverse=True)


def test_cluster_to_category_creates_it_and_labels_members_undoably(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    report = explore.emerging_clusters(workspace, 2)
    assert report.members["item_id"].isin(NEW["item_id"]).all() and len(report.members) == 6
    members = report.members[report.members["cluster"] == report.clusters["cluster"].iloc[0]]["item_id"].tolist()
    created = explore.cluster_to_category(workspace, "Garden", members, who="ana", description="hoses and mowers")
    assert created in workspace.store.category_names()
    labels = workspace.store.labels().set_index("item_id")
    assert (labels.loc[members, "category"] == "Garden").all()
    assert workspace.store.undo_last("ana")["reverted"] == len(members)


def test_near_duplicates_search_once_and_filter_by_threshold(workspace, monkeypatch):
    import coldrec.analytics as analytics

    workspace.predictor.upload_and_predict(NEW, batch="b1")
    calls = []
    real = analytics.near_duplicates_indexed
    monkeypatch.setattr(analytics, "near_duplicates_indexed", lambda *a, **k: calls.append(k) or real(*a, **k))
    loose = explore.near_duplicates(workspace, 0.80)
    strict = explore.near_duplicates(workspace, 0.99)
    assert len(calls) == 1
    assert (strict["similarity"] >= 0.99).all()
    assert len(strict) == (loose["similarity"] >= 0.99).sum()
    # From the item index, the same pairs as the exact all-pairs search over every item.
    items, vectors = workspace.vectors.item_vectors()
    exact = analytics.near_duplicates(workspace.store, items["item_id"].tolist(), vectors, threshold=0.80)
    pd.testing.assert_frame_equal(loose, exact)


def test_category_overview_counts_new_arrivals_by_current_prediction(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    workspace.labels.label("n6", "Footwear", who="t")
    counts = explore.category_overview(workspace).set_index("category")
    assert counts["catalog"].to_dict() == {"Cookware": 4, "Footwear": 4, "Pet Supplies": 4}
    assert counts.loc["Footwear", "labelled"] == 1
    assert counts[["labelled", "confident", "unsure"]].to_numpy().sum() == len(NEW)
    current = workspace.predictor.current_predictions().set_index("item_id").loc[["n1", "n2", "n3", "n4", "n5"], "predicted"]
    guessed = counts["confident"] + counts["unsure"]
    assert guessed.to_dict() == current.value_counts().reindex(counts.index).fillna(0).astype(int).to_dict()


def test_drift_without_a_catalog_is_none_not_an_error(tmp_path, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    with Workspace(Store(tmp_path / "x.duckdb"), tiny_encoder) as ws:
        ws.catalog.add_category("Garden", "hoses and mowers")
        ws.catalog.add_category("Footwear", "shoes and boots")
        ws.predictor.upload_and_predict(NEW, batch="b1")
        assert explore.drift(ws, "b1") is None
        assert explore.map_frame(ws, "pca")["item_id"].tolist() == NEW["item_id"].tolist()


def test_map_frame_of_an_empty_workspace_is_empty(tmp_path, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    with Workspace(Store(tmp_path / "x.duckdb"), tiny_encoder) as ws:
        assert explore.map_frame(ws, "pca").empty
        assert explore.category_overview(ws).empty
        assert explore.item_table(ws).empty


def test_clusters_are_named_by_keywords_and_members_sorted_by_similarity(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    report = explore.emerging_clusters(workspace, 2)
    names = explore.cluster_names(report)
    assert len(names) == 2 and names["name"].is_unique
    assert all(" · ".join(k[:3]) in n for k, n in zip(names["keywords"], names["name"]))
    members = explore.cluster_members(workspace, report, 0)
    assert members["similarity"].is_monotonic_decreasing
    assert set(members["item_id"]) == set(report.members.loc[report.members["cluster"] == 0, "item_id"])
    assert members["title"].notna().all()


def test_item_details_has_the_text_and_attributes(workspace):
    frame = NEW.assign(brand=["Acme"] + [""] * 5, price=[9.5] + [None] * 5)
    workspace.predictor.upload_and_predict(frame, batch="b1")
    details = explore.item_details(workspace, "n1")
    assert (details["title"], details["brand"], details["price"], details["batch"]) == ("garden hose", "Acme", 9.5, "b1")
    assert details["category"] is None
    workspace.labels.label("n1", "Cookware", who="t")
    assert explore.item_details(workspace, "n1")["category"] == "Cookware"
    workspace.labels.label("n1", None, who="t")  # a removed label is no label
    assert explore.item_details(workspace, "n1")["category"] is None
    with pytest.raises(NotReadyError):
        explore.item_details(workspace, "nope")


def test_a_lasso_selects_every_item_inside_it_even_those_not_drawn(workspace):
    import numpy as np

    from coldrec.projection import points_in_polygon

    workspace.predictor.upload_and_predict(NEW, batch="b1")
    xy = explore.map_positions(workspace, "pca")
    figure, drawn, total = explore.map_figure(workspace, "pca", "predicted", max_points=5)
    assert (drawn, total) == (5, 18)
    assert figure.data[0].type == "heatmap"  # every item, as density, beneath the sampled points
    drawn_ids = {i for trace in figure.data[1:] for i in (trace.customdata[:, 0] if trace.customdata is not None else [])}
    pad = 1e-6
    lasso = {"x": [xy["x"].min() - pad, xy["x"].max() + pad, xy["x"].max() + pad, xy["x"].min() - pad],
             "y": [xy["y"].min() - pad, xy["y"].min() - pad, np.median(xy["y"]), np.median(xy["y"])]}
    chosen = explore.selected_items(workspace, "pca", {"points": [], "box": [], "lasso": [lasso]})
    inside = points_in_polygon(xy["x"].to_numpy(), xy["y"].to_numpy(), lasso["x"], lasso["y"])
    assert chosen == xy["item_id"][inside].tolist() and len(chosen) >= 9
    assert set(chosen) - drawn_ids  # items only in the density layer are selected too
    table = explore.selection_table(workspace, "pca", chosen)
    assert table["item_id"].tolist() == chosen and {"label", "predicted", "confidence"} <= set(table.columns)
    whole, _, _ = explore.map_figure(workspace, "pca", "predicted", max_points=50)
    assert all(trace.type != "heatmap" for trace in whole.data)  # everything drawn: no density layer


def test_a_clicked_point_is_selected_and_unknown_ids_from_the_browser_are_dropped(workspace):
    points = [{"customdata": ["C1"]}, {"customdata": ["no-such-item"]}, {"customdata": [3]}, "junk"]
    assert explore.selected_items(workspace, "pca", {"points": points, "box": [], "lasso": []}) == ["C1"]


def test_is_novel_agrees_with_the_current_predictions(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    current = workspace.predictor.current_predictions().set_index("item_id")["novel"]
    assert {i: explore.is_novel(workspace, i) for i in current.index} == current.to_dict()
    with pytest.raises(NotReadyError):
        explore.is_novel(workspace, "nope")


def test_drift_keeps_the_nearest_catalog_items_across_labels(workspace, monkeypatch):
    import coldrec.analytics as analytics

    workspace.predictor.upload_and_predict(NEW, batch="b1")
    calls = []
    real = analytics.nearest_catalog
    monkeypatch.setattr(analytics, "nearest_catalog", lambda *a, **k: calls.append(1) or real(*a, **k))
    before = explore.drift(workspace, "b1")
    workspace.labels.label("n1", "Footwear", who="t")
    after = explore.drift(workspace, "b1")
    assert len(calls) == 1 and after is not before  # regrouped after the label, the search kept
    pd.testing.assert_frame_equal(after.new_category_candidates[["item_id", "nearest_catalog_id"]],
                                  before.new_category_candidates[["item_id", "nearest_catalog_id"]])


def test_far_from_catalog_is_the_catalogs_own_5th_percentile_of_nearest_other_similarity(workspace, monkeypatch):
    import numpy as np

    from coldrec.estimator import NOVEL_QUANTILE
    from coldrec.workspace import Workspace

    items, vectors = workspace.vectors.item_vectors()
    catalog = vectors[(items["source"] == "catalog").to_numpy()]
    sims = catalog @ catalog.T
    np.fill_diagonal(sims, -np.inf)
    expected = round(float(np.quantile(sims.max(axis=1), NOVEL_QUANTILE)), 2)
    assert explore.far_from_catalog(workspace) == expected
    # A sample when the catalog is larger than FAR_SAMPLE: the same rule on fewer items.
    monkeypatch.setattr(explore, "FAR_SAMPLE", 3)
    picked = np.sort(np.random.default_rng(0).choice(len(catalog), 3, replace=False))
    sampled = round(float(np.quantile(sims[picked].max(axis=1), NOVEL_QUANTILE)), 2)
    fresh = Workspace(workspace.store, workspace.encoder, workspace.settings)
    assert explore.far_from_catalog(fresh) == sampled


def test_far_from_catalog_needs_two_catalog_items(tmp_path, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    with Workspace(Store(tmp_path / "one.duckdb"), tiny_encoder) as ws:
        ws.store.upsert_items(pd.DataFrame({"item_id": ["c1"], "title": ["steel pan"], "description": [""]}),
                              source="catalog")
        assert explore.far_from_catalog(ws) is None


def test_near_duplicates_run_in_the_background_above_the_exact_size(workspace, monkeypatch):
    import threading

    import coldrec.analytics as analytics
    import coldrec.neighbours as neighbours

    workspace.predictor.upload_and_predict(NEW, batch="b1")
    expected = explore.near_duplicates(workspace, 0.80)
    workspace.state.drop("near_duplicates")
    monkeypatch.setattr(neighbours, "EXACT_MAX_ITEMS", 5)  # this workspace counts as large
    release, calls = threading.Event(), []
    real = analytics.near_duplicates_indexed

    def slow(*args, **kwargs):
        calls.append(1)
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(analytics, "near_duplicates_indexed", slow)
    with pytest.raises(NotReadyError, match="in the background"):
        explore.near_duplicates(workspace, 0.80, wait=False)
    with pytest.raises(NotReadyError, match="0 of 18 items"):  # asked again: the same search, still running
        explore.near_duplicates(workspace, 0.80, wait=False)
    release.set()
    for _ in range(300):
        try:
            found = explore.near_duplicates(workspace, 0.80, wait=False)
            break
        except NotReadyError:
            threading.Event().wait(0.1)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(found, expected)
    assert explore.near_duplicates(workspace, 0.80) is not None and len(calls) == 1  # kept for every caller
