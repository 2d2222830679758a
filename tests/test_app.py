"""The dashboard renders (Streamlit AppTest) on a fresh database with the tiny model."""

from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT


def _app() -> AppTest:
    return AppTest.from_file(str(PROJECT / "app.py"), default_timeout=60)


def test_overview_renders_with_sidebar_counts(app_env):
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics == {"Catalog items": "12", "Labelled examples": "12"}


def test_try_a_product_shows_a_prediction_and_escapes_markup(app_env):
    at = _app().run()
    at.text_area[0].input("<b>steel</b> *pan*\n<script>alert(1)</script>").run()
    assert not at.exception
    verdicts = [m.value for m in at.markdown if "%" in m.value]
    assert verdicts and "<b>" not in verdicts[0]
    assert len(at.dataframe) >= 2  # evidence and similar items


def test_a_locked_database_shows_a_message_not_a_traceback(app_env, tmp_path, monkeypatch):
    import subprocess
    import sys

    db = tmp_path / "held.duckdb"
    script = f"import sys, time; sys.path.insert(0, {str(PROJECT)!r}); from coldrec.store import Store; s = Store({str(db)!r}); print('open', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        monkeypatch.setenv("COLDREC_DB", str(db))
        st.cache_resource.clear()
        at = _app().run()
        assert not at.exception
        assert "in use by another coldrec process" in at.error[0].value
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_readable_tables_put_titles_first_ids_last_and_say_flags_in_words():
    import pandas as pd

    from coldrec import ui

    frame = pd.DataFrame({
        "item_id": ["a1", "a2"], "top1": ["Cookware", None], "title": ["steel pan", "boot"],
        "top1_probability": [0.91, 0.4], "unsure": [False, True], "novel": [True, False], "labelled": [True, False],
    })
    shown, config = ui.readable(frame)
    assert list(shown.columns) == ["title", "top1", "top1_probability", "unsure", "novel", "labelled", "item_id"]
    assert shown["unsure"].tolist() == ["", "⚠️ unsure"]
    assert shown["novel"].tolist() == ["❓ none of your categories", ""]
    assert shown["labelled"].tolist() == ["yes", "no"]
    assert shown["top1"].tolist() == ["Cookware", ""]  # no "None"
    assert config["top1_probability"]["type_config"]["format"] == "percent"
    assert config["top1"]["label"] == "category" and config["item_id"]["label"] == "id"
    assert frame["unsure"].tolist() == [False, True]  # the caller's frame is untouched
