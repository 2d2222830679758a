"""Every page on an empty database and on the demo database (AppTest, tiny model), and the way
from an empty database to predictions, labels and a map using only the dashboard."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coldrec import ui
from coldrec.store import Store
from coldrec.workspace import Workspace

from tests.conftest import PROJECT, dashboard_on
from tests.test_pages import shown

PAGES = [
    "pages/overview.py", "pages/upload.py", "pages/queue.py", "pages/label.py", "pages/explore.py",
    "pages/audience.py", "pages/categories.py", "pages/audit.py", "pages/roles.py",
]
#: Pages whose empty state offers the onboarding steps in place (Audience has its own; Audit and
#: Roles say what they will hold).
ONBOARDING_PAGES = [p for p in PAGES if p not in ("pages/audience.py", "pages/audit.py", "pages/roles.py")]


@pytest.fixture
def empty_env(monkeypatch, tmp_path, tiny_model_dir, tiny_encoder):
    """The dashboard pointed at a database file that does not exist yet (tiny model)."""
    yield from dashboard_on(monkeypatch, tmp_path / "new.duckdb", tiny_model_dir, tmp_path)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, tiny_encoder):
    """The demo database as `python -m coldrec init` makes it (catalog, purchases, new arrivals), built once."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    with Workspace(Store(path), tiny_encoder) as ws:
        ws.load_demo()
    return path


@pytest.fixture
def demo_env(empty_env, demo_db):
    """A fresh copy of the demo database where the dashboard looks for it."""
    import shutil

    shutil.copy(demo_db, empty_env / "new.duckdb")
    return empty_env


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=120)
    at.run()
    return at.switch_page(path).run()


def _ws() -> Workspace:
    return ui._open_workspace()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if shown(b.label) == label)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_on_an_empty_database_says_what_to_do_next(empty_env, path):
    at = _page(path)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.info, "no empty-state message"
    if path in ONBOARDING_PAGES:
        labels = {shown(b.label) for b in at.button}
        assert {"Load the demo", "Add category"} <= labels, labels
        assert {f.label for f in at.file_uploader} >= {"Catalog file", "Categories or taxonomy file"}
        # Nothing sends a newcomer to the command line.
        assert not any("python -m coldrec" in shown(i.value) for i in at.info)


def test_audience_and_audit_on_an_empty_database_send_a_newcomer_to_the_catalog_first(empty_env):
    at = _page("pages/audience.py")
    # Purchases name catalog items: importing them first could only fail.
    assert "import the catalog first" in shown(at.info[0].value)
    at = _page("pages/audit.py")
    assert "Overview" in shown(at.info[0].value) and "upload products" not in shown(at.info[0].value)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_on_the_demo_database_has_something_to_show(demo_env, path):
    at = _page(path)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert not any(shown(i.value).startswith("Nothing to label") for i in at.info)


def test_a_fresh_demo_starts_with_new_arrivals_to_label(demo_env):
    ws = Workspace(Store(demo_env / "new.duckdb"), None)  # type: ignore[arg-type]
    batches = ws.store.batches()
    ws.close()
    assert batches["batch"].tolist() == [Workspace.DEMO_BATCH] and batches["items"].tolist() == [72]
    at = _page("pages/queue.py")
    assert at.subheader and at.subheader[0].value  # an item to label
    assert any(shown(b.label).startswith("1 · ") for b in at.button)


def test_load_the_demo_from_an_empty_database(empty_env):
    at = _page("pages/overview.py")
    at = _button(at, "Load the demo").click().run()
    assert not at.exception, at.exception
    ready = _ws().readiness()
    assert ready["categories"] == 16 and ready["catalog_items"] == 448 and ready["uploaded_items"] == 72
    assert not at.info or "Welcome" not in shown(at.info[0].value)


CATALOG = (
    b"id,title,category\n"
    b"K1,steel frying pan,Cookware\nK2,cast iron skillet,cookware\nK3,leather boot,Footwear\n"
    b"K4,running sneaker,Footwear\nK5,dog food pack,Pet Supplies\nK6,cat toy ball,\n"
)


def test_import_a_catalog_with_categories_from_the_empty_overview(empty_env):
    at = _page("pages/overview.py")
    uploader = next(f for f in at.file_uploader if f.label == "Catalog file")
    at = uploader.set_value(("shop.csv", CATALOG, "text/csv")).run()
    at = _button(at, "Import catalog").click().run()
    assert not at.exception, at.exception
    ws = _ws()
    # "cookware" joins "Cookware" (case ignored); the blank category is an unlabelled item.
    assert ws.store.category_names() == ["Cookware", "Footwear", "Pet Supplies"]
    labels = ws.store.labels().set_index("item_id")["category"]
    assert labels.to_dict() == {"K1": "Cookware", "K2": "Cookware", "K3": "Footwear", "K4": "Footwear", "K5": "Pet Supplies"}
    assert ws.readiness()["catalog_items"] == 6


def test_a_bad_catalog_file_shows_one_message_and_writes_nothing(empty_env):
    at = _page("pages/overview.py")
    uploader = next(f for f in at.file_uploader if f.label == "Catalog file")
    at = uploader.set_value(("shop.csv", b"sku,price\nA,3\n", "text/csv")).run()
    at = _button(at, "Import catalog").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "shop.csv" in shown(at.error[0].value)
    assert _ws().readiness()["catalog_items"] == 0


def test_from_an_empty_database_to_predictions_labels_and_a_map(empty_env):
    """Categories from a taxonomy file and one typed in, an upload, a label, the map: browser only."""
    at = _page("pages/categories.py")
    taxonomy = b"path\nHome > Kitchen > Cookware\nFashion > Footwear\nPets > Pet Supplies\n"
    uploader = next(f for f in at.file_uploader if f.label == "Categories or taxonomy file")
    at = uploader.set_value(("tree.csv", taxonomy, "text/csv")).run()
    at = _button(at, "Import categories").click().run()
    assert not at.exception, at.exception
    assert _ws().store.category_names() == ["Cookware", "Footwear", "Pet Supplies"]

    at = at.switch_page("pages/label.py").run()
    assert not at.exception, at.exception
    next(t for t in at.text_input if t.label == "Name").input("Toys")
    at = _button(at, "Add category").click().run()
    assert "Toys" in _ws().store.category_names()

    at = at.switch_page("pages/upload.py").run()
    at.file_uploader[0].set_value(("new.csv", b"title\nsteel pot set\nwool socks\nlego doll\n", "text/csv")).run()
    at = _button(at, "Predict").click().run()
    assert not at.exception, at.exception
    assert len(at.dataframe[-1].value) == 3

    at = at.switch_page("pages/queue.py").run()
    assert not at.exception, at.exception
    item = shown(at.subheader[0].value)
    picker = next(s for s in at.selectbox if s.label == "None of these: pick any category")
    picker.set_value("Toys")
    at = _button(at, "Save this category").click().run()
    assert not at.exception, at.exception
    labels = _ws().store.labels()
    assert labels["category"].tolist() == ["Toys"]
    assert _ws().store.items_by_id(labels["item_id"].tolist())["title"].tolist() == [item]

    at = at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart")
    # No catalog: drift says so instead of failing, and the later tabs still render.
    assert any("no catalog yet" in shown(i.value) for i in at.info)
    assert any(t.label == "SQL" for t in at.text_area)


def test_upload_without_categories_says_where_categories_are_made(empty_env):
    at = _page("pages/upload.py")
    assert not at.exception
    assert "Predictions need categories" in shown(at.info[0].value)
    assert not [b for b in at.button if b.label == "Predict"]


def test_cluster_members_start_unticked_and_the_pick_clears_after_a_category(demo_env):
    at = _page("pages/explore.py")
    table = next(d for d in at.dataframe if d.key and d.key.startswith("cluster-table-"))
    names = table.value["name"].tolist()
    assert all(n and not n.isdigit() for n in names)  # named by keywords, not numbers
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    members = at.data_editor[0].value
    assert not members["include"].any()  # nothing is labelled unless ticked
    at = at.slider(key=next(s.key for s in at.slider if s.key and s.key.startswith("cluster-cut-"))).set_value(0.0).run()
    assert at.data_editor[0].value["include"].all()
    ticked = at.data_editor[0].value["item_id"].tolist()
    next(t for t in at.text_input if t.label == "New category name").input("Emerging")
    at = _button(at, "Create category and label the ticked items").click().run()
    assert not at.exception, at.exception
    labels = _ws().store.labels().set_index("item_id")["category"]
    assert set(labels[labels == "Emerging"].index) == set(ticked)
    # The cluster table has a new key (new label version): no row is picked in the recomputed clusters.
    assert not at.data_editor or "include" not in at.data_editor[0].value


def test_explore_shows_the_current_models_predictions_not_the_stored_ones(demo_env):
    ws = Workspace(Store(demo_env / "new.duckdb"), None)  # type: ignore[arg-type]
    stored = len(ws.store.predictions(ws.store.embedding_counts()["model"].iloc[0]))
    ws.close()
    at = _page("pages/explore.py")
    ws = _ws()
    item = ws.store.items(batch=Workspace.DEMO_BATCH)["item_id"].iloc[0]
    before = ws.predictor.current_predictions().set_index("item_id").loc[item, "predicted"]
    ws.labels.label(item, next(c for c in ws.store.category_names() if c != before), who="test")
    at.run()
    assert not at.exception, at.exception
    summary = next(d.value for d in at.dataframe if "labelled_uploads" in d.value.columns).set_index("category")
    current = ws.predictor.current_predictions()["predicted"].value_counts()
    # Every item counts with the current model's prediction (the stored ones cover the upload only).
    assert summary["predicted"].sum() == len(ws.store.items()) > stored
    assert (summary["predicted"] == current.reindex(summary.index).fillna(0)).all()


@pytest.mark.filterwarnings("error::pandas.errors.Pandas4Warning")
def test_predictions_before_any_label_show_an_empty_label_column(empty_env):
    """Filling the labels of a batch when none exist yet put "" into float NaNs (a pandas 4 error)."""
    for name in ("Cookware", "Footwear"):
        _ws().catalog.add_category(name, "", "")
    at = _page("pages/upload.py")
    at.file_uploader[0].set_value(("new.csv", b"title\nsteel pot set\nwool socks\n", "text/csv")).run()
    at = _button(at, "Predict").click().run()
    assert not at.exception, at.exception
    assert at.dataframe[-1].value["label"].tolist() == ["", ""]


def test_with_categories_but_no_items_every_page_works_and_try_a_product_predicts(empty_env):
    at = _page("pages/overview.py")
    at.tabs  # noqa: B018 - the empty state's tabs are drawn
    next(t for t in at.text_input if t.label == "Name").input("Cookware")
    at = _button(at, "Add category").click().run()
    assert _ws().store.category_names() == ["Cookware"]
    at.text_area[0].input("steel frying pan").run()
    assert not at.exception, at.exception
    assert any("Cookware" in shown(m.value) for m in at.markdown)
    for path in PAGES:
        at = at.switch_page(path).run()
        assert not at.exception, (path, at.exception)
    at = at.switch_page("pages/queue.py").run()
    assert any("No items yet" in shown(i.value) for i in at.info)


def test_one_category_and_no_items_reads_one_category(empty_env):
    _ws().catalog.add_category("Garden Tools", "Spades, rakes and hoses", "")
    at = _page("pages/overview.py")
    assert not at.exception, at.exception
    captions = [shown(c.value) for c in at.caption]
    assert "1 category, no items yet." in captions, captions


def test_a_catalog_without_uploads_draws_no_chart_of_new_arrivals(empty_env):
    ws = _ws()
    ws.catalog.add_category("Garden Tools", "Spades, rakes and hoses", "")
    ws.imports.import_catalog(pd.DataFrame({"id": ["G1", "G2"], "title": ["steel spade", "garden rake"],
                                            "category": ["Garden Tools", ""]}), "c.csv")
    at = _page("pages/overview.py")
    assert not at.exception, at.exception
    assert not any("New arrivals by predicted category" in shown(h.value) for h in at.subheader)
    assert any(shown(c.value).startswith("1 category, 2 catalog items: the chart of new arrivals") for c in at.caption)
