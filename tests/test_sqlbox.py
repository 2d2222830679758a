"""The analysts' read-only SQL box: SELECTs over the views run; writes, settings, files,
extensions, other databases and runaway queries are refused, and the store is left untouched."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from coldrec.sqlbox import VIEWS, SQLRefused, SQLResult, run_readonly
from coldrec.store import Store


@pytest.fixture
def seeded(store: Store) -> Store:
    store.upsert_categories(pd.DataFrame({"name": ["Cookware", "Footwear"], "description": ["pans", "shoes"]}))
    store.upsert_items(
        pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["pan", "boot", "wok"], "brand": ["x", None, "x"]}),
        source="catalog",
    )
    store.upsert_items(pd.DataFrame({"item_id": ["u1", "u2"], "title": ["skillet", "sandal"]}), source="upload", batch="b1")
    store.add_labels(["a", "b", "c"], ["Cookware", "Footwear", "Cookware"], who="ana")
    top3 = [json.dumps([{"category": c, "probability": p}]) for c, p in (("Cookware", 0.9), ("Footwear", 0.4))]
    predictions = pd.DataFrame(
        {"item_id": ["u1", "u2"], "category": ["Cookware", "Footwear"], "probability": [0.9, 0.4],
         "unsure": [False, True], "top3_json": top3}
    )
    store.save_predictions("m", predictions)
    store.save_predictions("other", predictions.assign(category="Footwear"))
    return store


def test_a_select_with_joins_over_the_views_runs(seeded):
    result = run_readonly(
        seeded,
        "m",
        """SELECT c.name, count(DISTINCT l.item_id) AS labelled, count(DISTINCT p.item_id) AS predicted
           FROM categories c LEFT JOIN labels l ON l.category = c.name
           LEFT JOIN predictions p ON p.category = c.name
           GROUP BY c.name ORDER BY c.name""",
    )
    assert isinstance(result, SQLResult) and not result.truncated and result.elapsed_s >= 0
    assert result.frame.to_dict("list") == {"name": ["Cookware", "Footwear"], "labelled": [2, 1], "predicted": [1, 1]}


def test_the_views_hold_the_documented_columns_and_only_the_chosen_model(seeded):
    columns = {
        name: run_readonly(seeded, "m", f"SELECT * FROM {name}").frame.columns.tolist() for name in VIEWS
    }
    assert columns == {
        "items": ["item_id", "title", "description", "brand", "price", "source", "batch", "added_at"],
        "labels": ["item_id", "category", "who", "source", "labelled_at"],
        "predictions": ["item_id", "category", "probability", "unsure", "top3", "predicted_at"],
        "categories": ["name", "description", "path"],
    }
    pred = run_readonly(seeded, "m", "SELECT item_id, category, top3 FROM predictions ORDER BY item_id").frame
    assert pred["category"].tolist() == ["Cookware", "Footwear"]
    assert json.loads(pred["top3"].iloc[0]) == [{"category": "Cookware", "probability": 0.9}]
    # JSON functions work on the VARCHAR copy.
    first = run_readonly(seeded, "m", "SELECT top3->0->>'category' AS c FROM predictions ORDER BY item_id").frame
    assert first["c"].tolist() == ["Cookware", "Footwear"]
    assert run_readonly(seeded, "other", "SELECT DISTINCT category FROM predictions").frame["category"].tolist() == [
        "Footwear"
    ]


def test_row_limit_truncates(seeded):
    result = run_readonly(seeded, "m", "SELECT item_id FROM items ORDER BY item_id", row_limit=2)
    assert result.frame["item_id"].tolist() == ["a", "b"] and result.truncated
    exact = run_readonly(seeded, "m", "SELECT item_id FROM items", row_limit=5)
    assert len(exact.frame) == 5 and not exact.truncated
    # A huge result is cut without being materialised.
    big = run_readonly(seeded, "m", "SELECT * FROM range(100000000000) t(i)", row_limit=3)
    assert big.frame["i"].tolist() == [0, 1, 2] and big.truncated


def test_an_empty_result_keeps_its_columns(seeded):
    result = run_readonly(seeded, "m", "SELECT item_id, title FROM items WHERE false")
    assert result.frame.empty and result.frame.columns.tolist() == ["item_id", "title"] and not result.truncated


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("DROP TABLE items", "not DROP"),
        ("DELETE FROM labels", "not DELETE"),
        ("INSERT INTO categories VALUES ('x', NULL, NULL)", "not INSERT"),
        ("UPDATE items SET title = 'x'", "not UPDATE"),
        ("CREATE TABLE t AS SELECT 1", "not CREATE"),
        ("COPY items TO '/tmp/coldrec_leak.csv'", "not COPY"),
        ("ATTACH '/tmp/other.duckdb' AS other", "not ATTACH"),
        ("INSTALL httpfs", "not"),
        ("LOAD httpfs", "not"),
        ("PRAGMA version", "not PRAGMA"),
        ("SET enable_external_access = true", "not"),
        ("RESET lock_configuration", "not"),
        ("CALL pragma_version()", "not CALL"),
        ("EXPORT DATABASE '/tmp/coldrec_export'", "not EXPORT"),
        ("SELECT 1; DROP TABLE items", "one statement"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("", "SELECT"),
    ],
)
def test_statements_other_than_one_select_are_refused(seeded, sql, reason):
    with pytest.raises(SQLRefused, match=reason):
        run_readonly(seeded, "m", sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM read_json('/etc/passwd')",
    ],
)
def test_selects_that_touch_files_are_refused(seeded, sql):
    with pytest.raises(SQLRefused, match="is not available here"):
        run_readonly(seeded, "m", sql)


def test_selects_cannot_reach_the_store_or_other_tables(seeded):
    # Only the four views (and the query's own WITH names) can be named.
    for table in ("label_events", "embeddings", "meta", "projections", "main.items", "information_schema.tables"):
        with pytest.raises(SQLRefused, match="can be read, not"):
            run_readonly(seeded, "m", f"SELECT * FROM {table}")
    # Python data frames in scope are not tables there either.
    secret = pd.DataFrame({"password": ["hunter2"]})  # noqa: F841 - what a replacement scan would find
    with pytest.raises(SQLRefused, match="can be read, not 'secret'"):
        run_readonly(seeded, "m", "SELECT * FROM secret")
    # A SELECT that smuggles another statement through query() is refused.
    with pytest.raises(SQLRefused, match="query"):
        run_readonly(seeded, "m", "SELECT * FROM query('DROP TABLE items')")
    assert run_readonly(seeded, "m", "WITH t AS (SELECT 1 AS v) SELECT v FROM t").frame["v"].tolist() == [1]


def test_syntax_and_binder_errors_come_back_as_one_line_messages(seeded):
    with pytest.raises(SQLRefused) as bad:
        run_readonly(seeded, "m", "SELEC 1")
    assert "syntax error" in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(SQLRefused, match="nope"):
        run_readonly(seeded, "m", "SELECT nope FROM items")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM range(1000000000000)",
        "SELECT a.range + b.range AS s FROM range(10000000000) a, range(10) b ORDER BY s DESC",
    ],
)
def test_a_long_query_is_stopped_by_the_time_limit(seeded, sql):
    with pytest.raises(SQLRefused, match="took longer than 0.5 s"):
        run_readonly(seeded, "m", sql, timeout_s=0.5)
    # The box still works afterwards.
    assert run_readonly(seeded, "m", "SELECT 42 AS x").frame["x"].tolist() == [42]


def _file_contents(path: Path) -> dict[str, list[tuple]]:
    """Every table of a database file with all its rows (read-only)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def test_refused_statements_leave_the_store_file_untouched(tmp_path: Path):
    path = tmp_path / "real.duckdb"
    store = Store(path)
    store.upsert_categories(pd.DataFrame({"name": ["Cookware"]}))
    store.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["pan"]}), source="catalog")
    store.label("a", "Cookware", who="ana")
    store.close()
    before = _file_contents(path)
    assert before["items"] and before["label_events"]
    store = Store(path)
    try:
        for sql in ("DROP TABLE items", "DELETE FROM label_events", "SELECT 1; DROP TABLE items",
                    f"ATTACH '{path}' AS again", f"COPY items TO '{tmp_path / 'leak.csv'}'",
                    "UPDATE items SET title = 'hacked'"):
            with pytest.raises(SQLRefused):
                run_readonly(store, "m", sql)
        assert run_readonly(store, "m", "SELECT count(*) AS n FROM items").frame["n"].tolist() == [1]
    finally:
        store.close()
    assert not (tmp_path / "leak.csv").exists()
    assert _file_contents(path) == before


# -- hardening (issue 12) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('temp_directory') AS t",
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM duckdb_settings",
        "SELECT * FROM glob('./.tmp/*')",
        "SELECT * FROM read_csv('./.tmp/x.csv')",
        "SELECT version() AS v",
        "SELECT (SELECT value FROM duckdb_settings() WHERE name = 'temp_directory') AS v",
    ],
)
def test_settings_paths_and_files_are_not_disclosed(seeded, sql):
    with pytest.raises(SQLRefused, match="not available here|can be read, not"):
        run_readonly(seeded, "m", sql)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d",
        "WITH d AS (INSERT INTO categories VALUES ('x', NULL, NULL) RETURNING *) SELECT * FROM d",
        "WITH d AS (UPDATE items SET title = 'x' RETURNING *) SELECT count(*) FROM d",
    ],
)
def test_writes_wrapped_in_a_cte_are_refused(seeded, sql):
    with pytest.raises(SQLRefused, match="only reading is allowed"):
        run_readonly(seeded, "m", sql)


def test_a_result_is_cut_at_the_byte_limit_without_building_it_whole(seeded):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_readonly(seeded, "m", "SELECT repeat('x', 100000) AS s FROM range(1001)", max_bytes=1_000_000)
    assert result.truncated and result.truncated_by == "bytes"
    assert 1 <= len(result.frame) <= 10 and result.frame["s"].str.len().max() == 100_000
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200  # MB in this process


def test_a_query_building_gigabytes_is_stopped_in_the_worker(seeded):
    """The attack: 1,001 strings of 3 MB (3 GB) used to reach the page; the worker's limits stop it."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = __import__("time").perf_counter()
    try:
        result = run_readonly(seeded, "m", "SELECT repeat('x', 3000000) AS s FROM range(1001)")
        assert result.truncated_by == "bytes" and len(result.frame) <= 2
    except SQLRefused as exc:
        assert "memory" in str(exc)
    assert __import__("time").perf_counter() - started < 20
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200
