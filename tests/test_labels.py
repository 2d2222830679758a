"""Labels (coldrec/services/labels.py): one label, a table's edits, undo per person, counts and history."""

from __future__ import annotations

import pandas as pd
import pytest

from coldrec import labelling

NEW = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["steel frying pan large", "leather boot brown"], "description": [""] * 2})


@pytest.fixture
def ws(workspace):
    workspace.imports.add_upload(NEW, batch="b1")
    return workspace


def test_undo_is_per_person_and_keeps_newer_labels_of_others(ws):
    labelling.bulk_label(ws, ["n1", "n2"], "Cookware", who="ana")
    ws.labels.label("n2", "Footwear", who="bo")
    assert ws.labels.undo("ana") == {"reverted": 1, "kept": 1}
    labels = ws.labels.current().set_index("item_id")["category"]
    assert "n1" not in labels and labels["n2"] == "Footwear"
    assert ws.labels.undo("ana") == {"reverted": 0, "kept": 0}  # nothing left for ana
    assert ws.labels.undo("bo")["reverted"] == 1


def test_saving_a_table_records_only_the_labels_that_changed(ws):
    before = pd.Series({"n1": None, "n2": "Footwear", "C1": "Cookware"})
    after = pd.Series({"n1": "Cookware", "n2": "Footwear", "C1": ""})
    version = ws.labels.version()
    assert ws.labels.save_label_edits(before, after, who="ana") == 2
    assert ws.labels.version() != version
    labels = ws.labels.current().set_index("item_id")["category"]
    assert labels["n1"] == "Cookware" and "C1" not in labels  # a blank cell removes the label
    assert ws.labels.save_label_edits(after, after, who="ana") == 0


def test_counts_and_history_name_what_was_labelled(ws):
    ws.labels.label("n1", "Cookware", who="ana")
    counts = ws.labels.counts().set_index("category")["examples"]
    assert counts["Cookware"] == 5 and counts["Pet Supplies"] == 4  # 4 from the catalog, 1 by ana
    newest = ws.labels.history(limit=1)
    assert newest[["item_id", "title", "category", "who"]].iloc[0].tolist() == ["n1", "steel frying pan large", "Cookware", "ana"]
