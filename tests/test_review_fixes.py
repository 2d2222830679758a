"""Regression tests for behaviour found missing in review: each once failed or lost data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.classify import predictions_frame
from coldrec.errors import ConfigError
from coldrec.estimator import ColdStartClassifier
from coldrec.ingest import IngestError, load_items
from coldrec.store import StoreError
from tests.conftest import unit_rows


def test_prediction_tables_have_three_ranks_even_with_two_categories():
    rng = np.random.default_rng(0)
    model = ColdStartClassifier().fit(None, categories=["A", "B"], prompt_vectors=unit_rows(rng, 2, 8))
    frame = predictions_frame(["x"], model.explain(unit_rows(rng, 1, 8)))
    assert {"top1", "top2", "top3", "top3_probability"} <= set(frame.columns)
    assert frame.loc[0, "top3"] is None


def test_importing_names_only_keeps_descriptions_and_a_cleared_path_is_saved(workspace):
    before = workspace.store.categories().set_index("name")
    workspace.import_categories(pd.DataFrame({"name": ["Cookware"]}))
    after = workspace.store.categories().set_index("name")
    assert after.loc["Cookware", "description"] == before.loc["Cookware", "description"]
    workspace.import_categories(pd.DataFrame({"name": ["Cookware"], "path": [""]}))
    assert pd.isna(workspace.store.categories().set_index("name").loc["Cookware", "path"])


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"title": ["x"]}), "needs a 'name' column"),
        (pd.DataFrame({"name": ["Toys", "toys"]}), "repeated category name"),
        (pd.DataFrame({"name": ["Toys", ""]}), "empty name in row(s) 2"),
    ],
)
def test_bad_category_files_are_refused_whole(workspace, table, message):
    before = workspace.store.categories()
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        workspace.import_categories(table, "cats.csv")
    pd.testing.assert_frame_equal(workspace.store.categories(), before)


def test_running_init_again_keeps_labels_people_changed(workspace, tmp_path):
    workspace.label("C1", "Footwear", who="ana")
    workspace.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    assert workspace.store.labels().set_index("item_id").loc["C1", "category"] == "Footwear"
    assert workspace.store.get_meta("initialised") == "1"


def test_importing_the_same_purchases_twice_adds_nothing(workspace):
    data = b"user_id,item_id,order_number\nu1,C1,1\nu1,C2,2\n"
    assert workspace.import_interactions(data, "p.csv") == 2
    assert workspace.import_interactions(data, "p.csv") == 0
    assert workspace.store.stats()["interactions"] == 2


def test_upload_with_a_category_column_imports_known_labels_and_warns_about_others(workspace):
    items = load_items(b"id,title,category\nn1,steel pan,Cookware\nn2,red kite,Kites\n", "new.csv")
    _, warnings = workspace.upload_and_predict(items, "b1", who="ana")
    labels = workspace.store.labels().set_index("item_id")
    assert labels.loc["n1", "category"] == "Cookware" and labels.loc["n1", "source"] == "import"
    assert "n2" not in labels.index and "'Kites'" in warnings[0]


def test_upload_reusing_a_catalog_id_is_refused_before_anything_is_stored(workspace):
    def saved():  # what users entered; the embedding cache may grow
        return {k: v for k, v in workspace.store.stats().items() if k != "cached_vectors"}

    before = saved()
    items = load_items(b"id,title\nnew1,wok lid\nC1,wok\n", "new.csv")
    with pytest.raises(StoreError, match="'C1'"):
        workspace.upload_and_predict(items, "b1")
    assert saved() == before and workspace.store.items().set_index("item_id").loc["C1", "title"] == "steel frying pan"


def test_old_excel_files_get_a_save_as_xlsx_message():
    with pytest.raises(IngestError, match="save it as .xlsx"):
        load_items(b"\xd0\xcf\x11\xe0 not really", "products.xls")


def test_calibration_holds_when_half_the_items_are_labelled():
    rng = np.random.default_rng(11)
    cats = ["a", "b", "c", "d"]
    centres = unit_rows(rng, 4, 16)
    x, y = [], []
    for c, centre in enumerate(centres):
        pts = centre + 0.8 * rng.normal(size=(80, 16))
        x.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        y += [c] * 80
    x, y = np.vstack(x).astype(np.float32), np.array(y)
    train = np.arange(len(y)) % 2 == 0
    model = ColdStartClassifier().fit(x[train], [cats[i] for i in y[train]], categories=cats, prompt_vectors=centres,
                                      unlabelled=x[~train])
    proba = model.predict_proba(x[~train])
    accuracy = (proba.argmax(1) == y[~train]).mean()
    assert abs(proba.max(1).mean() - accuracy) < 0.12


def test_out_of_range_unsure_threshold_is_refused(monkeypatch):
    from coldrec.config import Settings

    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "50")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Settings.from_env()


def test_purchase_ids_with_gaps_and_fractional_orders(workspace):
    from coldrec.audience import load_interactions

    frame = pd.DataFrame({"user_id": [1.0, 2.0, None], "item_id": ["C1", "C2", "C3"]})
    with pytest.raises(IngestError, match="empty user or item id in row\\(s\\) 3"):
        load_interactions(_parquet(frame), "p.parquet")
    ok = load_interactions(_parquet(frame.iloc[:2]), "p.parquet")
    assert ok["user_id"].tolist() == ["1", "2"]
    with pytest.raises(IngestError, match="whole numbers"):
        load_interactions(b"user_id,item_id,order_number\nu,C1,1.5\n", "p.csv")


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()
