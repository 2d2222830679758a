"""The workspace's onboarding steps (tiny model): a catalog, categories or a taxonomy, the demo."""

from __future__ import annotations

import pandas as pd
import pytest

from coldrec.errors import IngestError
from coldrec.store import Store
from coldrec.workspace import Workspace


@pytest.fixture
def empty(tmp_path, tiny_encoder):
    ws = Workspace(Store(tmp_path / "new.duckdb"), tiny_encoder)
    yield ws
    ws.close()


def test_readiness_of_an_empty_workspace(empty):
    assert empty.readiness() == {
        "categories": 0, "catalog_items": 0, "uploaded_items": 0, "labelled_items": 0, "unlabelled_items": 0
    }


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


def test_import_category_file_reads_names_or_a_taxonomy(empty):
    names = b"name,description\nCookware,pots and pans\nFootwear,shoes\n"
    assert empty.catalog.import_category_file(names, "cats.csv") == 2
    tree = b"Home & Garden\nHome & Garden > Kitchen\nHome & Garden > Kitchen > Cookware > Pans\nApparel > Shoes\n"
    assert empty.catalog.import_category_file(tree, "taxonomy.txt", max_depth=3) >= 2
    paths = empty.store.categories().set_index("name")["path"]
    assert paths.get("Cookware") == "Home & Garden > Kitchen > Cookware"
    with pytest.raises(IngestError, match="empty.csv"):
        empty.catalog.import_category_file(b"path\n", "empty.csv")


def test_load_demo_uploads_the_new_arrivals_once(empty):
    counts = empty.load_demo()
    assert counts["arrivals"] == 72 and counts["items"] == 448
    assert empty.load_demo()["arrivals"] == 0  # safe to run again
    batches = empty.store.batches()
    assert batches["batch"].tolist() == [Workspace.DEMO_BATCH] and batches["items"].tolist() == [72]
    assert len(empty.store.predictions(empty.encoder.name)) == 72
