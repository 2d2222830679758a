"""Imports (coldrec/services/imports.py): init, catalog files, uploads' labels, purchases."""

from __future__ import annotations

import pandas as pd
import pytest

from coldrec.ingest import IngestError


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def test_init_loads_catalog_labels_and_embeddings(workspace):
    stats = workspace.store.stats()
    assert stats["catalog_items"] == 12 and stats["labelled_items"] == 12 and stats["categories"] == 3
    # 12 items + nothing else embedded yet; prompts are embedded on first classifier use.
    assert stats["cached_vectors"] == 12
    history = workspace.store.label_history()
    assert set(history["source"]) == {"import"} and set(history["who"]) == {"catalog"}


def test_init_twice_adds_no_duplicate_labels(workspace, tmp_path):
    before = len(workspace.store.label_history())
    counts = workspace.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    assert counts["labels"] == 0 and len(workspace.store.label_history()) == before


def test_running_init_again_keeps_labels_people_changed(workspace, tmp_path):
    workspace.labels.label("C1", "Footwear", who="ana")
    workspace.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    assert workspace.store.labels().set_index("item_id").loc["C1", "category"] == "Footwear"
    assert workspace.store.get_meta("initialised") == "1"


def test_importing_the_same_purchases_twice_adds_nothing(workspace):
    data = b"user_id,item_id,order_number\nu1,C1,1\nu1,C2,2\n"
    assert workspace.imports.import_interactions(data, "p.csv") == 2
    assert workspace.imports.import_interactions(data, "p.csv") == 0
    assert workspace.store.stats()["interactions"] == 2


def test_purchase_ids_with_gaps_and_fractional_orders(workspace):
    from coldrec.audience import load_interactions

    frame = pd.DataFrame({"user_id": [1.0, 2.0, None], "item_id": ["C1", "C2", "C3"]})
    with pytest.raises(IngestError, match="empty user or item id in row\\(s\\) 3"):
        load_interactions(_parquet(frame), "p.parquet")
    ok = load_interactions(_parquet(frame.iloc[:2]), "p.parquet")
    assert ok["user_id"].tolist() == ["1", "2"]
    with pytest.raises(IngestError, match="whole numbers"):
        load_interactions(b"user_id,item_id,order_number\nu,C1,1.5\n", "p.csv")


def test_import_catalog_creates_its_categories_and_labels(empty):
    table = pd.DataFrame({
        "id": ["K1", "K2", "K3", "K4"],
        "title": ["steel pan", "iron skillet", "leather boot", "dog toy"],
        "category": ["Cookware", "cookware", "Footwear", ""],
    })
    counts = empty.imports.import_catalog(table, "shop.csv")
    assert counts == {"items": 4, "labels": 3, "categories": 2}
    assert empty.store.category_names() == ["Cookware", "Footwear"]
    assert empty.store.labels().set_index("item_id")["category"].to_dict() == {"K1": "Cookware", "K2": "Cookware", "K3": "Footwear"}
    assert empty.readiness()["unlabelled_items"] == 1
    empty.predictor.classifier()  # predicting is possible now


def test_import_catalog_keeps_labels_people_gave(empty):
    table = pd.DataFrame({"id": ["K1", "K2"], "title": ["steel pan", "leather boot"], "category": ["Cookware", "Footwear"]})
    empty.imports.import_catalog(table, "shop.csv")
    empty.labels.label("K1", "Footwear", who="ana")
    again = empty.imports.import_catalog(table, "shop.csv")
    assert again["labels"] == 0 and again["categories"] == 0
    assert empty.store.labels().set_index("item_id").loc["K1", "category"] == "Footwear"


def test_import_catalog_without_categories_and_bad_rows(empty):
    assert empty.imports.import_catalog(pd.DataFrame({"title": ["steel pan", "boot"]}), "plain.csv") == {
        "items": 2, "labels": 0, "categories": 0
    }
    with pytest.raises(IngestError, match="bad.csv"):
        empty.imports.import_catalog(pd.DataFrame({"sku": ["A"], "price": [3]}), "bad.csv")
    assert empty.readiness()["catalog_items"] == 2
