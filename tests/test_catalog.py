"""The catalog (coldrec/services/catalog.py): categories from tables and taxonomies."""

from __future__ import annotations

import pandas as pd
import pytest

from coldrec.ingest import IngestError


def test_importing_names_only_keeps_descriptions_and_a_cleared_path_is_saved(workspace):
    before = workspace.store.categories().set_index("name")
    workspace.catalog.import_categories(pd.DataFrame({"name": ["Cookware"]}))
    after = workspace.store.categories().set_index("name")
    assert after.loc["Cookware", "description"] == before.loc["Cookware", "description"]
    workspace.catalog.import_categories(pd.DataFrame({"name": ["Cookware"], "path": [""]}))
    assert pd.isna(workspace.store.categories().set_index("name").loc["Cookware", "path"])


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"title": ["x"]}), "needs a 'name' column"),
        (pd.DataFrame({"name": ["Toys", "toys"]}), "repeated category name"),
        (pd.DataFrame({"name": ["Toys", ""]}), "empty name in row(s) 3 (row 1 is the header)"),
    ],
)
def test_bad_category_files_are_refused_whole(workspace, table, message):
    before = workspace.store.categories()
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        workspace.catalog.import_categories(table, "cats.csv")
    pd.testing.assert_frame_equal(workspace.store.categories(), before)


def test_import_category_file_reads_names_or_a_taxonomy(empty):
    names = b"name,description\nCookware,pots and pans\nFootwear,shoes\n"
    assert empty.catalog.import_category_file(names, "cats.csv") == 2
    tree = b"Home & Garden\nHome & Garden > Kitchen\nHome & Garden > Kitchen > Cookware > Pans\nApparel > Shoes\n"
    assert empty.catalog.import_category_file(tree, "taxonomy.txt", max_depth=3) >= 2
    paths = empty.store.categories().set_index("name")["path"]
    assert paths.get("Cookware") == "Home & Garden > Kitchen > Cookware"
    with pytest.raises(IngestError, match="empty.csv"):
        empty.catalog.import_category_file(b"path\n", "empty.csv")


# -- renaming and merging categories (issue 24: admins rename and merge) ----------------------------


def test_renaming_a_category_moves_its_labels_target_paths_and_predictions(workspace):
    workspace.catalog.add_category("Pans", path="Home > Cookware")  # below Cookware
    workspace.catalog.set_category_target("Cookware", 0.9)
    workspace.predictor.save_predictions(workspace.predictor.predict_text("steel frying pan"))
    before = workspace.predictor.classifier()
    moved = workspace.catalog.rename_category("Cookware", "Cooking Pots")
    assert moved == 4
    cats = workspace.catalog.categories().set_index("name")
    assert "Cookware" not in cats.index and cats.loc["Cooking Pots", "path"] == "Home > Cooking Pots"
    assert cats.loc["Cooking Pots", "description"] == "pots and pans for cooking"
    assert cats.loc["Pans", "path"] == "Home > Cooking Pots > Pans"
    labels = workspace.store.labels().set_index("item_id")
    assert (labels.loc[["C1", "C2", "C3", "C4"], "category"] == "Cooking Pots").all()
    assert set(labels.loc[["C1"], "source"]) == {"rename"}
    assert workspace.catalog.category_targets() == {"Cooking Pots": 0.9}
    assert "Cookware" not in set(workspace.store.query_df("SELECT category FROM predictions")["category"])
    after = workspace.predictor.classifier()
    assert after is not before and "Cooking Pots" in after.categories and "Cookware" not in after.categories
    log = workspace.store.audit_events()
    assert log.iloc[0]["before"] == "Cookware" and "Cooking Pots" in log.iloc[0]["after"]


def test_a_rename_is_refused_whole_for_a_taken_name_and_case_only_is_allowed(workspace):
    from coldrec.errors import StoreError

    history = len(workspace.store.label_history())
    with pytest.raises(StoreError, match=r"category 'Footwear' already exists \(names ignore case\): merge"):
        workspace.catalog.rename_category("Cookware", "footwear")
    with pytest.raises(StoreError, match="unknown category"):
        workspace.catalog.rename_category("Kites", "Toys")
    assert len(workspace.store.label_history()) == history and "Cookware" in workspace.catalog.category_names()
    assert workspace.catalog.rename_category("Cookware", "cookware") == 4
    assert "cookware" in workspace.catalog.category_names()


def test_merging_categories_relabels_their_items_and_deletes_them(workspace):
    workspace.catalog.set_category_target("Footwear", 0.8)
    moved = workspace.catalog.merge_categories(["Footwear", "Pet Supplies"], "Cookware")
    assert moved == 8
    assert workspace.catalog.category_names() == ["Cookware"]
    assert set(workspace.store.labels()["category"]) == {"Cookware"} and len(workspace.store.labels()) == 12
    assert workspace.catalog.category_targets() == {}
    # the label events are new (history kept) and not an action a label undo could revert
    assert workspace.labels.undo("local") == {"reverted": 0, "kept": 0}
    assert len(workspace.store.label_history(item_id="F1")) == 2


def test_a_viewer_may_not_rename_or_merge(workspace):
    from coldrec.errors import PermissionDenied

    workspace.access.configure(sign_in=True, admins=["boss@shop.test"])
    with pytest.raises(PermissionDenied):
        workspace.catalog.rename_category("Cookware", "Pots", actor="someone@shop.test")
    with pytest.raises(PermissionDenied):
        workspace.catalog.merge_categories(["Footwear"], "Cookware", actor="someone@shop.test")
    assert workspace.catalog.rename_category("Cookware", "Pots", actor="boss@shop.test") == 4
    labels = workspace.store.labels().set_index("item_id")
    assert labels.loc["C1", "who"] == "boss@shop.test"


def test_adding_a_name_that_exists_in_another_case_names_the_existing_category(workspace):
    from coldrec.errors import StoreError

    with pytest.raises(StoreError, match=r"^category 'Cookware' already exists \(names ignore case\)$"):
        workspace.catalog.add_category("cookware")
    with pytest.raises(StoreError, match=r"^category 'Cookware' already exists$"):
        workspace.catalog.add_category("Cookware")
    assert workspace.catalog.category_names().count("Cookware") == 1
