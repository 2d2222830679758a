"""The SQL box's worker process: runs one analyst query over snapshot tables, within limits.

Started by :func:`coldrec.sqlbox.run_readonly` as a script (``python sqlbox_worker.py FOLDER``), so
it imports only duckdb and pyarrow. ``FOLDER`` holds ``request.json`` and one Arrow IPC file per
view; the worker writes ``result.arrow`` and prints one JSON status line. Before the query runs,
the address space it may add is capped (``RLIMIT_AS``), so a query that builds gigabytes of
strings fails here, not in the server.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
from pathlib import Path


def main(folder: str) -> int:
    """Run the request in ``folder``; print ``{"ok": ..., ...}``; exit 0 (also for refusals)."""
    request = json.loads((Path(folder) / "request.json").read_text())
    try:
        status = _run(Path(folder), request)
    except MemoryError:
        status = {"ok": False, "error": "the query needs more memory than the SQL box allows"}
    except Exception as exc:
        if "Out of Memory" in str(exc):  # DuckDB's Arrow export hitting the address-space cap (an OSError)
            status = {"ok": False, "error": "the query needs more memory than the SQL box allows"}
        else:  # reported to the parent, which treats it as a bug (not a refusal)
            status = {"ok": False, "bug": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(status), flush=True)
    return 0


def _run(folder: Path, request: dict) -> dict:
    import duckdb
    import pyarrow as pa
    import pyarrow.ipc

    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "temp_directory": "",  # nothing spills to disk, and no directory is readable as "temp"
            "max_temp_directory_size": "0B",
            "memory_limit": request["memory_limit"],
            "threads": 1,
        },
    )
    hard_stop = None
    try:
        for name in request["views"]:
            with pa.ipc.open_file(folder / f"{name}.arrow") as reader:
                table = reader.read_all()
            con.register("snapshot", table)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM snapshot')
            con.unregister("snapshot")
        con.execute("SET python_enable_replacements = false")  # Python objects are not tables
        con.execute("SET disabled_filesystems = 'LocalFileSystem'")  # no file at all, not even temp
        con.execute("SET lock_configuration = true")  # from here no statement can undo the above
        _cap_address_space(int(request["query_address_space_bytes"]))
        timeout = float(request["timeout_s"])
        timer = threading.Timer(timeout, con.interrupt)
        timer.daemon = True
        # A function that never checks for interrupts (lpad of 2e9 characters, a long levenshtein)
        # outlives con.interrupt(): a second after the deadline the worker reports and exits.
        hard_stop = threading.Timer(timeout + HARD_STOP_GRACE_S, _hard_stop, [request])
        hard_stop.daemon = True
        timer.start()
        hard_stop.start()
        try:
            refused = _refused_by_plan(con, request["sql"], request["views"])
            if refused:
                return {"ok": False, "error": refused}
            # A relation streams (a DB-API result would be materialised whole before the first batch).
            reader = con.sql(request["sql"]).to_arrow_reader(256)
            batches, rows, size = [], 0, 0
            row_limit, max_bytes = int(request["row_limit"]), int(request["max_bytes"])
            truncated = None
            for batch in reader:
                if rows + batch.num_rows > row_limit:
                    batch = batch.slice(0, row_limit - rows)
                    truncated = "rows"
                if size + batch.nbytes > max_bytes:  # Arrow size first: it bounds the printing below
                    batch = batch.slice(0, _rows_within(batch, max_bytes - size))
                    truncated = "bytes"
                # What is shown or printed (JSON, CSV) can be many times the Arrow size: 5 M booleans
                # are 625 KB of bits and 30 MB of text; a NUL is one byte and six as JSON.
                printed = _printed_sizes(batch)
                keep = _within(printed, max_bytes - size)
                if keep < batch.num_rows:
                    batch = batch.slice(0, keep)
                    truncated = "bytes"
                batches.append(batch)
                rows += batch.num_rows
                size += sum(printed[:keep])
                if truncated:
                    break
            schema = reader.schema
        finally:
            timer.cancel()
        with pa.ipc.new_file(folder / "result.arrow", schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return {"ok": True, "truncated": truncated, "rows": rows, "bytes": size}
    except duckdb.InterruptException:
        return {"ok": False, "error": f"the query took longer than {request['timeout_s']:g} s and was stopped"}
    except duckdb.OutOfMemoryException:
        return {"ok": False, "error": f"the query needs more than the SQL box's {request['memory_limit']} of memory"}
    except duckdb.Error as exc:
        text = str(exc).strip()
        return {"ok": False, "error": text.splitlines()[0] if text else type(exc).__name__}
    finally:
        if hard_stop is not None:
            hard_stop.cancel()
        con.close()


#: Seconds after the deadline at which the worker gives up on DuckDB and exits.
HARD_STOP_GRACE_S = 1.0
#: Plan operators that read a table function, and the functions that may be read.
_ALLOWED_FUNCTIONS = {"RANGE", "GENERATE_SERIES", "UNNEST"}


def _hard_stop(request: dict) -> None:
    import os

    print(json.dumps({"ok": False, "error": f"the query took longer than {request['timeout_s']:g} s and was stopped"}),
          flush=True)
    os._exit(0)


def _refused_by_plan(con: object, sql: str, views: list[str]) -> str | None:
    """Why the bound query may not run, from its physical plan (``None`` when it may): it may scan
    the snapshot tables and the generator functions only. The plan is what DuckDB will read after
    resolving every name by scope, so a CTE named like a system view cannot hide the real one."""
    text = con.execute("EXPLAIN (FORMAT JSON) " + sql).fetchall()  # type: ignore[attr-defined]
    allowed = {v.lower() for v in views} | {f"memory.main.{v.lower()}" for v in views}
    pending = [json.loads(row[1]) for row in text]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        info = node.get("extra_info") or {}
        name = str(node.get("name", "")).upper()
        if isinstance(info, dict):
            table = info.get("Table")
            function = info.get("Function")
            if table is not None and str(table).lower() not in allowed:
                return f"only the views {', '.join(views)} (and your own WITH names) can be read, not {table!r}"
            if function is not None and str(function).upper() not in _ALLOWED_FUNCTIONS:
                return f"table function {str(function).lower()!r} is not available here"
        if name.startswith(("DUCKDB_", "PRAGMA_", "PG_", "READ_", "GLOB", "SQLITE", "PARQUET", "ARROW")):
            return f"{name.lower()} is not available here"
        pending.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return None


def _printed_sizes(batch: object) -> list[int]:
    """Bytes each row takes at most when printed as JSON or CSV (control characters escaped, lists
    spelt out), computed on the Arrow data: 5 M booleans are counted without making 5 M objects."""
    import pyarrow as pa

    total = pa.repeat(pa.scalar(1, pa.int64()), batch.num_rows)  # type: ignore[attr-defined]
    for column in batch.columns:  # type: ignore[attr-defined]
        total = pa.compute.add(total, _value_sizes(column))
    return total.to_pylist()


_FIXED_WIDTH = {"bool": 6, "int": 21, "uint": 21, "float": 26, "double": 26, "halffloat": 26, "decimal": 80,
                "date": 14, "time": 20, "timestamp": 40, "duration": 24, "interval": 60, "null": 5}


def _value_sizes(column: object) -> object:
    """An int64 array: the printed bytes of each value of ``column`` (an upper bound)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type  # type: ignore[attr-defined]
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(kind):
        return pc.take(_value_sizes(column.dictionary), column.indices).fill_null(5)  # type: ignore[attr-defined]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind):
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return pc.add(pc.multiply(pc.binary_length(column).cast(pa.int64()), 4), 3).fill_null(5)
        escaped = pc.count_substring_regex(column, r"[\x00-\x1f\"\\\x7f]").cast(pa.int64())
        size = pc.add(pc.add(pc.binary_length(column).cast(pa.int64()), pc.multiply(escaped, 6)), 3)
        return size.fill_null(5)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        values = column.values  # type: ignore[attr-defined]
        offsets = (pc.multiply(pa.array(range(len(column) + 1), pa.int64()), kind.list_size)
                   if pa.types.is_fixed_size_list(kind) else column.offsets.cast(pa.int64()))  # type: ignore[attr-defined]
        if pa.types.is_fixed_size_list(kind):
            offsets = pc.add(offsets, column.offset * kind.list_size)  # type: ignore[attr-defined]
        child = _value_sizes(values).cast(pa.int64())
        running = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(child)]) if len(child) else \
            pa.array([0] * (int(offsets[-1].as_py() or 0) + 1), pa.int64())
        start = pc.take(running, offsets.slice(0, len(column)))
        end = pc.take(running, offsets.slice(1, len(column)))
        counts = pc.subtract(offsets.slice(1, len(column)), offsets.slice(0, len(column)))
        return pc.add(pc.add(pc.subtract(end, start), pc.multiply(counts, 2)), 2).fill_null(5)
    if pa.types.is_struct(kind):
        size = pa.repeat(pa.scalar(2, pa.int64()), len(column))
        for position in range(kind.num_fields):
            field_size = _value_sizes(column.field(position))  # type: ignore[attr-defined]
            size = pc.add(size, pc.add(field_size, len(kind.field(position).name) + 6))
        return size
    if pa.types.is_map(kind):
        return _value_sizes(pa.ListArray.from_arrays(column.offsets, pa.StructArray.from_arrays(  # type: ignore[attr-defined]
            [column.keys, column.items], ["key", "value"])))  # type: ignore[attr-defined]
    for prefix, width in _FIXED_WIDTH.items():
        if str(kind).startswith(prefix):
            return pa.repeat(pa.scalar(width, pa.int64()), len(column))
    # Anything else (unions, extension types): measured in Python (its Arrow size is capped already).
    return pa.array([len(json.dumps(v, default=str, ensure_ascii=False).encode("utf-8", "replace")) + 3
                     for v in column.to_pylist()], pa.int64())  # type: ignore[attr-defined]


def _within(sizes: list[int], budget: int) -> int:
    """How many leading rows fit in ``budget`` bytes."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > budget:
            return count
    return len(sizes)


def _cap_address_space(extra: int) -> None:
    """Let the query add at most ``extra`` bytes of address space to what the process has mapped now
    (the libraries reserve one to two GB of address space they never touch, so a fixed cap would be
    about them, not about the query)."""
    with open("/proc/self/status") as status:  # noqa: PTH123 - the process's own size, not a user path
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = size_kb * 1024 + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _rows_within(batch: object, budget: int) -> int:
    """The most leading rows of ``batch`` whose Arrow size stays within ``budget`` bytes."""
    low, high = 0, batch.num_rows  # type: ignore[attr-defined]
    while low < high:
        mid = (low + high + 1) // 2
        if batch.slice(0, mid).nbytes <= budget:  # type: ignore[attr-defined]
            low = mid
        else:
            high = mid - 1
    return low


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
