"""The dashboard on hostile inputs (issue 12), through Streamlit's AppTest: every attack upload
ends in an error box naming the file, never an exception; odd databases still open or say why."""

from __future__ import annotations

import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from coldrec.testing import hostile_files
from tests.conftest import PROJECT

REFUSED = sorted(set(hostile_files.UPLOADS) - {"json_lone_surrogate"})


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=90)
    at.run()
    return at.switch_page(path).run()


def _errors(at: AppTest) -> list[str]:
    return [e.value.replace("\\", "") for e in at.error]


def test_every_attack_upload_is_refused_on_the_page_with_its_name(app_env):
    at = _page("pages/upload.py")
    for case in REFUSED:
        name, data = hostile_files.UPLOADS[case]()
        started = time.perf_counter()
        at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, (case, at.exception)
        assert any(e.startswith(name + ":") for e in _errors(at)), (case, _errors(at))
        assert time.perf_counter() - started < 10, case
        assert not [b for b in at.button if b.label == "Predict"], case  # nothing to predict from


def test_pasted_text_with_control_and_invisible_characters_is_previewed_and_predicted(app_env):
    # (A lone surrogate cannot reach a page: the browser sends UTF-8; parse_pasted's own handling
    # of one is tested in test_hostile.py.)
    at = _page("pages/upload.py")
    at.text_area[0].set_value("steel pan \x00\u202e\u200b\nleather boot\tbrown \x1b[31m").run()
    assert not at.exception, at.exception
    at = next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    assert len(at.dataframe[-1].value) == 2


def test_a_readable_json_with_a_lone_surrogate_uploads(app_env):
    at = _page("pages/upload.py")
    name, data = hostile_files.json_lone_surrogate()
    at.file_uploader[0].set_value((name, data, "application/json")).run()
    assert not at.exception, at.exception and not at.error


def test_a_read_only_database_can_still_be_viewed(app_env, monkeypatch):
    db = str(app_env / "app.duckdb")
    real_access = os.access
    # As root permission bits do not bind: answer as the file system would for another user.
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == db else real_access(p, mode))
    for path in ("pages/overview.py", "pages/upload.py", "pages/label.py", "pages/explore.py"):
        at = _page(path)
        assert not at.exception, (path, at.exception)
        assert not any("cannot start" in e for e in _errors(at)), path


@pytest.mark.parametrize("damage", ["truncated", "missing_folder"])
def test_a_broken_database_path_stops_the_app_with_a_message(app_env, monkeypatch, damage):
    if damage == "truncated":
        data = (app_env / "app.duckdb").read_bytes()
        (app_env / "app.duckdb").write_bytes(data[: len(data) // 3])
        needle = "cannot open the database"
    else:
        monkeypatch.setenv("COLDREC_DB", str(app_env / "no" / "such" / "x.duckdb"))
        needle = "does not exist"
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    assert any("coldrec cannot start" in e and needle in e for e in _errors(at)), _errors(at)


def test_an_absurd_setting_stops_the_app_with_the_variable_named(app_env, monkeypatch):
    monkeypatch.setenv("COLDREC_MAX_ROWS", "1e400")
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    assert any("COLDREC_MAX_ROWS" in e for e in _errors(at)), _errors(at)
