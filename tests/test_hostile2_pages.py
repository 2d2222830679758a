"""The dashboard, round 2 (issue 25): the Label page's labels upload refuses in an error box (it
raised NameError before), round-2 attack files on the Upload page, no error details in the browser."""

from __future__ import annotations

import tomllib

from tests.conftest import PROJECT
from tests.test_hostile_pages import _errors, _page


def test_a_refused_labels_upload_is_an_error_box_not_an_exception(app_env):
    at = _page("pages/label.py")
    uploader = next(u for u in at.get("file_uploader") if "Labels file" in u.label)
    uploader.set_value(("labels.csv", b"item_id,category\nNOPE,Nothing\n", "text/csv")).run()
    at = next(b for b in at.button if b.label == "Import labels").click().run()
    assert not at.exception, at.exception
    assert any(e.startswith("labels.csv: unknown item_id") for e in _errors(at)), _errors(at)


def test_pasting_more_products_than_the_row_limit_is_an_error_box(app_env, monkeypatch):
    monkeypatch.setenv("COLDREC_MAX_ROWS", "50")
    at = _page("pages/upload.py")
    at.text_area[0].set_value("mug\n" * 51).run()
    assert not at.exception, at.exception
    assert any("more than 50 products" in e for e in _errors(at)), _errors(at)


def test_the_browser_gets_no_error_details():
    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
