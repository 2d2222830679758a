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
        timer.start()
        try:
            # A relation streams (a DB-API result would be materialised whole before the first batch).
            reader = con.sql(request["sql"]).to_arrow_reader(256)
            batches, rows, size = [], 0, 0
            row_limit, max_bytes = int(request["row_limit"]), int(request["max_bytes"])
            truncated = None
            for batch in reader:
                if rows + batch.num_rows > row_limit:
                    batch = batch.slice(0, row_limit - rows)
                    truncated = "rows"
                if size + batch.nbytes > max_bytes:
                    batch = batch.slice(0, _rows_within(batch, max_bytes - size))
                    truncated = "bytes"
                batches.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
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
        con.close()


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
