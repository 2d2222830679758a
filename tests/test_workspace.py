"""The workspace facade: opening a database, what it holds so far, and the demo (onboarding)."""

from __future__ import annotations

from coldrec.workspace import Workspace


def test_readiness_of_an_empty_workspace(empty):
    assert empty.readiness() == {
        "categories": 0, "catalog_items": 0, "uploaded_items": 0, "labelled_items": 0, "unlabelled_items": 0
    }


def test_load_demo_uploads_the_new_arrivals_once(empty):
    counts = empty.load_demo()
    assert counts["arrivals"] == 72 and counts["items"] == 448
    assert empty.load_demo()["arrivals"] == 0  # safe to run again
    batches = empty.store.batches()
    assert batches["batch"].tolist() == [Workspace.DEMO_BATCH] and batches["items"].tolist() == [72]
    assert len(empty.store.predictions(empty.encoder.name)) == 72
