"""The labelling loop over a real workspace (tiny model): queue, propagation, label files,
auto-accept routing and taxonomy levels in predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.errors import ConfigError, StoreError
from coldrec import labelling
from coldrec.export import to_csv_bytes
from coldrec.ingest import IngestError

NEW = pd.DataFrame(
    {
        "item_id": ["n1", "n2", "n3", "n4", "n5"],
        "title": ["steel frying pan large", "steel frying pan small", "leather boot brown", "dog food pack big", "wok lid"],
        "description": [""] * 5,
    }
)


@pytest.fixture
def ws(workspace):
    workspace.predictor.upload_and_predict(NEW, batch="b1")
    return workspace


def test_queue_lists_only_unlabelled_items_ordered_by_margin(ws):
    queue = labelling.queue(ws, "margin", n=10)
    assert sorted(queue["item_id"]) == ["n1", "n2", "n3", "n4", "n5"]
    gaps = (queue["probability"] - queue["second_probability"]).to_numpy()
    assert np.all(np.diff(gaps) >= -1e-9), "margin queue must start with the closest calls"
    assert set(queue["suggestion"]) <= set(ws.store.category_names())
    ws.labels.label("n1", "Cookware", who="ana")
    assert "n1" not in set(labelling.queue(ws, "margin", n=10)["item_id"])  # a label leaves the queue at once


def test_queue_of_one_batch_and_unknown_strategy(ws):
    assert len(labelling.queue(ws, "least-confidence", batch="b1", n=2)) == 2
    assert labelling.queue(ws, "margin", batch="nope", n=5).empty
    with pytest.raises(ConfigError, match="margin"):
        labelling.queue(ws, "most-fun", n=5)


def test_propagation_preview_label_and_undo(ws):
    ws.labels.label("n1", "Cookware", who="ana")
    preview = labelling.propagation_preview(ws, "n1", min_similarity=0.0, limit=3)
    assert len(preview) == 3
    assert "n1" not in set(preview["item_id"]) and preview["item_id"].isin(["n2", "n3", "n4", "n5"]).all()
    assert list(preview["similarity"]) == sorted(preview["similarity"], reverse=True)
    strict = labelling.propagation_preview(ws, "n1", min_similarity=0.999)
    assert (strict["similarity"] >= 0.999).all()

    assert labelling.propagate(ws, "n1", preview["item_id"].tolist(), who="ana") == 3
    labels = ws.store.labels().set_index("item_id")
    assert (labels.loc[preview["item_id"], "category"] == "Cookware").all()
    assert (labels.loc[preview["item_id"], "source"] == "propagated").all()

    # One undo reverts the whole propagation, and only it.
    assert ws.labels.undo("ana") == {"reverted": 3, "kept": 0}
    labels = ws.store.labels().set_index("item_id")
    assert not set(preview["item_id"]) & set(labels.index)
    assert labels.loc["n1", "category"] == "Cookware"


def test_propagation_needs_a_labelled_item(ws):
    assert labelling.propagation_preview(ws, "n5").empty
    with pytest.raises(StoreError, match="no label"):
        labelling.propagate(ws, "n5", ["n1"], who="ana")
    with pytest.raises(StoreError, match="unknown item"):
        labelling.propagation_preview(ws, "zzz")


def test_label_export_import_round_trip_is_lossless(ws):
    ws.catalog.add_category("=Risky name")
    labelling.bulk_label(ws, ["n1", "n3"], "=Risky name", who="ana")
    exported = labelling.export_labels(ws)
    data = to_csv_bytes(exported)
    assert b"'=Risky name" in data  # safe to open in a spreadsheet
    before = ws.store.labels().set_index("item_id")["category"].sort_index()

    ws.store.add_labels(["n1", "n3", "C1"], [None, None, "Footwear"], who="ana")
    changed = labelling.import_labels(ws, data, "labels.csv", who="ana")
    assert changed == 3
    after = ws.store.labels().set_index("item_id")["category"].sort_index()
    pd.testing.assert_series_equal(before, after)
    assert labelling.import_labels(ws, data, "labels.csv", who="ana") == 0  # idempotent


def test_label_import_names_bad_rows_and_writes_nothing(ws):
    version = ws.store.label_version()
    bad = b"item_id,category\nn1,Cookware\nnope,Cookware\nn2,Gardening\n"
    with pytest.raises(IngestError, match=r"labels\.csv: unknown item_id in row\(s\) 3"):
        labelling.import_labels(ws, bad, "labels.csv", who="ana")
    with pytest.raises(IngestError, match=r"unknown category in row\(s\) 4"):
        labelling.import_labels(ws, b"item_id,category\nn1,Cookware\nn1,Cookware\nn2,Gardening\n", "labels.csv", who="ana")
    with pytest.raises(IngestError, match="item_id and category"):
        labelling.import_labels(ws, b"id,label\nn1,Cookware\n", "labels.csv", who="ana")
    assert ws.store.label_version() == version


def test_auto_accept_only_takes_predictions_above_their_category_threshold(ws, monkeypatch):
    assert labelling.auto_accept(ws, "ana") == {"accepted": 0, "queued": 5}  # no targets: a person decides
    queue = labelling.queue(ws, "margin", n=10)
    target = queue["suggestion"].iloc[0]
    monkeypatch.setattr(labelling, "_thresholds", lambda _ws: {target: 0.0})
    expected = set(queue.loc[queue["suggestion"] == target, "item_id"])
    result = labelling.auto_accept(ws, "ana", batch="b1")
    assert result == {"accepted": len(expected), "queued": 5 - len(expected)}
    labels = ws.store.labels().set_index("item_id")
    assert set(labels.index[labels["source"] == "accepted"]) == expected


def test_predictions_carry_per_level_probabilities(ws):
    batch = ws.predictor.predict_batch("b1")
    frame = batch.frame()
    assert {"level1", "level1_probability", "level2", "level2_probability"} <= set(frame.columns)
    for row in range(len(frame)):
        levels = batch.levels_of(row)
        prediction = batch.predictions[row]
        # One chain ending in the predicted category; a one-level path is listed once.
        assert levels[-1][0].split(" > ")[-1] == prediction.category
        assert levels[-1][1] == pytest.approx(prediction.probability, abs=1e-6)
        assert len(levels) == (1 if prediction.category == "Pet Supplies" else 2)
        assert all(a[1] >= b[1] - 1e-9 for a, b in zip(levels, levels[1:]))  # a department ≥ its leaf
        if len(levels) == 2:
            assert levels[1][0].startswith(levels[0][0] + " > ")


def test_review_views_run_on_the_workspace(ws):
    thresholds = labelling.abstain_thresholds(ws)
    assert set(thresholds["category"]) == set(ws.store.category_names())
    assert isinstance(labelling.label_issues(ws), pd.DataFrame)
    curves, hints = labelling.guidance(ws)
    assert set(curves["category"]) <= set(ws.store.category_names())
    assert all(h.category in ws.store.category_names() for h in hints)


def test_bulk_label_refuses_more_than_the_limit_and_writes_nothing(workspace, monkeypatch):
    import coldrec.labelling as labelling_module

    monkeypatch.setattr(labelling_module, "BULK_LABEL_MAX", 2)
    before = workspace.store.labels()
    with pytest.raises(StoreError, match="more than 2"):
        labelling_module.bulk_label(workspace, ["C1", "C2", "F1"], "Footwear", who="ana")
    assert workspace.store.labels().equals(before)
    assert labelling_module.bulk_label(workspace, ["C1", "C2"], "Footwear", who="ana") == 2


def test_review_runs_automatically_only_in_small_workspaces(workspace, monkeypatch):
    assert labelling.review_runs_automatically(workspace)  # 12 items, 12 labels
    monkeypatch.setattr(labelling, "REVIEW_AUTOMATICALLY_MAX_ITEMS", 11)
    assert not labelling.review_runs_automatically(workspace)
    monkeypatch.setattr(labelling, "REVIEW_AUTOMATICALLY_MAX_ITEMS", 12)
    monkeypatch.setattr(labelling, "REVIEW_AUTOMATICALLY_MAX_LABELS", 11)
    assert not labelling.review_runs_automatically(workspace)


@pytest.mark.parametrize("strategy", ["margin", "cluster-margin", "least-confidence"])
def test_the_queue_of_a_large_workspace_equals_the_full_ranking(workspace, monkeypatch, strategy):
    new = pd.DataFrame({"item_id": [f"q{i}" for i in range(30)],
                        "title": [f"{w} {i}" for i, w in enumerate(["pan", "boot", "dog bed", "wok", "sock"] * 6)],
                        "description": [""] * 30})
    workspace.imports.add_upload(new, batch="b")
    full = labelling._queue(workspace, strategy, None, 2, 0)
    monkeypatch.setattr(labelling, "PREFILTER_ABOVE", 5)  # the large-workspace path on small data
    kept = labelling._prefiltered(workspace, strategy, None, 2)
    assert kept is not None and 20 <= len(kept.items) < 30  # the pool of 2 x 10, not every candidate
    fast = labelling._queue(workspace, strategy, None, 2, 0)
    pd.testing.assert_frame_equal(fast, full)
