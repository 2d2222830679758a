"""AppTest of the merchandiser journey's breakages (issue 22): adding a category then opening
Label next, the sidebar while labelling, the SQL box's size limit, table cells."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from coldrec import ui
from coldrec.store import Store
from coldrec.workspace import Workspace

from tests.conftest import PROJECT
from tests.test_pages import shown
from tests.test_pages_loop import _page


def test_adding_a_category_then_opening_label_next_does_not_crash(uploaded):
    at = _page("pages/categories.py")
    assert not at.exception, at.exception
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Name"].set_value("Educational Toys")
    form_inputs["One-line description (zero-shot prediction reads it)"].set_value("stem kits for kids")
    next(b for b in at.button if b.label == "Add category").click()
    at.run()
    assert not at.exception, at.exception
    assert "Educational Toys" in ui._open_workspace().store.category_names()
    at = at.switch_page("pages/queue.py").run()
    assert not at.exception, at.exception
    # The hint for the new category is shown, and the learning-curve picker holds only categories with a curve.
    assert any("Educational Toys" in shown(i.value) for i in at.info)
    picker = next(m for m in at.multiselect if m.label == "Learning curves of")
    assert set(picker.value) <= set(picker.options) and "Educational Toys" not in picker.value


def test_multiselect_default_is_always_within_the_options():
    at = AppTest.from_string(
        "from coldrec import ui\n"
        "ui.multiselect('Pick', ['a', 'b'], default=['b', 'c', 'b'])\n"
    ).run()
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["b"]


def test_audience_page_without_purchases_advises_no_command_that_changes_the_data(app_env):
    at = _page("pages/audience.py")
    assert not at.exception, at.exception
    texts = [shown(e.value) for e in [*at.info, *at.markdown, *at.caption, *at.warning]]
    assert any("No purchase history yet" in t for t in texts)
    assert not any("coldrec init" in t for t in texts), texts


def _sidebar_labelled(at: AppTest) -> str:
    return next(m.value for m in at.sidebar.get("metric") if m.label == "Labelled examples")


def _run_fragment(at: AppTest, monkeypatch) -> AppTest:
    """Run the page's one fragment alone, as a browser does after a click inside it (AppTest's
    own runs are full-script runs, where the sidebar is drawn after the click's callback anyway)."""
    import streamlit.testing.v1.local_script_runner as runner

    (fragment_id,) = list(at._fragment_storage._fragments)
    real = runner.RerunData
    with monkeypatch.context() as patch:
        patch.setattr(runner, "RerunData", lambda **kw: real(fragment_id_queue=[fragment_id], **kw))
        return at.run()


def test_sidebar_labelled_count_moves_when_label_next_labels_in_its_fragment(uploaded, monkeypatch):
    at = _page("pages/queue.py")
    assert not at.exception, at.exception
    before = int(_sidebar_labelled(at).replace(",", ""))
    # In a full run the card redraws the counts in the sidebar's placeholder: shown once, not twice.
    assert [m.label for m in at.sidebar.get("metric")] == ["Catalog items", "Labelled examples"]
    next(b for b in at.button if b.label.startswith("1 · ")).click()
    at = _run_fragment(at, monkeypatch)
    assert not at.exception, at.exception
    assert not at.title  # the card alone ran: the page's title was not drawn again
    assert ui._open_workspace().store.stats()["labelled_items"] == before + 1
    assert _sidebar_labelled(at) == f"{before + 1:,}"


def _run_sql(at: AppTest, sql: str) -> AppTest:
    next(t for t in at.text_area if t.label == "SQL").set_value(sql)
    return next(b for b in at.button if b.label == "Run").click().run()


def test_sql_box_says_a_result_over_the_size_limit_was_too_large_and_names_the_limit(app_env):
    at = _page("pages/explore.py")
    assert not at.exception, at.exception
    at = _run_sql(at, "SELECT repeat('x', 6000000) AS big")  # one row over the 5 MB limit
    assert not at.exception, at.exception
    warnings = [shown(w.value) for w in at.warning]
    assert any("too large to show" in w and "5 MB limit" in w for w in warnings), warnings
    assert not any("0 row(s) (truncated)" in shown(c.value) for c in at.caption)
    # Many rows of 1 MB: the first ones are shown, and the page says which limit cut the rest.
    at = _run_sql(at, "SELECT i, repeat('x', 1000000) AS big FROM range(20) t(i)")
    assert not at.exception, at.exception
    warnings = [shown(w.value) for w in at.warning]
    assert any("larger than the 5 MB limit" in w and "only its first" in w for w in warnings), warnings
    assert 0 < len(at.dataframe[-1].value) < 20


def test_label_table_shows_no_none_and_not_labelled_removes_a_label(uploaded):
    at = _page("pages/label.py")
    assert not at.exception, at.exception
    editor = at.data_editor[0]
    assert editor.value["label"].tolist() == [ui.NOT_LABELLED] * 4  # not a grey "None", not a blank
    at.session_state[editor.key] = {"edited_rows": {0: {"label": "Cookware"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    at = next(b for b in at.button if b.label == "Save labels").click().run()
    assert not at.exception, at.exception
    store = ui._open_workspace().store
    assert store.labels().set_index("item_id").loc["n1", "category"] == "Cookware"
    at.toggle[0].set_value(False).run()  # all of the batch, labelled ones too
    editor = at.data_editor[0]
    assert editor.value.loc["n1", "label"] == "Cookware"
    at.session_state[editor.key] = {"edited_rows": {0: {"label": ui.NOT_LABELLED}}, "added_rows": [], "deleted_rows": []}
    at.run()
    at = next(b for b in at.button if b.label == "Save labels").click().run()
    assert not at.exception, at.exception
    assert "n1" not in set(store.labels()["item_id"])


def test_flag_columns_are_wide_enough_for_their_words():
    frame = pd.DataFrame({"title": ["a"], "unsure": [True], "novel": [False]})
    shown_frame, config = ui.readable(frame)
    assert shown_frame["unsure"].tolist() == ["⚠️ unsure"]
    assert config["unsure"]["width"] >= 8 * len("⚠️ unsure") + 20
    assert config["novel"]["width"] >= 8 * len("❓ none of your categories") + 20


def test_deploy_button_is_hidden():
    import tomllib

    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] in ("viewer", "minimal")


def test_chart_legends_stay_clear_of_the_modebar():
    from coldrec import charts

    curves = pd.DataFrame({"category": ["A", "A", "B", "B"], "examples": [1, 2, 1, 2], "f1": [0.2, 0.4, 0.3, 0.5]})
    hist = pd.DataFrame({"category": ["A", "B"], "bin_start": [0.0, 0.5], "bin_end": [0.5, 1.0], "items": [3, 4]})
    items = pd.DataFrame({"category": ["A", None], "source": ["catalog", "upload"]})
    for fig in (charts.learning_curves(curves), charts.confidence_histogram_chart(hist), charts.category_counts(items)):
        legend = fig.layout.legend
        assert legend.orientation == "h" and legend.y < 0, legend  # below the plot, the modebar is top right


def test_save_category_descriptions_sits_right_below_its_table(app_env):
    at = _page("pages/categories.py")
    assert not at.exception, at.exception
    order = [getattr(node, "key", None) or getattr(node, "label", None) for node in at.main
             if getattr(node, "type", None) in ("dataframe", "button", "expander")]
    editor = order.index("categories-editor")
    assert order[editor + 1] == "Save category descriptions", order[:8]


def test_try_a_product_evidence_tables_get_the_full_width(app_env):
    at = _page("pages/overview.py")
    at.text_area[0].set_value("steel frying pan").run()
    assert not at.exception, at.exception
    why = [c for c in at.caption if c.value.startswith("Why: the labelled examples")]
    assert why, [c.value for c in at.caption]
    # Only the page's own column holds them (the one with the text box), not a half-width column inside it.
    for column in at.columns:
        if any(c.value.startswith("Why:") or c.value == "Similar catalog items" for c in column.caption):
            assert len(column.text_area) == 1, "the evidence tables sit in a nested half-width column"


def test_load_the_demo_warns_when_the_database_already_holds_items(monkeypatch, tmp_path, tiny_model_dir, tiny_encoder):
    from tests.conftest import dashboard_on

    db = tmp_path / "shop.duckdb"
    with Workspace(Store(db), tiny_encoder) as ws:  # a catalog without categories: pages show their empty state
        ws.imports.import_catalog(pd.DataFrame({"title": ["steel pan", "leather boot"]}), "catalog.csv")
    gen = dashboard_on(monkeypatch, db, tiny_model_dir, tmp_path)
    next(gen)
    try:
        at = _page("pages/label.py")
        assert not at.exception, at.exception
        assert any("already holds 2 items" in shown(w.value) for w in at.warning)
    finally:
        next(gen, None)
