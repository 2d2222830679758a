"""Read-only SQL for analysts over snapshots of the views items, labels, predictions, categories.

Defence in depth: exactly one SELECT statement is accepted (checked by DuckDB's own parser);
it runs not on the store's connection but on a fresh in-memory database that holds copies of
the four views, with file system and extension access switched off and the configuration
locked before the query; at most ``row_limit`` rows are fetched; a timer interrupts it after
``timeout_s``. Every refusal or error reaches the caller as :class:`SQLRefused`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import duckdb
import pandas as pd

from .errors import QueryError
from .store import Store

VIEWS = ("items", "labels", "predictions", "categories")

#: What each view holds (trusted SQL on the store; ``?`` is the model).
_SNAPSHOTS = {
    "items": "SELECT item_id, title, description, brand, price, source, batch, added_at FROM items",
    "labels": "SELECT item_id, category, who, source, labelled_at FROM labels",
    "predictions": """SELECT item_id, category, probability, unsure, top3::VARCHAR AS top3, predicted_at
                      FROM predictions WHERE model = ?""",
    "categories": "SELECT name, description, path FROM categories",
}
#: Memory the analyst's query may use (a runaway sort or join fails instead of starving the app).
_MEMORY_LIMIT = "1GB"


#: The query was not run or did not finish (kept as a name for :class:`QueryError`).
SQLRefused = QueryError


@dataclass
class SQLResult:
    """Rows of an analyst's query: at most the row limit; ``truncated`` when there were more."""

    frame: pd.DataFrame
    truncated: bool
    elapsed_s: float


def run_readonly(store: Store, model: str, sql: str, row_limit: int = 1000, timeout_s: float = 5.0) -> SQLResult:
    """Run one SELECT over the views (:data:`VIEWS`, predictions of ``model`` only).

    Raises :class:`SQLRefused` for anything else (several statements, writes, settings, file,
    extension or database access), for DuckDB errors (with DuckDB's first line), and when the
    query runs longer than ``timeout_s`` seconds.
    """
    _check_statement(sql)
    con = _sandbox(store, model)
    timer = threading.Timer(timeout_s, _interrupt, [con])
    timer.daemon = True
    started = time.perf_counter()
    try:
        timer.start()
        result = con.execute(sql)
        # Results stream: fetching one row past the limit tells whether there were more.
        rows = result.fetchmany(row_limit + 1)
        columns = [d[0] for d in result.description or []]
    except duckdb.InterruptException as exc:
        raise SQLRefused(f"the query took longer than {timeout_s:g} s and was stopped") from exc
    except duckdb.Error as exc:
        raise SQLRefused(_first_line(exc)) from exc
    finally:
        timer.cancel()
        con.close()
    elapsed = time.perf_counter() - started
    truncated = len(rows) > row_limit
    frame = pd.DataFrame.from_records(rows[:row_limit], columns=columns)
    return SQLResult(frame=frame, truncated=truncated, elapsed_s=elapsed)


def _check_statement(sql: str) -> None:
    """Accept exactly one statement, of type SELECT, as DuckDB's parser sees it."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SQLRefused(_first_line(exc)) from exc
    if not statements:
        raise SQLRefused("write a SELECT query")
    if len(statements) > 1:
        raise SQLRefused("write one statement only (a single SELECT)")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SQLRefused(f"only SELECT queries over {', '.join(VIEWS)} may run here, not {kind.name}")


def _sandbox(store: Store, model: str) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory database with copies of the views, external access off and settings locked."""
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )
    try:
        for name, query in _SNAPSHOTS.items():
            snapshot = store.query_df(query, [model] if "?" in query else None)
            con.register("snapshot", snapshot)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM snapshot")
            con.unregister("snapshot")
        con.execute(f"SET memory_limit = '{_MEMORY_LIMIT}'")
        # Python objects in scope must not be readable as tables by name.
        con.execute("SET python_enable_replacements = false")
        # From here on no statement can turn access back on.
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _interrupt(con: duckdb.DuckDBPyConnection) -> None:
    """Stop the running query (a no-op when the connection already finished and closed)."""
    try:
        con.interrupt()
    except duckdb.Error:
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
