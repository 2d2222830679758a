"""Read-only SQL for analysts over snapshots of the views items, labels, predictions, categories.

Defence in depth:

1. The text must be exactly one SELECT as DuckDB's own parser sees it, and its syntax tree
   (``json_serialize_sql``) may hold only SELECT query nodes (no ``DELETE/INSERT/UPDATE …
   RETURNING`` inside a CTE), read only the four views or its own CTEs, call no table function
   but ``range``/``generate_series``/``unnest``, and no settings, catalog or SQL-running function.
2. It runs in a separate worker process (:mod:`coldrec.sqlbox_worker`) where the query may add
   at most 1 GiB of address space, on a fresh in-memory database holding copies of the views, with external access, every
   local file (temp directory included) and extensions switched off and the configuration locked;
   DuckDB's own memory limit applies inside, and nothing spills to disk.
3. At most ``row_limit`` rows and ``max_bytes`` bytes come back; the worker interrupts the query
   after ``timeout_s`` and is killed if it does not stop.

Every refusal or error reaches the caller as :class:`QueryError` (also named ``SQLRefused``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.ipc

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
#: DuckDB's memory limit inside the worker (a runaway sort or join fails instead of starving the app).
MEMORY_LIMIT = "256MB"
#: Address space the query may add in the worker: DuckDB's limit does not cover every string it
#: builds, this does.
QUERY_ADDRESS_SPACE_BYTES = 1024**3
#: The most result bytes (Arrow size) sent back to a page or the terminal.
MAX_RESULT_BYTES = 5 * 1024**2
#: Table functions a query may call: generators over values, nothing that reads or lists anything.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
#: Scalar functions refused: they disclose settings or paths, or run SQL given as text.
_REFUSED_FUNCTIONS = frozenset(
    {"current_setting", "getenv", "json_serialize_sql", "json_deserialize_sql", "json_execute_serialized_sql",
     "json_serialize_plan", "query", "query_table", "which_secret", "current_database", "current_catalog",
     "current_schema", "current_schemas", "version", "platform", "pragma_version"}
)
_REFUSED_PREFIXES = ("duckdb_", "pragma_", "pg_")
#: Query nodes of a read-only query (anything else, e.g. DELETE_QUERY_NODE, is a write).
_READ_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
_WORKER = Path(__file__).resolve().parent / "sqlbox_worker.py"

#: The query was not run or did not finish (kept as a name for :class:`QueryError`).
SQLRefused = QueryError


@dataclass
class SQLResult:
    """Rows of an analyst's query: at most the row and byte limits; ``truncated`` when there were more."""

    frame: pd.DataFrame
    truncated: bool
    elapsed_s: float
    #: Why it was cut: ``"rows"`` or ``"bytes"`` (``None`` when complete).
    truncated_by: str | None = None


def result_summary(result: SQLResult, row_limit: int = 1000, max_bytes: int = MAX_RESULT_BYTES) -> str:
    """What the SQL box says under a result: its rows, and when it was cut, which limit cut it
    ("the result is larger than the 5 MB limit: the first 12 rows are shown"; with no row
    shown, that even its first row is too large)."""
    rows = len(result.frame)
    shown = f"{rows:,} row{'s' if rows != 1 else ''} in {result.elapsed_s:.2f} s"
    limit_mb = f"{max_bytes / 1024**2:g} MB"
    if result.truncated_by == "bytes":
        if rows == 0:
            return (f"The result is too large to show: even its first row is over the {limit_mb} limit on a "
                    "result. Select fewer or shorter columns (e.g. left(description, 200)) or add a LIMIT.")
        return (f"The result is larger than the {limit_mb} limit on a result: only its first {shown} are shown. "
                "Select fewer or shorter columns, or fewer rows.")
    if result.truncated_by == "rows":
        return f"{shown}: the result has more rows than the {row_limit:,}-row limit (only the first {row_limit:,} are shown)."
    return shown


def run_readonly(
    store: Store,
    model: str,
    sql: str,
    row_limit: int = 1000,
    timeout_s: float = 5.0,
    max_bytes: int = MAX_RESULT_BYTES,
) -> SQLResult:
    """Run one SELECT over the views (:data:`VIEWS`, predictions of ``model`` only).

    Raises :class:`SQLRefused` for anything else (several statements, writes, settings, file,
    extension or database access), for DuckDB errors (with DuckDB's first line), when the query
    needs more memory than the box allows, and when it runs longer than ``timeout_s`` seconds.
    """
    check_statement(sql)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coldrec-sql-") as folder:
        for name, query in _SNAPSHOTS.items():
            table = pa.Table.from_pandas(store.query_df(query, [model] if "?" in query else None), preserve_index=False)
            with pa.ipc.new_file(Path(folder) / f"{name}.arrow", table.schema) as writer:
                writer.write_table(table)
        request = {
            "sql": sql, "views": list(_SNAPSHOTS), "row_limit": int(row_limit), "max_bytes": int(max_bytes),
            "timeout_s": float(timeout_s), "memory_limit": MEMORY_LIMIT,
            "query_address_space_bytes": QUERY_ADDRESS_SPACE_BYTES,
        }
        (Path(folder) / "request.json").write_text(json.dumps(request))
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(_WORKER), folder],
                capture_output=True, text=True, timeout=timeout_s + 30, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SQLRefused(f"the query took longer than {timeout_s:g} s and was stopped") from exc
        status = _status(done)
        if status.get("bug"):
            raise RuntimeError(f"the SQL worker failed: {status['bug']}")
        if not status.get("ok"):
            raise SQLRefused(str(status.get("error") or "the query failed"))
        with pa.ipc.open_file(Path(folder) / "result.arrow") as reader:
            frame = reader.read_all().to_pandas()
    return SQLResult(
        frame=frame, truncated=status["truncated"] is not None, elapsed_s=time.perf_counter() - started,
        truncated_by=status["truncated"],
    )


def _status(done: subprocess.CompletedProcess) -> dict:
    """The worker's status line; a worker that died (out of address space, killed) is a refusal."""
    lines = [line for line in (done.stdout or "").splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    stderr = done.stderr or ""
    # Killed by a signal, or aborted by an allocation that the address-space cap refused.
    if done.returncode < 0 or any(mark in stderr for mark in ("bad_alloc", "MemoryError", "Out of Memory")):
        return {"ok": False, "error": "the query needs more memory than the SQL box allows and was stopped"}
    tail = stderr.strip().splitlines()
    raise RuntimeError(f"the SQL worker failed (exit {done.returncode}): {tail[-1] if tail else 'no output'}")


def check_statement(sql: str) -> None:
    """Accept exactly one read-only SELECT over the views; raise :class:`SQLRefused` naming the reason."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SQLRefused(_first_line(exc)) from exc
    if not statements:
        raise SQLRefused("write a SELECT query")
    if len(statements) > 1:
        raise SQLRefused("write one statement only (a single SELECT)")
    try:
        kind = statements[0].type
    except ValueError:  # a statement type the Python enum does not know (e.g. UPDATE EXTENSIONS)
        raise SQLRefused(f"only SELECT queries over {', '.join(VIEWS)} may run here") from None
    if kind != duckdb.StatementType.SELECT:
        raise SQLRefused(f"only SELECT queries over {', '.join(VIEWS)} may run here, not {kind.name}")
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        serialised = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()[0]
    except duckdb.Error as exc:
        raise SQLRefused(_first_line(exc)) from exc
    finally:
        con.close()
    try:
        tree = json.loads(serialised)
        if tree.get("error"):
            raise SQLRefused(str(tree.get("error_message") or "the query could not be read"))
        ctes: set[str] = set()
        _collect_ctes(tree, ctes)
        # A first check on the syntax; the worker checks the bound plan too (names resolved by scope).
        _check_node(tree, ctes | set(VIEWS))
    except RecursionError:
        raise SQLRefused("the query is nested too deeply; write it with WITH clauses instead") from None


def _collect_ctes(node: object, names: set[str]) -> None:
    if isinstance(node, dict):
        for entry in (node.get("cte_map") or {}).get("map", []) if isinstance(node.get("cte_map"), dict) else []:
            names.add(str(entry.get("key", "")).lower())
        for value in node.values():
            _collect_ctes(value, names)
    elif isinstance(node, list):
        for value in node:
            _collect_ctes(value, names)


def _check_node(node: object, tables: set[str]) -> None:
    """Walk the syntax tree refusing writes, other tables, table functions and refused functions."""
    if isinstance(node, list):
        for value in node:
            _check_node(value, tables)
        return
    if not isinstance(node, dict):
        return
    kind = str(node.get("type", ""))
    if kind.endswith("_NODE") and kind not in _READ_NODES:
        raise SQLRefused(f"only reading is allowed here ({kind.removesuffix('_QUERY_NODE').lower()} found)")
    if kind == "BASE_TABLE":
        name = str(node.get("table_name", "")).lower()
        schema = str(node.get("schema_name", "") or node.get("catalog_name", "")).lower()
        if schema or name not in tables:
            raise SQLRefused(f"only the views {', '.join(VIEWS)} (and your own WITH names) can be read, not {name!r}")
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower() if isinstance(function, dict) else ""
        if name not in ALLOWED_TABLE_FUNCTIONS:
            raise SQLRefused(f"table function {name!r} is not available here (only {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
    if node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in _REFUSED_FUNCTIONS or name.startswith(_REFUSED_PREFIXES):
            raise SQLRefused(f"function {name}() is not available here")
    for value in node.values():
        _check_node(value, tables)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
