"""Taxonomy: reading path files, branches, categories from a branch, probabilities per level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.errors import DataImportError
from coldrec.ingest import IngestError
from coldrec.taxonomy import branches, level_matrices, read_taxonomy, taxonomy_categories, top_per_level
from tests.conftest import SHARED

GOOGLE = SHARED / "google_product_taxonomy"

# The shape of Google's taxonomy-with-ids.en-US.txt, with untidy whitespace added.
GOOGLE_SAMPLE = """# Google_Product_Taxonomy_Version: 2021-09-21
1 - Animals & Pet Supplies
2 - Animals & Pet Supplies > Pet Supplies
3 - Animals & Pet Supplies > Pet Supplies > Bird Supplies

536 - Home & Garden
638 - Home & Garden > Kitchen & Dining
654 -  Home & Garden >Kitchen & Dining> Cookware & Bakeware
6070 - Home  &  Garden > Kitchen & Dining > Cookware & Bakeware > Cookware
"""
EXPECTED = [
    "Animals & Pet Supplies",
    "Animals & Pet Supplies > Pet Supplies",
    "Animals & Pet Supplies > Pet Supplies > Bird Supplies",
    "Home & Garden",
    "Home & Garden > Kitchen & Dining",
    "Home & Garden > Kitchen & Dining > Cookware & Bakeware",
    "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Cookware",
]

SHOP = [
    "Home > Kitchen > Cookware",
    "Home > Kitchen > Cutlery",
    "Home > Kitchenware > Storage",
    "Home > Garden",
    "Electronics > Phones > Accessories",
    "Sports > Bikes > Accessories",
]


def test_google_text_format_with_ids():
    assert read_taxonomy(GOOGLE_SAMPLE.encode(), "taxonomy-with-ids.en-US.txt") == EXPECTED


def test_google_text_format_without_ids_and_without_a_file_name():
    text = "\n".join(line.split(" - ", 1)[-1] for line in GOOGLE_SAMPLE.splitlines())
    assert read_taxonomy(text.encode()) == EXPECTED


def test_duplicates_are_dropped_ignoring_case_and_first_spelling_is_kept(tmp_path):
    path = tmp_path / "paths.txt"
    path.write_text("Home > Kitchen\nhome > kitchen\nHOME > kitchen > Pans\n")
    assert read_taxonomy(path) == ["Home > Kitchen", "Home > Kitchen > Pans"]


def test_an_empty_level_names_the_file_and_line():
    text = "# comment\nHome\nHome > Kitchen\n\nHome >  > Cookware\n"
    with pytest.raises(IngestError, match=r"^shop\.txt: line 5: empty level in path 'Home > > Cookware'"):
        read_taxonomy(text.encode(), "shop.txt")


def test_csv_with_a_path_column_skips_empty_cells_and_repeats():
    csv = "sku,Path\n1,Home > Kitchen > Cookware\n2,\n3,Home > Kitchen > Cookware\n4,Home > Garden\n"
    assert read_taxonomy(csv.encode(), "products.csv") == ["Home > Kitchen > Cookware", "Home > Garden"]


def test_csv_in_the_google_shape_uses_category_path():
    csv = (
        "category_id,name,category_path,depth,parent_id,level_1\n"
        "1,Animals & Pet Supplies,Animals & Pet Supplies,1,,Animals & Pet Supplies\n"
        '6252,"Pet Bowls, Feeders & Waterers","Animals & Pet Supplies > Pet Bowls, Feeders & Waterers",2,1,'
        "Animals & Pet Supplies\n"
    )
    assert read_taxonomy(csv.encode(), "google_product_taxonomy.csv") == [
        "Animals & Pet Supplies",
        "Animals & Pet Supplies > Pet Bowls, Feeders & Waterers",
    ]


def test_csv_with_level_columns_and_a_gap_error():
    csv = "Level 1,Level 2,Level 3\nHome,Kitchen,Cookware\nHome,Garden,\n"
    assert read_taxonomy(csv.encode(), "levels.csv") == ["Home > Kitchen > Cookware", "Home > Garden"]
    bad = "level1,level2,level3\nHome,Kitchen,Cookware\nHome,,Pans\n"
    with pytest.raises(IngestError, match=r"^levels\.csv: row 3 \(row 1 is the header\), column 'level2': empty level"):
        read_taxonomy(bad.encode(), "levels.csv")


def test_a_bad_cell_in_a_path_column_names_row_and_column():
    csv = "path\nHome > Kitchen\nHome > > Pans\n"
    with pytest.raises(IngestError, match=r"^cats\.csv: row 3 \(row 1 is the header\), column 'path': empty level in path 'Home > > Pans'"):
        read_taxonomy(csv.encode(), "cats.csv")


def test_a_table_without_path_or_level_columns_is_refused():
    with pytest.raises(IngestError, match=r"^cats\.csv: no path column found.*'sku', 'title'"):
        read_taxonomy(b"sku,title\n1,pan\n", "cats.csv")


def test_branches_at_a_depth_in_file_order():
    assert branches(SHOP) == ["Home", "Electronics", "Sports"]
    assert branches(SHOP, depth=2) == [
        "Home > Kitchen",
        "Home > Kitchenware",
        "Home > Garden",
        "Electronics > Phones",
        "Sports > Bikes",
    ]


def test_include_matches_whole_segments_and_keeps_leaves():
    frame = taxonomy_categories(SHOP, include=["home > kitchen"])
    # "Home > Kitchenware" shares the letters but not the segment.
    assert frame["path"].tolist() == ["Home > Kitchen > Cookware", "Home > Kitchen > Cutlery"]
    assert frame["name"].tolist() == ["Cookware", "Cutlery"]
    assert frame["description"].isna().all()
    with pytest.raises(DataImportError, match="'Home > Attic'"):
        taxonomy_categories(SHOP, include=["Home > Attic"])


def test_all_nodes_include_implied_ancestors_under_the_branch():
    frame = taxonomy_categories(SHOP, include=["Home"], leaves_only=False)
    assert frame["path"].tolist() == [
        "Home",
        "Home > Kitchen",
        "Home > Kitchen > Cookware",
        "Home > Kitchen > Cutlery",
        "Home > Kitchenware",
        "Home > Kitchenware > Storage",
        "Home > Garden",
    ]


def test_max_depth_makes_the_nodes_at_that_depth_leaves():
    frame = taxonomy_categories(SHOP, include=["Home", "Sports"], max_depth=2)
    assert frame["path"].tolist() == ["Home > Kitchen", "Home > Kitchenware", "Home > Garden", "Sports > Bikes"]


def test_shared_names_get_their_parents_until_unique_ignoring_case():
    paths = [*SHOP, "Toys > Bikes > Accessories", "Garden > Tools > parts", "Cars > Tools > Parts"]
    frame = taxonomy_categories(paths)
    names = dict(zip(frame["path"], frame["name"]))
    assert names["Electronics > Phones > Accessories"] == "Accessories (Phones)"
    assert names["Sports > Bikes > Accessories"] == "Accessories (Sports > Bikes)"
    assert names["Toys > Bikes > Accessories"] == "Accessories (Toys > Bikes)"
    assert names["Garden > Tools > parts"] == "parts (Garden > Tools)"
    assert names["Cars > Tools > Parts"] == "Parts (Cars > Tools)"
    assert names["Home > Kitchen > Cookware"] == "Cookware"
    assert frame["name"].str.casefold().is_unique


CATEGORIES = ["Cookware", "Bakeware", "Cutlery", "Sneakers", "Gift Cards"]
PATHS = [
    "Home > Kitchen > Cookware",
    "Home > Kitchen > Bakeware",
    "Home > Kitchen > Cutlery",
    "Fashion > Sneakers",
    None,  # a flat category is its own node at every level
]


def test_level_matrices_have_one_node_per_category_and_rows_summing_to_one():
    levels = level_matrices(CATEGORIES, PATHS)
    assert [names for names, _ in levels] == [
        ["Home", "Fashion", "Gift Cards"],
        ["Home > Kitchen", "Fashion > Sneakers", "Gift Cards"],
        [
            "Home > Kitchen > Cookware",
            "Home > Kitchen > Bakeware",
            "Home > Kitchen > Cutlery",
            "Fashion > Sneakers",
            "Gift Cards",
        ],
    ]
    proba = np.random.default_rng(0).dirichlet(np.ones(5), size=7)
    for _, matrix in levels:
        np.testing.assert_array_equal(matrix.sum(axis=1), np.ones(5))
        np.testing.assert_allclose((proba @ matrix).sum(axis=1), 1.0, atol=1e-6)


def test_sure_of_the_department_while_unsure_of_the_leaf():
    proba = np.array([[0.34, 0.33, 0.31, 0.01, 0.01], [0.0, 0.0, 0.0, 0.1, 0.9]])
    frame = top_per_level(CATEGORIES, PATHS, proba)
    assert frame[["item", "level", "node"]].values.tolist() == [
        [0, 1, "Home"],
        [0, 2, "Home > Kitchen"],
        [0, 3, "Home > Kitchen > Cookware"],
        [1, 1, "Gift Cards"],
        [1, 2, "Gift Cards"],
        [1, 3, "Gift Cards"],
    ]
    np.testing.assert_allclose(frame["probability"], [0.98, 0.98, 0.34, 0.9, 0.9, 0.9])


@pytest.mark.skipif(not GOOGLE.is_dir(), reason="shared Google taxonomy not available")
def test_real_google_taxonomy_restricted_to_kitchen_and_dining():
    paths = read_taxonomy(GOOGLE / "taxonomy-with-ids.en-US.txt")
    assert len(paths) == 5595 and paths[0] == "Animals & Pet Supplies"
    assert read_taxonomy(GOOGLE / "google_product_taxonomy.csv") == paths
    assert len(branches(paths)) == 21
    kitchen = taxonomy_categories(paths, include=["Home & Garden > Kitchen & Dining"])
    assert len(kitchen) > 10
    assert kitchen["path"].str.startswith("Home & Garden > Kitchen & Dining > ").all()
    assert kitchen["name"].str.casefold().is_unique
    assert isinstance(kitchen, pd.DataFrame) and list(kitchen.columns) == ["name", "path", "description"]


def test_prediction_path_follows_the_top_category_and_sums_its_subtree():
    import numpy as np

    from coldrec.taxonomy import prediction_path

    categories = ["Cookware", "Cutlery", "Boots", "Toys"]
    paths = ["Home > Kitchen > Cookware", "Home > Kitchen > Cutlery", "Fashion > Boots", None]
    # Cookware is the top leaf but only 0.40; Home holds 0.75 and Kitchen 0.75.
    proba = np.array([[0.40, 0.35, 0.15, 0.10], [0.05, 0.05, 0.10, 0.80]])
    chain = prediction_path(categories, paths, proba)
    first = chain[chain["item"] == 0]
    assert first["node"].tolist() == ["Home", "Home > Kitchen", "Home > Kitchen > Cookware"]
    assert first["probability"].round(2).tolist() == [0.75, 0.75, 0.40]
    second = chain[chain["item"] == 1]
    assert set(second["node"]) == {"Toys"} and second["probability"].round(2).tolist() == [0.80] * 3


# -- hostile taxonomies (issue 12) ---------------------------------------------------------------
def test_a_deep_taxonomy_is_refused_before_splitting_naming_the_line():
    from coldrec.testing.hostile_files import taxonomy_deep

    name, data = taxonomy_deep(paths=3_000, depth=302)
    with pytest.raises(IngestError, match=r"^deep\.txt: line 1: 302 levels, over the 20-level limit"):
        read_taxonomy(data, name)


def test_a_path_at_the_depth_limit_is_read():
    path = " > ".join(f"L{d}" for d in range(20))
    assert read_taxonomy(path.encode(), "ok.txt") == [path]


def test_a_loop_in_a_path_is_refused():
    with pytest.raises(IngestError, match=r"line 2: 'a' appears twice in one path \(a loop\)"):
        read_taxonomy(b"Home\nA > B > a\n", "loop.txt")


def test_an_over_long_path_is_refused_not_truncated():
    long = "Home > " + "x" * 25_000
    with pytest.raises(IngestError, match="too long"):
        read_taxonomy(long.encode(), "long.txt")
    with pytest.raises(IngestError, match="over 100 characters"):
        read_taxonomy(("Home > " + "y" * 101).encode(), "seg.txt")


def test_level_columns_are_checked_for_loops_too():
    data = b"level1,level2,level3\nHome,Kitchen,home\n"
    with pytest.raises(IngestError, match=r"row 2 \(row 1 is the header\): 'home' appears twice"):
        read_taxonomy(data, "levels.csv")
