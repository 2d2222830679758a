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
        (pd.DataFrame({"name": ["Toys", ""]}), "empty name in row(s) 2"),
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
