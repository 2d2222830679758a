"""Every dashboard page through Streamlit's AppTest, on a fresh database with the tiny model."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coldrec import ui

from tests.conftest import PROJECT

NEW_CSV = b"sku,name,desc\nn1,steel frying pan,for the oven\nn2,leather boot,<script>alert(1)</script>\nn3,dog food pack,\n"


def shown(markdown: str) -> str:
    """What a Markdown source with backslash escapes displays."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=90)
    at.run()
    return at.switch_page(path).run()


@pytest.mark.parametrize(
    "path",
    [
        "pages/overview.py", "pages/upload.py", "pages/queue.py", "pages/label.py", "pages/explore.py",
        "pages/audience.py", "pages/categories.py",
    ],
)
def test_every_page_renders_on_a_fresh_database(app_env, path):
    at = _page(path)
    assert not at.exception, at.exception
    assert at.title


def _upload(at: AppTest, content: bytes = NEW_CSV, name: str = "new.csv") -> AppTest:
    at.file_uploader[0].set_value((name, content, "text/csv")).run()
    predict = next(b for b in at.button if b.label == "Predict")
    return predict.click().run()


def test_upload_flow_predicts_offers_downloads_and_stores_the_batch(app_env):
    at = _upload(_page("pages/upload.py"))
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert table["item_id"].tolist() == ["n1", "n2", "n3"]
    assert {"top1", "top1_probability", "unsure", "top2", "top3"} <= set(table.columns)
    assert [d.label for d in at.get("download_button")] == ["Download CSV", "Download Excel"]


def test_accepting_a_prediction_saves_a_label_that_persists(app_env):
    at = _upload(_page("pages/upload.py"))
    results_key = at.dataframe[-1].key
    assert results_key and results_key.startswith("results-")
    at.session_state[results_key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    accept = next(b for b in at.button if b.label.startswith("Accept: "))
    predicted = shown(accept.label).removeprefix("Accept: ")
    at = accept.click().run()
    assert not at.exception, at.exception
    ws = ui._open_workspace()
    labels = ws.store.labels().set_index("item_id")
    assert labels.loc["n1", "category"] == predicted and labels.loc["n1", "source"] == "accepted"


def test_label_editor_saves_to_duckdb_and_changes_the_next_prediction(app_env):
    at = _upload(_page("pages/upload.py"))
    ws = ui._open_workspace()
    items = ws.store.items(batch=ws.store.batches()["batch"][0])
    before = ws.predictor.predict(items).predictions[0]
    target = next(c for c in ws.store.category_names() if c != before.category)

    at = at.switch_page("pages/label.py").run()
    editor = at.data_editor[0]
    # n1 labelled as the target: its prediction is clamped to its label (and it is not its own evidence).
    at.session_state[editor.key] = {"edited_rows": {0: {"label": target}}, "added_rows": [], "deleted_rows": []}
    at.run()
    save = next(b for b in at.button if b.label == "Save labels")
    at = save.click().run()
    assert not at.exception, at.exception
    assert ws.store.labels().set_index("item_id").loc["n1", "category"] == target
    after = ws.predictor.predict(items).predictions[0]
    assert after.top[0][0] == target and after.top[0][1] > 0.9
    assert all(e[0] != "n1" for e in after.evidence)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "empty"),
        ("latin1.csv", b"title\ncaf\xe9 cr\xe8me\n", "UTF-8"),
        ("nocol.csv", b"sku,price\nA1,3\n", "no text column"),
        ("dups.csv", b"id,title\nA,pan\nA,pot\n", "duplicate ids"),
    ],
)
def test_bad_uploads_show_one_clear_message_and_change_nothing(app_env, name, content, message):
    at = _page("pages/upload.py")
    ws = ui._open_workspace()
    before = ws.store.stats()
    at.file_uploader[0].set_value((name, content, "text/csv")).run()
    predict = [b for b in at.button if b.label == "Predict"]
    if predict:
        at = predict[0].click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and message in shown(at.error[0].value) and name in shown(at.error[0].value)
    assert ws.store.stats() == before


def test_oversized_upload_is_refused(app_env, monkeypatch):
    monkeypatch.setenv("COLDREC_MAX_UPLOAD_MB", "0.0001")
    import streamlit as st

    st.cache_resource.clear()
    at = _page("pages/upload.py")
    at.file_uploader[0].set_value(("big.csv", b"title\n" + b"steel pan\n" * 100, "text/csv")).run()
    assert "over the" in shown(at.error[0].value)


def test_new_category_from_the_label_page(app_env):
    at = _page("pages/label.py")
    form_inputs = [t for t in at.text_input if t.label == "Name"]
    form_inputs[0].input("Garden")
    next(t for t in at.text_input if t.label.startswith("One-line description")).input("Hoses, seeds and tools for the garden")
    at = next(b for b in at.button if b.label == "Add category").click().run()
    assert not at.exception, at.exception
    ws = ui._open_workspace()
    assert "Garden" in ws.store.category_names()


def test_rename_then_merge_categories_on_the_categories_page(app_env):
    at = _page("pages/categories.py")
    next(s for s in at.selectbox if s.label == "Category to rename").set_value("Cookware")
    next(t for t in at.text_input if t.label == "New name").input("Pots & <b>Pans</b>")
    at = next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception, at.exception
    ws = ui._open_workspace()
    assert "Pots & <b>Pans</b>" in ws.catalog.category_names() and "Cookware" not in ws.catalog.category_names()
    assert "Pots & <b>Pans</b> (4 labels)" in next(s for s in at.selectbox if s.label == "Into").options
    next(m for m in at.multiselect if m.label == "Categories to merge").set_value(["Footwear"])
    next(s for s in at.selectbox if s.label == "Into").set_value("Pet Supplies")
    at = next(b for b in at.button if b.label == "Merge").click().run()
    assert not at.exception, at.exception
    assert ws.catalog.category_names() == ["Pet Supplies", "Pots & <b>Pans</b>"]
    assert (ws.labels.counts().set_index("category")["examples"] == 8).tolist() == [True, False]


def test_audience_page_lists_shoppers_with_reasons_and_exports(app_env):
    import pandas as pd

    from coldrec.store import Store

    store = Store(app_env / "app.duckdb")
    store.add_interactions(
        pd.DataFrame({"user_id": ["ana", "ana", "ben", "ben"], "item_id": ["C1", "C2", "P1", "P2"], "order_number": [1, 2, 1, 1]})
    )
    store.close()
    at = _page("pages/audience.py")
    at.text_input[0].input("steel frying pan").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["user_id"]) <= {"ana", "ben"} and len(table) >= 1
    assert "because they bought" in table.columns
    assert any(d.label == "Download audience CSV" for d in at.get("download_button"))
    assert not at.exception


def test_product_text_with_markup_is_shown_as_text(app_env):
    nasty = b'id,title\nx1,"<img src=x onerror=alert(1)> **Bold** [link](http://evil.example)"\n'
    at = _upload(_page("pages/upload.py"), nasty, "nasty.csv")
    key = at.dataframe[-1].key
    at.session_state[key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    heading = next(h.value for h in at.subheader if "img" in h.value)
    # Every Markdown/HTML character is escaped, so it displays literally and renders nothing.
    assert heading == r"\<img src=x onerror=alert\(1\)\> \*\*Bold\*\* \[link\]\(http\://evil\.example\)"
    assert shown(heading) == "<img src=x onerror=alert(1)> **Bold** [link](http://evil.example)"


def test_a_product_tried_on_the_overview_shows_its_evidence_below_at_full_width(app_env):
    at = _page("pages/overview.py")
    at = at.text_area[0].input("steel frying pan **x**\nnon-stick").run()
    assert not at.exception, at.exception
    assert shown(at.subheader[-1].value) == "Tried: steel frying pan **x**"  # escaped, after the two columns
    evidence, similar = at.dataframe[-2].value, at.dataframe[-1].value
    assert {"title", "label"} <= set(evidence.columns) and {"title", "category"} <= set(similar.columns)


def test_large_workspaces_cross_validate_the_labels_only_when_asked(app_env, monkeypatch):
    from coldrec import labelling

    monkeypatch.setattr(labelling, "REVIEW_AUTOMATICALLY_MAX_ITEMS", 5)  # the demo's 12 items count as large
    calls = []
    real = labelling.review
    monkeypatch.setattr(labelling, "review", lambda ws: calls.append(1) or real(ws))
    at = _page("pages/categories.py")
    assert not at.exception, at.exception
    assert "targets-editor" not in [e.key for e in at.data_editor] and not calls
    at.toggle(key="estimate-targets").set_value(True).run()
    assert not at.exception, at.exception
    assert "targets-editor" in [e.key for e in at.data_editor] and calls
    at = at.switch_page("pages/label.py").run()
    assert not at.exception, at.exception
    assert at.toggle(key="check-labels").value is False


def test_the_model_line_shows_only_what_the_backend_has(app_env, monkeypatch):
    from coldrec import ui as ui_module

    at = _page("pages/categories.py")
    line = next(shown(c.value) for c in at.caption if shown(c.value).startswith("Model "))
    assert "?" not in line
    encoder = ui_module._open_workspace().encoder
    monkeypatch.setattr(encoder, "pooling", None)  # a backend without pooling (USE)
    at = at.run()
    line = next(shown(c.value) for c in at.caption if shown(c.value).startswith("Model "))
    assert "pooling" not in line and "?" not in line


def test_likely_mistakes_say_how_many_there_are_and_show_the_first_ten(app_env, monkeypatch):
    from coldrec import labelling

    disputed = pd.DataFrame({"item_id": [f"i{n}" for n in range(12)], "title": [f"item {n}" for n in range(12)],
                             "given": ["Cookware"] * 12, "suggested": ["Footwear"] * 12})
    monkeypatch.setattr(labelling, "label_issues", lambda ws: disputed)
    at = _page("pages/label.py")
    assert not at.exception, at.exception
    assert any(shown(c.value).startswith("12 label(s) disputed") and "first 10 are shown" in shown(c.value)
               for c in at.caption)
    assert sum(shown(b.label) == "Change to Footwear" for b in at.button) == 10


#: What a page may not reach past the services for: the database, the cache, SQL and the model's libraries.
_PAGE_FORBIDDEN_ATTRIBUTES = {"store", "memo", "_memo"}
_PAGE_FORBIDDEN_IMPORTS = {"duckdb", "torch", "transformers", "coldrec.store", "coldrec.services.state"}


def _page_sources() -> list:
    return sorted((PROJECT / "pages").glob("*.py")) + [PROJECT / "app.py", PROJECT / "coldrec" / "ui.py"]


def _reaches_past_services(source: str) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and (
            node.attr in _PAGE_FORBIDDEN_ATTRIBUTES
            or (node.attr == "state" and isinstance(node.value, ast.Name) and node.value.id == "ws")
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"line {node.lineno}: import {n}" for n in names if n.split(".")[0] in _PAGE_FORBIDDEN_IMPORTS
                      or n in _PAGE_FORBIDDEN_IMPORTS]
    return found


def test_pages_call_services_never_the_store_or_the_cache():
    offenders = {path.name: hits for path in _page_sources() if (hits := _reaches_past_services(path.read_text()))}
    assert offenders == {}, "pages, app.py and ui.py go through ws.<service> (see README, Architecture)"


def test_the_page_check_catches_a_store_call_and_a_memo():
    # the check itself: each way a page used to reach past the services is caught
    assert _reaches_past_services("ws.store.set_category_target('a', None)") == ["line 1: .store"]
    assert _reaches_past_services("x = ws.memo('k', 1, f)") == ["line 1: .memo"]
    assert _reaches_past_services("ws.state.version()") == ["line 1: .state"]
    assert _reaches_past_services("import duckdb") == ["line 1: import duckdb"]
    assert _reaches_past_services("ws.catalog.set_category_target('a', None)") == []
