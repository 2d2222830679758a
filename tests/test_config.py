"""Settings from the environment."""

from pathlib import Path

import pytest

from coldrec.config import Settings, bundled_model_path


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("COLDREC_MODEL", "some/model")
    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "0.7")
    s = Settings.from_env()
    assert s.db_path == tmp_path / "x.duckdb" and s.model == "some/model" and s.unsure_below == 0.7
    assert Settings.from_env(model="other").model == "other"


def test_bad_number_in_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "high")
    with pytest.raises(ValueError, match="COLDREC_UNSURE_BELOW"):
        Settings.from_env()


def test_bundled_model_is_installed():
    path = bundled_model_path()
    assert path is not None and (Path(path) / "config.json").is_file()
