"""Settings from the environment."""

from pathlib import Path

import pytest

from coldrec.config import Settings, bundled_model_path
from coldrec.errors import ConfigError


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("COLDREC_MODEL", "some/model")
    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "0.7")
    s = Settings.from_env()
    assert s.db_path == tmp_path / "x.duckdb" and s.model == "some/model" and s.unsure_below == 0.7
    assert Settings.from_env(model="other").model == "other"


def test_bad_number_in_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "high")
    with pytest.raises(ConfigError, match="COLDREC_UNSURE_BELOW"):
        Settings.from_env()


def test_bundled_model_is_installed():
    path = bundled_model_path()
    assert path is not None and (Path(path) / "config.json").is_file()


@pytest.mark.parametrize(
    "name, raw",
    [("COLDREC_MAX_ROWS", "1e400"), ("COLDREC_MAX_ROWS", "nan"), ("COLDREC_MAX_ROWS", "0"),
     ("COLDREC_MAX_ROWS", "-5"), ("COLDREC_MAX_UPLOAD_MB", "inf"), ("COLDREC_MAX_UPLOAD_MB", "1e12")],
)
def test_absurd_limits_are_a_config_error_naming_the_variable(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        Settings.from_env()


def test_a_fractional_row_limit_is_read_as_a_whole_number(monkeypatch):
    monkeypatch.setenv("COLDREC_MAX_ROWS", "1e3")
    assert Settings.from_env().max_rows == 1000


# -- found in review: each once failed or lost data --------------------------------------------
def test_out_of_range_unsure_threshold_is_refused(monkeypatch):
    from coldrec.config import Settings

    monkeypatch.setenv("COLDREC_UNSURE_BELOW", "50")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Settings.from_env()
