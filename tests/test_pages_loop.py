"""AppTest of the Label next queue and the Explore page, on a fresh database with the tiny model."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coldrec import ui

from tests.conftest import PROJECT
from tests.test_pages import shown

NEW = pd.DataFrame(
    {
        "item_id": ["n1", "n2", "n3", "n4"],
        "title": ["steel frying pan", "leather boot", "dog food pack", "wool socks"],
        "description": [""] * 4,
    }
)


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=120)
    at.run()
    return at.switch_page(path).run()


def _labels() -> pd.DataFrame:
    return ui._open_workspace().store.labels().set_index("item_id")


def _current_item(at: AppTest) -> str:
    return shown(at.subheader[0].value)


def test_queue_accept_correct_and_skip_persist_to_duckdb(uploaded):
    at = _page("pages/queue.py")
    assert not at.exception, at.exception
    titles = dict(zip(NEW["title"], NEW["item_id"]))

    first = titles[_current_item(at)]
    accept = next(b for b in at.button if b.label.startswith("1 · "))
    suggested = shown(accept.label).removeprefix("1 · ").rsplit(" — ", 1)[0]
    at = accept.click().run()
    assert not at.exception, at.exception
    labels = _labels()
    assert labels.loc[first, "category"] == suggested
    assert labels.loc[first, "source"] == "accepted"

    second = titles[_current_item(at)]
    assert second != first
    skip = next(b for b in at.button if b.label == "Skip for now")
    at = skip.click().run()
    assert not at.exception, at.exception
    third = titles[_current_item(at)]
    assert third not in (first, second)
    assert second not in _labels().index  # skipping writes nothing

    correct = next(s for s in at.selectbox if s.label == "None of these: pick any category")
    assert correct.value is None  # "none of these" never defaults to a guess
    correct.set_value("Pet Supplies")
    at = next(b for b in at.button if b.label == "Save this category").click().run()
    assert not at.exception, at.exception
    labels = _labels()
    assert labels.loc[third, "category"] == "Pet Supplies" and labels.loc[third, "source"] == "manual"

    # Undo (the U key's button) reverts the newest action: the correction.
    at = next(b for b in at.button if b.label == "Undo my last action").click().run()
    assert third not in _labels().index and first in _labels().index


def test_queue_offers_propagation_to_look_alikes(uploaded):
    at = _page("pages/queue.py")
    at = next(b for b in at.button if b.label.startswith("1 · ")).click().run()
    at = at.slider[0].set_value(0.5).run()
    assert not at.exception, at.exception
    offer = next(b for b in at.button if b.label.startswith("Label these "))
    count = int(offer.label.split()[2])
    at = offer.click().run()
    assert not at.exception, at.exception
    assert (_labels()["source"] == "propagated").sum() == count > 0


def test_explore_renders_and_bulk_labels_a_map_selection(uploaded):
    at = _page("pages/explore.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "Explore"
    # What the browser sends after a lasso over two points.
    points = [{"customdata": [i], "point_index": n, "curve_number": 0} for n, i in enumerate(["n1", "n2", "C1"])]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": [0, 1], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert any("Selection: 3 item(s)" in shown(s.value) for s in at.subheader)
    at = next(s for s in at.selectbox if s.label == "Label all selected as").set_value("Footwear").run()
    # C1 already has a label: it is left alone unless the user ticks "Also relabel".
    at = next(b for b in at.button if b.label == "Label 2 item(s)").click().run()
    assert not at.exception, at.exception
    labels = _labels()
    assert labels.loc["C1", "category"] == "Cookware"
    assert labels.loc[["n1", "n2"], "category"].tolist() == ["Footwear", "Footwear"]
    assert (labels.loc[["n1", "n2"], "source"] == "manual").all()


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE items",
        "DELETE FROM labels",
        "COPY items TO '/tmp/x.csv'",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSTALL httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; DROP TABLE items",
    ],
)
def test_explore_sql_box_refuses_anything_but_a_select(uploaded, sql):
    at = _page("pages/explore.py")
    before = len(ui._open_workspace().store.items())
    next(t for t in at.text_area if t.label == "SQL").set_value(sql)
    at = next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception, at.exception
    assert at.error, f"no error shown for {sql!r}"
    assert len(ui._open_workspace().store.items()) == before


def test_explore_sql_box_runs_a_select(uploaded):
    at = _page("pages/explore.py")
    next(t for t in at.text_area if t.label == "SQL").set_value(
        "SELECT i.title, l.category FROM items i JOIN labels l USING (item_id) ORDER BY i.title"
    )
    at = next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception, at.exception
    assert not at.error
    result = at.dataframe[-1].value
    assert list(result.columns) == ["title", "category"] and len(result) == 12


def test_explore_click_on_one_point_lists_and_highlights_its_neighbours(uploaded):
    at = _page("pages/explore.py")
    at.session_state["map"] = {"selection": {"points": [{"customdata": ["C1"], "point_index": 0, "curve_number": 0}],
                                             "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["explore_picked"] == "C1"
    neighbours = next(d.value for d in at.dataframe if "similarity" in d.value.columns and "source" in d.value.columns)
    assert len(neighbours) == 10 and "C1" not in set(neighbours["item_id"])
    assert any("Nearest neighbours of steel frying pan (C1" in shown(c.value) for c in at.caption)
