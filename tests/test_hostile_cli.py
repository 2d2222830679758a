"""The CLI on hostile inputs (issue 12): each attack file makes ``predict`` exit non-zero within
10 s with a one-line message; ``sql`` runs the sandbox; bugs keep their traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from coldrec.cli import main
from coldrec.testing import hostile_files

PROJECT = Path(__file__).resolve().parent.parent


def _run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "coldrec", *args], cwd=PROJECT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return done.returncode, done.stderr, time.perf_counter() - started


@pytest.fixture(scope="module")
def attack_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("attack")
    for build in hostile_files.UPLOADS.values():
        name, data = build()
        (folder / name).write_bytes(data)
    return folder


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDREC_")}
    env.update({"COLDREC_DB": str(tmp / "cli.duckdb"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra})
    return env


REFUSED = sorted(set(hostile_files.UPLOADS) - {"json_lone_surrogate"})  # that one is readable text


@pytest.mark.parametrize("case", REFUSED)
def test_predict_on_an_attack_file_exits_non_zero_within_10_s_with_one_line(case, attack_dir, tmp_path):
    name, _ = hostile_files.UPLOADS[case]()
    code, err, seconds = _run_cli(["predict", str(attack_dir / name), "-o", str(tmp_path / "out.csv")], _env(tmp_path))
    assert code == 2 and seconds < 10, (code, seconds, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: ") and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [({"COLDREC_MAX_ROWS": "1e400"}, "COLDREC_MAX_ROWS must be a finite number"),
     ({"COLDREC_MAX_UPLOAD_MB": "-1"}, "COLDREC_MAX_UPLOAD_MB must be above 0")],
)
def test_absurd_settings_exit_2_with_the_variable_named(extra, needle, tmp_path):
    code, err, _ = _run_cli(["stats"], _env(tmp_path, **extra))
    assert code == 2 and err.strip() == f"error: {needle}, got {extra[next(iter(extra))]!r}" or needle in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_model_folder_is_named(tmp_path):
    (tmp_path / "new.csv").write_text("title\nsteel pan\n")
    code, err, _ = _run_cli(["predict", str(tmp_path / "new.csv")], _env(tmp_path, COLDREC_MODEL="/nonexistent"))
    assert code == 2 and err.strip().startswith("error: model folder not found: /nonexistent")


def test_a_truncated_database_is_a_clear_error_at_start(tmp_path):
    (tmp_path / "cli.duckdb").write_bytes(b"DUCK" * 100)
    code, err, _ = _run_cli(["stats"], _env(tmp_path))
    assert code == 2 and "cannot open the database" in err and "Traceback" not in err


def test_a_bug_is_logged_with_its_traceback_not_as_an_error_line(monkeypatch, capsys, caplog):
    import coldrec.cli as cli

    def broken(args, settings):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli._COMMANDS, "stats", broken)
    assert main(["stats"]) == 1
    assert "error:" not in capsys.readouterr().err
    (record,) = [r for r in caplog.records if r.name == "coldrec"]
    assert "a bug" in record.getMessage() and record.exc_info and str(record.exc_info[1]) == "boom"


# -- the analysts' sql command -----------------------------------------------------------------------
@pytest.fixture
def db(monkeypatch, tmp_path):
    from coldrec.store import Store

    path = tmp_path / "sql.duckdb"
    with Store(path) as store:
        store.upsert_categories(pd.DataFrame({"name": ["Cookware", "Footwear"]}))
        store.upsert_items(pd.DataFrame({"item_id": ["a", "b"], "title": ["pan", "boot"]}), source="catalog")
        store.add_labels(["a", "b"], ["Cookware", "Footwear"], who="ana")
    monkeypatch.setenv("COLDREC_DB", str(path))
    return path


def test_sql_prints_csv_and_json(db, capsys):
    assert main(["sql", "SELECT category, count(*) AS n FROM labels GROUP BY 1 ORDER BY 1"]) == 0
    assert capsys.readouterr().out == "category,n\nCookware,1\nFootwear,1\n"
    assert main(["sql", "SELECT item_id FROM items ORDER BY 1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"item_id": "a"}, {"item_id": "b"}]


@pytest.mark.parametrize(
    "query, needle",
    [("DELETE FROM items", "only SELECT"), ("SELECT * FROM duckdb_settings()", "not available here"),
     ("WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d", "only reading is allowed"),
     ("SELECT * FROM glob('./.tmp/*')", "not available here"), ("SELEC 1", "syntax error")],
)
def test_sql_refusals_exit_2_with_one_line_and_change_nothing(db, capsys, query, needle):
    assert main(["sql", query]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1
    assert main(["sql", "SELECT count(*) AS n FROM items"]) == 0
    assert capsys.readouterr().out == "n\n2\n"


def test_sql_says_when_the_result_was_cut(db, capsys):
    assert main(["sql", "SELECT * FROM range(5000) t(i)"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1 + 1000 and "truncated at 1,000 rows" in captured.err


def test_sql_without_a_database_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "none.duckdb"))
    assert main(["sql", "SELECT 1"]) == 2
    assert "run `python -m coldrec init` first" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()
