"""Hostile SQL, round 2 (issue 25): a CTE shadowing a system view, statement types the Python enum
does not know, deep nesting, functions that ignore interrupts, results that print far larger than
their Arrow size. Each test failed before its fix."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from coldrec.sqlbox import SQLRefused, check_statement, run_readonly
from tests.test_sqlbox import seeded  # noqa: F401 - the fixture

#: The ten system views the attack reached through a shadowing CTE, and the other catalogs.
_SHADOWED = ["pg_settings", "pg_tables", "pg_views", "pg_namespace", "pg_class", "pg_attribute", "pg_type",
             "pg_proc", "pg_index", "pg_database", "information_schema.tables", "information_schema.columns",
             "duckdb_settings()"]


@pytest.mark.parametrize("view", _SHADOWED)
def test_a_cte_that_shadows_a_system_view_cannot_reach_the_real_one(seeded, view):  # noqa: F811
    alias = view.split(".")[-1].removesuffix("()")
    sql = f"SELECT b.* FROM (WITH {alias} AS (SELECT 1 x) SELECT x FROM {alias}) a, {view} b"
    with pytest.raises(SQLRefused, match="not available here|can be read"):
        run_readonly(seeded, "m", sql)


def test_own_ctes_subqueries_and_generators_still_run(seeded):  # noqa: F811
    sql = """WITH items AS (SELECT * FROM items WHERE source = 'catalog'), n AS (SELECT * FROM range(3) r(i))
             SELECT (SELECT count(*) FROM items) AS catalog, (SELECT count(*) FROM n) AS n,
                    (SELECT count(*) FROM unnest([1, 2]) u(v)) AS u, (SELECT count(*) FROM generate_series(1, 4)) AS g"""
    assert run_readonly(seeded, "m", sql).frame.iloc[0].tolist() == [3, 3, 2, 4]
    recursive = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT max(n) FROM t"
    assert run_readonly(seeded, "m", recursive).frame.iloc[0, 0] == 5


@pytest.mark.parametrize("sql", ["UPDATE EXTENSIONS", "UPDATE EXTENSIONS (httpfs)"])
def test_a_statement_type_unknown_to_the_python_enum_is_refused_in_one_line(sql):
    with pytest.raises(SQLRefused, match="only SELECT queries"):
        check_statement(sql)


def test_deep_nesting_is_refused_in_one_line():
    sql = "SELECT * FROM " + "(SELECT * FROM " * 500 + "items" + ") t" * 500
    with pytest.raises(SQLRefused) as caught:
        check_statement(sql)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("sql", [
    "SELECT length(lpad('', 2000000000, 'x'))",
    "SELECT levenshtein(repeat('a', 150000), repeat('b', 150000))",
])
def test_a_query_that_ignores_the_interrupt_is_stopped_at_the_deadline(seeded, sql):  # noqa: F811
    started = time.perf_counter()
    with pytest.raises(SQLRefused, match="took longer than 1 s|needs more"):
        run_readonly(seeded, "m", sql, timeout_s=1)
    assert time.perf_counter() - started < 12  # worker start (~2-4 s on a shared 2-core VM) + 1 s + 1 s


@pytest.mark.parametrize("sql", [
    "SELECT list_resize([]::BOOLEAN[], 5000000, false) AS l",
    "SELECT repeat(chr(0), 4000000) AS s",
    "SELECT repeat(chr(0), 100000) AS s FROM range(60)",
])
def test_the_result_cap_counts_the_printed_size(seeded, sql):  # noqa: F811
    result = run_readonly(seeded, "m", sql, timeout_s=60)  # list_resize alone takes ~9 s on a busy 2-core VM
    printed = result.frame.to_json(orient="records", force_ascii=False).encode()
    assert result.truncated and result.truncated_by == "bytes"
    assert len(printed) <= 5 * 1024**2 + 1024


def test_a_result_under_the_cap_is_whole(seeded):  # noqa: F811
    result = run_readonly(seeded, "m", "SELECT repeat('é', 1000) AS s FROM range(100)")
    assert not result.truncated and len(result.frame) == 100


def test_cli_sql_refusals_are_one_line(tmp_path, monkeypatch, capsys):
    from coldrec import cli
    from coldrec.store import Store

    db = tmp_path / "c.duckdb"
    with Store(db) as store:
        store.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["pan"]}), source="catalog")
    monkeypatch.setenv("COLDREC_DB", str(db))
    for sql in ("UPDATE EXTENSIONS", "SELECT * FROM " + "(SELECT * FROM " * 500 + "items" + ") t" * 500):
        assert cli.main(["sql", sql]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
