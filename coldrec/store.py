"""The DuckDB database: items, categories, label history, embeddings, predictions, interactions.

One file per installation. DuckDB lets one process open a file for writing; inside that
process every thread gets its own cursor, and every query's result is fetched fully
before the cursor is used again (DuckDB 2 streams results).
Labels are an append-only event log; the current label of an item is its latest event.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import (
    DataImportError, DiskFullError, LabelConflict, StoreError, StoreLockedError, disk_full_message, is_disk_full,
)
from .ingest import clean_text

SCHEMA_VERSION = 4
#: The largest order number the ``interactions`` table holds (a 32-bit INTEGER).
MAX_ORDER_NUMBER = 2**31 - 1

#: Where a label came from.
#: manual: typed or picked by a person; accepted: a person accepted the model's suggestion;
#: import: from a file; propagated: copied to look-alikes in one action; undo: an undone action.
LABEL_SOURCES = ("manual", "accepted", "import", "propagated", "undo", "rename", "merge")
ITEM_SOURCES = ("catalog", "upload")

#: Statements that may change what a version counter reads (conservative: a false match only
#: costs a re-read).
_WRITE_SQL = re.compile(r"\b(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|COPY|IMPORT|TRUNCATE|MERGE)\b", re.IGNORECASE)
#: Writes so far in this process per database file, over every :class:`Store` of it. DuckDB lets one
#: process write a file, and none can while this one holds it, so this count tells when a cached
#: version counter (labels, items, settings, categories) is stale.
_WRITES: dict[str, int] = {}
_WRITES_LOCK = threading.Lock()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS items (
    item_id VARCHAR PRIMARY KEY,
    title VARCHAR NOT NULL,
    description VARCHAR,
    brand VARCHAR,
    price DOUBLE,
    attributes JSON,
    source VARCHAR NOT NULL,
    batch VARCHAR,
    added_at TIMESTAMP NOT NULL,
    position INTEGER,           -- row of the item in the file it came from
    updated_at TIMESTAMP        -- last time its text, brand or price changed (caches key on it)
);
ALTER TABLE items ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP;
UPDATE items SET updated_at = added_at WHERE updated_at IS NULL;
CREATE TABLE IF NOT EXISTS categories (
    name VARCHAR PRIMARY KEY,
    description VARCHAR,
    path VARCHAR,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS category_targets (
    name VARCHAR PRIMARY KEY,    -- a category
    target_precision DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS projections (
    key VARCHAR NOT NULL,        -- model, method and item set (see coldrec.projection)
    item_id VARCHAR NOT NULL,
    x DOUBLE NOT NULL,
    y DOUBLE NOT NULL,
    PRIMARY KEY (key, item_id)
);
CREATE SEQUENCE IF NOT EXISTS label_event_id;
CREATE TABLE IF NOT EXISTS label_events (
    event_id BIGINT PRIMARY KEY DEFAULT nextval('label_event_id'),
    item_id VARCHAR NOT NULL,
    category VARCHAR,            -- NULL removes the item's label
    who VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    labelled_at TIMESTAMP NOT NULL,
    action_id BIGINT             -- events written by one user action share it (undo reverts them together)
);
ALTER TABLE label_events ADD COLUMN IF NOT EXISTS action_id BIGINT;
CREATE TABLE IF NOT EXISTS undone_actions (action_id BIGINT PRIMARY KEY, undone_at TIMESTAMP NOT NULL);
CREATE SEQUENCE IF NOT EXISTS label_action_id;
CREATE OR REPLACE VIEW labels AS
    SELECT item_id, category, who, source, labelled_at FROM (
        SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY event_id DESC) AS rn FROM label_events
    ) WHERE rn = 1 AND category IS NOT NULL;
CREATE TABLE IF NOT EXISTS embeddings (
    model VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    vector FLOAT[] NOT NULL,
    PRIMARY KEY (model, text_hash)
);
CREATE TABLE IF NOT EXISTS predictions (
    item_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    unsure BOOLEAN NOT NULL,
    top3 JSON NOT NULL,
    predicted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (item_id, model)
);
CREATE TABLE IF NOT EXISTS interactions (
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    ts TIMESTAMP,
    order_number INTEGER,
    quantity DOUBLE
);
-- Schema 4 (issue 24): who may do what, what was done besides labelling, who is looking at which card.
CREATE TABLE IF NOT EXISTS roles (
    email VARCHAR PRIMARY KEY,   -- lower case
    role VARCHAR NOT NULL,       -- viewer, labeller or admin (coldrec.access.ROLES)
    granted_by VARCHAR NOT NULL,
    granted_at TIMESTAMP NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS audit_event_id;
CREATE TABLE IF NOT EXISTS audit_events (  -- every write but labels (those are label_events)
    event_id BIGINT PRIMARY KEY DEFAULT nextval('audit_event_id'),
    done_at TIMESTAMP NOT NULL,
    who VARCHAR NOT NULL,
    action VARCHAR NOT NULL,     -- import, category, model, target, role
    subject VARCHAR,             -- what it acted on (a file, a category, a model, an email)
    before VARCHAR,
    after VARCHAR
);
CREATE TABLE IF NOT EXISTS claims (  -- the card a labeller is looking at, for a short while
    item_id VARCHAR PRIMARY KEY,
    who VARCHAR NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
"""




#: No extension is loaded or installed behind coldrec's back (a SQLite file would make DuckDB
#: fetch its sqlite extension).
_CONNECT_CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
#: Every table and view coldrec creates (read from the schema, so a new table joins by itself); a
#: file holding anything else belongs to someone else.
_OWN_TABLES = frozenset(
    name.lower() for name in re.findall(r"CREATE (?:TABLE IF NOT EXISTS|OR REPLACE VIEW) (\w+)", _SCHEMA)
)


def _check_foreign(file: Path) -> None:
    """Refuse an existing file that is not a coldrec database (a SQLite file, another application's
    DuckDB database, a damaged one) without writing to it: it is probed read-only first."""
    with open(file, "rb") as handle:  # noqa: PTH123 - the configured database file itself
        header = handle.read(16)
    if header.startswith(b"SQLite format 3"):
        raise StoreError(f"{file} is a SQLite database, not a coldrec (DuckDB) one; set COLDREC_DB to another file")
    if header[8:12] != b"DUCK":
        raise StoreError(
            f"cannot open the database {file}: it is damaged or not a DuckDB file; restore a backup, or set "
            "COLDREC_DB to a new file (coldrec did not change it)"
        )
    try:
        con = duckdb.connect(str(file), read_only=True, config=_CONNECT_CONFIG)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"the database {file} is in use by another coldrec process "
                "(a dashboard or a CLI command). Stop it, or set COLDREC_DB to another file."
            ) from exc
        raise StoreError(
            f"cannot open the database {file}: it is damaged or not a DuckDB file ({_first_line(exc)}); "
            "restore a backup, or set COLDREC_DB to a new file (coldrec did not change it)"
        ) from exc
    except duckdb.Error as exc:
        raise StoreError(
            f"cannot open the database {file}: it is damaged or not a DuckDB file ({_first_line(exc)}); "
            "restore a backup, or set COLDREC_DB to a new file (coldrec did not change it)"
        ) from exc
    try:
        tables = {
            str(name).lower(): str(schema)
            for name, schema in con.execute(
                "SELECT table_name, table_schema FROM information_schema.tables WHERE table_catalog = current_database()"
            ).fetchall()
        }
        meta_columns = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'meta' ORDER BY ordinal_position"
        ).fetchall()]
    finally:
        con.close()
    foreign = sorted(n for n, schema in tables.items() if n not in _OWN_TABLES or schema != "main")
    if foreign or (meta_columns and meta_columns != ["key", "value"]):
        shown = ", ".join(foreign[:5]) or "a table 'meta' of other columns"
        raise StoreError(
            f"{file} is a DuckDB database of another application (it holds {shown}); coldrec did not change it. "
            "Set COLDREC_DB to a new file"
        )


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def category_name(value: object) -> str:
    """A category name as stored: NFC, control and zero-width characters removed, spaces collapsed.
    Every way in (typed, imported, taxonomy, labels) goes through this, so round trips match."""
    return clean_text(value, 1_000)


class Store:
    """A coldrec database. ``Store(path)`` creates the file and schema if missing.

    Use ``":memory:"`` for a throwaway database. A file this process may not write is opened
    read-only (everything can be viewed; writes raise :class:`StoreError` saying so), as is any
    file with ``read_only=True``. A ``Store`` is a context manager that closes on exit.
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = str(path)
        # Cursors are pooled, not kept per thread: Streamlit runs each rerun on a new thread, so
        # per-thread cursors piled up for the life of the server (one per rerun ever served).
        self._cursors: list[duckdb.DuckDBPyConnection] = []  # every cursor opened, closed with the store
        self._idle: list[duckdb.DuckDBPyConnection] = []  # those not in use now
        # The version counters every rerun asks for many times (cache keys): read once per write.
        self._writes_key = str(Path(self.path).resolve()) if self.path != ":memory:" else f":memory:{id(self)}"
        self._readings: dict[object, tuple[int, object]] = {}
        self._cursors_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        if self.path != ":memory:":
            file = Path(self.path)
            if not file.parent.is_dir():
                raise StoreError(
                    f"the folder {file.parent} does not exist, so the database {self.path} cannot be created: "
                    "create the folder, or set COLDREC_DB to a file in an existing folder"
                )
            if file.is_dir():
                raise StoreError(f"the database path {self.path} is a folder; set COLDREC_DB to a file")
            # DuckDB writes the file and a .wal beside it: without both rights, open it for viewing.
            writable = os.access(file.parent, os.W_OK) and (not file.exists() or os.access(file, os.W_OK))
            read_only = read_only or (file.exists() and not writable)
            if not file.exists() and not writable:
                raise StoreError(f"cannot create the database {self.path}: the folder is not writable")
            if file.is_file() and file.stat().st_size > 0:
                _check_foreign(file)  # before DuckDB writes anything to it
        self.read_only = read_only
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=_CONNECT_CONFIG)
        except duckdb.IOException as exc:
            if is_disk_full(exc):
                raise DiskFullError(disk_full_message(self.path)) from exc
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the database {self.path} is in use by another coldrec process "
                    "(a dashboard or a CLI command). Stop it, or set COLDREC_DB to another file."
                ) from exc
            raise StoreError(f"cannot open the database {self.path}: {_first_line(exc)}") from exc
        except duckdb.Error as exc:  # a truncated or foreign file
            raise StoreError(
                f"cannot open the database {self.path}: it is damaged or not a DuckDB file ({_first_line(exc)}); "
                "restore a backup, or set COLDREC_DB to a new file"
            ) from exc
        self._write_lock = threading.Lock()
        try:
            if read_only:
                tables = {r[0] for r in self._exec("SELECT table_name FROM information_schema.tables")}
                if not {"meta", "items", "label_events"} <= tables:
                    raise StoreError(f"{self.path} is read-only and is not a coldrec database")
                columns = {r[0] for r in self._exec("SELECT column_name FROM information_schema.columns WHERE table_name = 'items'")}
                self._has_updated_at = "updated_at" in columns
            else:
                self._exec(_SCHEMA)
                self._exec("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                self._exec("UPDATE meta SET value = ? WHERE key = 'schema_version' AND TRY_CAST(value AS INTEGER) < ?",
                           [str(SCHEMA_VERSION), SCHEMA_VERSION])
                self._has_updated_at = True
        except duckdb.Error as exc:
            self.close()
            if is_disk_full(exc):
                raise DiskFullError(disk_full_message(self.path)) from exc
            raise StoreError(
                f"cannot open the database {self.path}: it is damaged or not a coldrec database "
                f"({_first_line(exc)}); restore a backup, or set COLDREC_DB to a new file"
            ) from exc
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one statement, from the pool (opened when every pooled cursor is busy)."""
        with self._cursors_lock:
            if self._con is None:
                raise StoreError(f"the database {self.path} is closed")
            if self._idle:
                cur = self._idle.pop()
            else:
                cur = self._con.cursor()
                self._cursors.append(cur)
        try:
            yield cur
        finally:
            with self._cursors_lock:
                if self._con is not None:
                    self._idle.append(cur)

    def query_df(
        self, sql: str, params: Sequence[object] | None = None, tables: dict[str, object] | None = None
    ) -> pd.DataFrame:
        """Run a read query (trusted SQL, user values only as ``params``) and return all rows.

        ``tables`` (frames or Arrow tables) are visible to the query by name.
        """
        with self._registered(tables) as cur, self._counting_writes(sql):
            try:
                return cur.execute(sql, params or []).df()
            except duckdb.Error as exc:
                if is_disk_full(exc):
                    raise DiskFullError(disk_full_message(self.path)) from exc
                raise

    def _exec(
        self, sql: str, params: Sequence[object] | None = None, tables: dict[str, object] | None = None
    ) -> list[tuple]:
        """Run ``sql`` with ``tables`` (frames or Arrow tables) visible by name; fetch every row.

        DuckDB 2 streams results: a result left unfetched blocks the cursor.
        """
        with self._registered(tables) as cur, self._counting_writes(sql):
            try:
                return cur.execute(sql, params or []).fetchall()
            except duckdb.Error as exc:
                if is_disk_full(exc):  # DuckDB rolls the transaction back: what was committed stays
                    raise DiskFullError(disk_full_message(self.path)) from exc
                if not isinstance(exc, duckdb.InvalidInputException):
                    raise
                if self.read_only and "read-only" in str(exc):
                    raise StoreError(
                        f"the database {self.path} is open read-only (this process may not write the file "
                        "or its folder), so nothing can be saved; fix its permissions and restart"
                    ) from exc
                raise

    @contextmanager
    def _counting_writes(self, sql: str) -> Iterator[None]:
        """Count ``sql`` as a write of this file once it ran (or failed: counted either way)."""
        try:
            yield
        finally:
            if _WRITE_SQL.search(sql):
                with _WRITES_LOCK:
                    _WRITES[self._writes_key] = _WRITES.get(self._writes_key, 0) + 1

    def _reading(self, key: object, read: Callable[[], object]) -> object:
        """``read()``, kept until this process next writes the file (the count is taken first, so a
        write racing the read only makes the next call read again)."""
        count = _WRITES.get(self._writes_key, 0)
        hit = self._readings.get(key)
        if hit is not None and hit[0] == count:
            return hit[1]
        value = read()
        self._readings[key] = (count, value)
        return value

    @contextmanager
    def _registered(self, tables: dict[str, object] | None) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor with ``tables`` registered by name for the duration."""
        with self._cursor() as cur:
            for name, table in (tables or {}).items():
                cur.register(name, table)
            try:
                yield cur
            finally:
                for name in tables or {}:
                    cur.unregister(name)

    def _scalar(self, sql: str, params: Sequence[object] | None = None) -> object:
        rows = self._exec(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        """Close every thread's cursor and the database (checkpoints the write-ahead log). Idempotent."""
        with self._cursors_lock:
            cursors, self._cursors, self._idle = self._cursors, [], []
        for cur in cursors:
            cur.close()
        if self._con is not None:
            self._con.close()
            self._con = None

    def get_meta(self, key: str) -> str | None:
        """A value from the meta table (``None`` when unset)."""
        value = self._reading(("meta", key), lambda: self._scalar("SELECT value FROM meta WHERE key = ?", [key]))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str, bump: bool = True) -> None:
        """Set a value in the meta table (a change bumps :meth:`settings_version` unless ``bump`` is
        false: a record of derived state, such as the fitted model's calibration, is no setting)."""
        with self._write_lock:
            if self.get_meta(key) == value:
                return
            self._exec("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
            if not bump:
                return
            self._exec(
                "INSERT OR REPLACE INTO meta VALUES ('settings_version', ?)", [str(self.settings_version() + 1)]
            )

    def settings_version(self) -> int:
        """Changes whenever a stored setting changes (for caches)."""
        return int(self.get_meta("settings_version") or 0)

    def catalog_fingerprint(self) -> tuple[object, ...]:
        """Changes whenever items are added, or their text, brand or price edited (for caches)."""
        changed = "max(updated_at)" if self._has_updated_at else "max(added_at)"
        sql = f"SELECT count(*), {changed}, count(*) FILTER (WHERE source = 'catalog') FROM items"
        return self._reading("catalog_fingerprint", lambda: tuple(self._exec(sql)[0]))  # type: ignore[return-value]

    # -- categories -------------------------------------------------------------------------
    def upsert_categories(self, frame: pd.DataFrame) -> int:
        """Add or update categories from a frame with ``name`` and optional ``description``, ``path``.

        A column the frame does not have leaves that field of existing categories as it was;
        a present but empty value clears it.
        """
        has_description, has_path = "description" in frame, "path" in frame
        blank = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        rows = pd.DataFrame(
            {
                "name": frame["name"].astype(object),
                "description": frame["description"].astype(object) if has_description else blank,
                "path": frame["path"].astype(object) if has_path else blank,
            }
        )
        rows["name"] = rows["name"].map(category_name)
        rows = rows[rows["name"] != ""].where(lambda r: pd.notna(r), None)
        # A name differing from a stored one only in case is that category ("cookware" updates "Cookware").
        existing = {n.casefold(): n for n in self.category_names()}
        rows["name"] = rows["name"].map(lambda n: existing.get(n.casefold(), n))
        rows = rows.drop_duplicates("name", keep="last")
        rows["description"] = rows["description"].map(lambda v: v if isinstance(v, str) and v.strip() else None)
        rows["path"] = rows["path"].map(lambda v: v if isinstance(v, str) and v.strip() else None)
        rows["created_at"] = _now()
        description = "excluded.description" if has_description else "categories.description"
        path = "excluded.path" if has_path else "categories.path"
        with self._write_lock:
            self._exec(
                f"""INSERT INTO categories SELECT name, description, path, created_at FROM rows
                    ON CONFLICT (name) DO UPDATE SET description = {description}, path = {path}""",
                tables={"rows": rows},
            )
        return len(rows)

    def rename_category(self, old: str, new: str, who: str) -> int:
        """Rename category ``old`` to ``new`` (validated by the caller), in one transaction: its row
        (the path's last step too), the paths of categories below it, its target, the stored
        predictions, and its items' labels (new label events, source ``rename``). Returns how many
        labels moved. The label events carry no action id: a rename is undone by renaming back."""
        return self._recategorise([old], new, who, "rename")

    def merge_categories(self, sources: Sequence[str], into: str, who: str) -> int:
        """Merge the categories ``sources`` into the existing category ``into``, in one transaction:
        their items are labelled ``into`` (label events, source ``merge``), stored predictions follow,
        their rows and targets are deleted, and categories below them move under ``into``. Returns
        how many labels moved."""
        return self._recategorise(list(sources), into, who, "merge")

    def _recategorise(self, sources: list[str], target: str, who: str, source: str) -> int:
        known = {n: True for n in self.category_names()}
        missing = [n for n in sources + ([target] if source == "merge" else []) if n not in known]
        if missing:
            raise StoreError("unknown category(ies): " + ", ".join(repr(n) for n in missing[:5]))
        who = (who or "").strip() or "local"
        cats = self.categories().set_index("name")
        with self._write_lock, self._cursor() as cur, self._counting_writes("UPDATE"):
            cur.execute("BEGIN TRANSACTION")
            try:
                moved = cur.execute(
                    "SELECT count(*) FROM labels WHERE category IN (SELECT unnest(?::VARCHAR[]))", [sources]
                ).fetchone()[0]
                cur.execute(
                    """INSERT INTO label_events (item_id, category, who, source, labelled_at)
                       SELECT item_id, ?, ?, ?, ? FROM labels WHERE category IN (SELECT unnest(?::VARCHAR[]))""",
                    [target, who, source, _now(), sources],
                )
                cur.execute("UPDATE predictions SET category = ? WHERE category IN (SELECT unnest(?::VARCHAR[]))",
                            [target, sources])
                if source == "rename":
                    old = sources[0]
                    path = cats.loc[old, "path"]
                    parents = str(path).rsplit(" > ", 1)[0] if isinstance(path, str) and " > " in path else None
                    new_path = f"{parents} > {target}" if parents else (target if isinstance(path, str) and path else None)
                    cur.execute("INSERT INTO categories SELECT ?, description, ?, created_at FROM categories WHERE name = ?",
                                [target, new_path, old])
                    cur.execute("UPDATE category_targets SET name = ? WHERE name = ?", [target, old])
                    moves = [(path, new_path)] if isinstance(path, str) and path else []
                else:
                    into_path = cats.loc[target, "path"]
                    into_path = into_path if isinstance(into_path, str) and into_path else target
                    cur.execute("DELETE FROM category_targets WHERE name IN (SELECT unnest(?::VARCHAR[]))", [sources])
                    moves = [(p, into_path) for p in cats.loc[sources, "path"] if isinstance(p, str) and p]
                cur.execute("DELETE FROM categories WHERE name IN (SELECT unnest(?::VARCHAR[]))", [sources])
                for before, after in moves:  # the categories below a moved one keep their place under it
                    cur.execute(
                        "UPDATE categories SET path = ? || substr(path, ?) WHERE starts_with(path, ?)",
                        [after, len(before) + 1, before + " > "],
                    )
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        return int(moved)

    def categories(self) -> pd.DataFrame:
        """All categories (name, description, path), by name."""
        frame = self._reading("categories", lambda: self.query_df("SELECT name, description, path FROM categories ORDER BY name"))
        return frame.copy(deep=False)  # type: ignore[attr-defined]  # a caller's new column stays its own

    def category_names(self) -> list[str]:
        """Names of all categories, sorted."""
        return self.categories()["name"].tolist()

    # -- items ------------------------------------------------------------------------------
    def upsert_items(self, frame: pd.DataFrame, source: str, batch: str | None = None) -> int:
        """Add items (``item_id``, ``title``, optional ``description``, ``brand``, ``price``).

        An existing id gets the new text and batch but keeps its original source; an upload
        may not reuse a catalog item's id (:class:`StoreError` names them; nothing is written).
        """
        if source not in ITEM_SOURCES:
            raise StoreError(f"unknown item source {source!r}")
        n = len(frame)
        col = lambda name: frame[name] if name in frame else pd.Series([None] * n, index=frame.index)  # noqa: E731
        price = pd.to_numeric(col("price"), errors="coerce")
        rows = pa.table(
            {
                "item_id": pa.array(frame["item_id"].astype(str).tolist(), pa.string()),
                "title": pa.array(frame["title"].astype(str).tolist(), pa.string()),
                "description": pa.array([_none_if_na(v) for v in col("description")], pa.string()),
                "brand": pa.array([_none_if_na(v) for v in col("brand")], pa.string()),
                "price": pa.array([None if pd.isna(v) else float(v) for v in price], pa.float64()),
                "position": pa.array(range(n), pa.int32()),
            }
        )
        with self._write_lock:
            if source == "upload":
                clash = self._exec(
                    "SELECT r.item_id FROM rows r JOIN items i USING (item_id) WHERE i.source = 'catalog' LIMIT 5",
                    tables={"rows": rows},
                )
                if clash:
                    raise StoreError(
                        "these ids belong to catalog items, so the upload would overwrite them: "
                        + ", ".join(repr(r[0]) for r in clash)
                        + "; rename them or leave the id column out"
                    )
                reused = self._exec(
                    """SELECT r.item_id, i.batch FROM rows r JOIN items i USING (item_id)
                       WHERE i.batch IS DISTINCT FROM ? AND (i.title <> r.title
                             OR i.description IS DISTINCT FROM r.description) LIMIT 5""",
                    [batch],
                    tables={"rows": rows},
                )
                if reused:
                    raise StoreError(
                        "these ids are already used by other products in earlier uploads: "
                        + ", ".join(f"{r[0]!r} (batch {r[1]!r})" for r in reused)
                        + "; give new products new ids"
                    )
            now = _now()
            self._exec(
                """INSERT INTO items (item_id, title, description, brand, price, attributes, source, batch,
                                      added_at, position, updated_at)
                   SELECT item_id, title, description, brand, price, NULL, ?, ?, ?, position, ? FROM rows
                   ON CONFLICT (item_id) DO UPDATE SET title = excluded.title,
                       description = excluded.description, brand = excluded.brand,
                       price = excluded.price, batch = excluded.batch, position = excluded.position,
                       updated_at = CASE WHEN items.title IS DISTINCT FROM excluded.title
                                           OR items.description IS DISTINCT FROM excluded.description
                                           OR items.brand IS DISTINCT FROM excluded.brand
                                           OR items.price IS DISTINCT FROM excluded.price
                                         THEN excluded.updated_at ELSE items.updated_at END""",
                [source, batch, now, now],
                tables={"rows": rows},
            )
        return n

    def sample_titles(self, n: int = 5_000) -> list[str]:
        """Up to ``n`` item titles drawn at random (the same draw for the same items): what the
        language rule reads (:mod:`coldrec.language`)."""
        frame = self.query_df(f"SELECT title FROM items USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE (20)")
        return frame["title"].astype(str).tolist()

    def items(
        self, source: str | None = None, batch: str | None = None, category: str | None = None,
        unlabelled: bool = False,
    ) -> pd.DataFrame:
        """Items with their current label (``category``, NULL when unlabelled), in the order they were
        added; optionally only one source, one upload batch, one label, or only the unlabelled ones
        (filtered in SQL: a page showing one batch does not load a million items)."""
        return self.query_df(
            """SELECT i.item_id, i.title, i.description, i.brand, i.price, i.source, i.batch,
                      i.added_at, l.category
               FROM items i LEFT JOIN labels l USING (item_id)
               WHERE (? IS NULL OR i.source = ?) AND (? IS NULL OR i.batch = ?)
                 AND (? IS NULL OR l.category = ?) AND (NOT ? OR l.category IS NULL)
               ORDER BY i.added_at, i.position""",
            [source, source, batch, batch, category, category, bool(unlabelled)],
        )

    def items_by_id(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """Title and current label of the given items, indexed by item_id (unknown ids are absent)."""
        return self.query_df(
            """SELECT i.item_id, i.title, l.category FROM items i LEFT JOIN labels l USING (item_id)
               WHERE i.item_id IN (SELECT unnest(?::VARCHAR[]))""",
            [[str(i) for i in item_ids]],
        ).set_index("item_id")

    def upload_batches_of(self, item_ids: Sequence[str]) -> dict[str, str]:
        """The upload batch each of the given ids is in now (ids not uploaded yet are absent)."""
        rows = self._exec(
            """SELECT item_id, batch FROM items WHERE source = 'upload' AND batch IS NOT NULL
               AND item_id IN (SELECT unnest(?::VARCHAR[]))""",
            [[str(i) for i in item_ids]],
        )
        return {item_id: batch for item_id, batch in rows}

    def item_record(self, item_id: str) -> pd.DataFrame:
        """One item with its current label: item_id, title, description, brand, price, source, batch,
        category (no row for an unknown id). One indexed lookup, however large the catalog."""
        return self.query_df(
            """SELECT i.item_id, i.title, i.description, i.brand, i.price, i.source, i.batch, l.category
               FROM items i LEFT JOIN (SELECT item_id, category FROM label_events WHERE item_id = ?
                                       ORDER BY event_id DESC LIMIT 1) l USING (item_id)
               WHERE i.item_id = ?""",
            [str(item_id), str(item_id)],
        )

    def batches(self) -> pd.DataFrame:
        """Upload batches, newest first, with their item counts."""
        return self.query_df(
            """SELECT batch, count(*) AS items, min(added_at) AS added_at FROM items
               WHERE source = 'upload' GROUP BY batch ORDER BY added_at DESC"""
        )

    # -- labels -----------------------------------------------------------------------------
    def add_labels(
        self, item_ids: Sequence[str], categories: Sequence[str | None], who: str, source: str = "manual",
        since: int | None = None,
    ) -> int:
        """Append label events (``None`` as a category removes the label) as one undoable action.
        All or nothing. Returns how many events were written.

        Raises :class:`StoreError` naming unknown items or categories. With ``since`` (the
        :meth:`label_version` when the person saw the items), raises :class:`LabelConflict` when
        someone else gave one of them another label after that, instead of overwriting it.
        """
        if source not in LABEL_SOURCES:
            raise StoreError(f"unknown label source {source!r}")
        if len(item_ids) != len(categories):
            raise StoreError("item_ids and categories differ in length")
        who = (who or "").strip() or "anonymous"
        events = pa.table(
            {
                "item_id": pa.array([str(i) for i in item_ids], pa.string()),
                "category": pa.array([None if c is None else category_name(c) for c in categories], pa.string()),
            }
        )
        with self._write_lock:
            missing = self._exec(
                "SELECT DISTINCT e.item_id FROM events e ANTI JOIN items i USING (item_id) LIMIT 5",
                tables={"events": events},
            )
            if missing:
                raise StoreError("unknown item id(s): " + ", ".join(repr(r[0]) for r in missing))
            unknown = self._exec(
                """SELECT DISTINCT e.category FROM events e
                   WHERE e.category IS NOT NULL AND e.category NOT IN (SELECT name FROM categories) LIMIT 5""",
                tables={"events": events},
            )
            if unknown:
                raise StoreError("unknown category(ies): " + ", ".join(repr(r[0]) for r in unknown))
            if since is not None:
                self._refuse_conflicts(events, who, since)
            self._insert_events(events, who, source)
        return events.num_rows

    def _refuse_conflicts(self, events: pa.Table, who: str, since: int) -> None:
        """Raise :class:`LabelConflict` for items whose label in force was given by someone else after
        event ``since`` and differs from the one ``events`` would give. Hold the write lock."""
        rows = self._exec(
            """SELECT l.item_id, l.who, l.category FROM events e
               JOIN (SELECT item_id, who, category, event_id,
                            row_number() OVER (PARTITION BY item_id ORDER BY event_id DESC) AS rn
                     FROM label_events WHERE item_id IN (SELECT item_id FROM events)) l
                 ON l.item_id = e.item_id AND l.rn = 1
               WHERE l.event_id > ? AND l.who <> ? AND l.category IS DISTINCT FROM e.category
               ORDER BY l.item_id LIMIT 100""",
            [int(since), who],
            tables={"events": events},
        )
        if rows:
            theirs = {str(i): (str(w), None if c is None else str(c)) for i, w, c in rows}
            first, (by, label) = next(iter(theirs.items()))
            raise LabelConflict(
                f"{by} labelled item {first!r} as {label or '(no label)'} while you were looking at it"
                + (f" (and {len(theirs) - 1} more item(s))" if len(theirs) > 1 else "")
                + ": your label was not saved",
                theirs,
            )

    def _insert_events(self, events: pa.Table, who: str, source: str) -> int:
        """Write ``events`` (item_id, category) as one action; returns its id. Hold the write lock."""
        action = int(self._scalar("SELECT nextval('label_action_id')"))
        self._exec(
            "INSERT INTO label_events (item_id, category, who, source, labelled_at, action_id) "
            "SELECT item_id, category, ?, ?, ?, ? FROM events",
            [who, source, _now(), action],
            tables={"events": events},
        )
        return action

    def last_action(self, who: str) -> pd.DataFrame:
        """The events of ``who``'s newest action that has not been undone (empty when none):
        event_id, action_id, item_id, category, source, labelled_at, and each item's label before it."""
        return self.query_df(
            """WITH mine AS (
                   SELECT max(action_id) AS action_id FROM label_events
                   WHERE who = ? AND source <> 'undo' AND action_id IS NOT NULL
                     AND action_id NOT IN (SELECT action_id FROM undone_actions))
               SELECT e.event_id, e.action_id, e.item_id, e.category, e.source, e.labelled_at,
                      (SELECT p.category FROM label_events p WHERE p.item_id = e.item_id AND p.event_id < e.event_id
                       ORDER BY p.event_id DESC LIMIT 1) AS previous
               FROM label_events e JOIN mine USING (action_id) ORDER BY e.event_id""",
            [(who or "").strip() or "anonymous"],
        )

    def undo_last(self, who: str) -> dict[str, int]:
        """Revert ``who``'s newest action not yet undone: each of its items gets back the label it
        had before. Items someone labelled again since are left alone (counted as ``kept``).

        Returns ``{"reverted": n, "kept": m}`` (both 0 when there is nothing to undo).
        """
        who = (who or "").strip() or "anonymous"
        with self._write_lock:
            action = self.last_action(who)
            if action.empty:
                return {"reverted": 0, "kept": 0}
            # An item labelled anew after this action (by an action still in force) keeps that label.
            relabelled = set(
                self.query_df(
                    """SELECT DISTINCT e.item_id FROM label_events e JOIN a USING (item_id)
                       WHERE e.event_id > a.event_id AND e.source <> 'undo'
                         AND coalesce(e.action_id, -1) NOT IN (SELECT action_id FROM undone_actions)""",
                    tables={"a": action[["item_id", "event_id"]]},
                )["item_id"]
            )
            still = action[~action["item_id"].isin(relabelled)]
            events = pa.table(
                {
                    "item_id": pa.array(still["item_id"].astype(str).tolist(), pa.string()),
                    "category": pa.array([None if pd.isna(c) else str(c) for c in still["previous"]], pa.string()),
                }
            )
            if events.num_rows:
                self._insert_events(events, who, "undo")
            self._exec("INSERT INTO undone_actions VALUES (?, ?)", [int(action["action_id"].iloc[0]), _now()])
        return {"reverted": len(still), "kept": len(action) - len(still)}

    def label(self, item_id: str, category: str | None, who: str, source: str = "manual", since: int | None = None) -> None:
        """Label one item (see :meth:`add_labels`)."""
        self.add_labels([item_id], [category], who=who, source=source, since=since)

    def current_labels(self) -> pd.DataFrame:
        """item_id and category of every labelled item (no text: cheap at a million items)."""
        return self.query_df("SELECT item_id, category FROM labels")

    def labels(self) -> pd.DataFrame:
        """Current labels with item text: item_id, title, description, category, who, source, labelled_at."""
        return self.query_df(
            """SELECT l.item_id, i.title, i.description, l.category, l.who, l.source, l.labelled_at
               FROM labels l JOIN items i USING (item_id) ORDER BY l.item_id"""
        )

    def label_history(self, item_id: str | None = None) -> pd.DataFrame:
        """Every label event, newest first (of one item when ``item_id`` is given)."""
        return self.query_df(
            """SELECT event_id, action_id, item_id, category, who, source, labelled_at FROM label_events
               WHERE ? IS NULL OR item_id = ? ORDER BY event_id DESC""",
            [item_id, item_id],
        )

    def label_version(self) -> int:
        """Id of the newest label event: changes whenever labels change (for caches)."""
        return self._reading(  # type: ignore[return-value]
            "label_version", lambda: int(self._scalar("SELECT coalesce(max(event_id), 0) FROM label_events") or 0)
        )

    def label_counts(self) -> pd.DataFrame:
        """Labelled examples per category (zero for categories without any), by name."""
        return self.query_df(
            """SELECT c.name AS category, count(l.item_id) AS examples
               FROM categories c LEFT JOIN labels l ON l.category = c.name
               GROUP BY c.name ORDER BY c.name"""
        )

    # -- abstain targets --------------------------------------------------------------------
    def category_targets(self) -> dict[str, float]:
        """Target precision per category (categories without one are absent)."""
        return dict(self._exec("SELECT name, target_precision FROM category_targets ORDER BY name"))

    def set_category_target(self, name: str, target_precision: float | None) -> None:
        """Set (or, with ``None``, clear) a category's target precision, between 0 and 1."""
        if name not in self.category_names():
            raise StoreError(f"unknown category {name!r}")
        with self._write_lock:
            if target_precision is None:
                self._exec("DELETE FROM category_targets WHERE name = ?", [name])
                return
            if not 0.0 < float(target_precision) <= 1.0:
                raise StoreError("a target precision is between 0 and 1")
            self._exec("INSERT OR REPLACE INTO category_targets VALUES (?, ?)", [name, float(target_precision)])

    # -- 2-D projections --------------------------------------------------------------------
    def get_projection(self, key: str) -> pd.DataFrame:
        """A stored 2-D map (item_id, x, y); empty when ``key`` was never stored."""
        return self.query_df("SELECT item_id, x, y FROM projections WHERE key = ?", [key])

    def put_projection(self, key: str, item_ids: Sequence[str], xy: np.ndarray) -> None:
        """Store a 2-D map under ``key`` (replacing an earlier one; a cache, so nothing is kept read-only)."""
        if self.read_only:
            return
        rows = pa.table(
            {
                "item_id": pa.array([str(i) for i in item_ids], pa.string()),
                "x": pa.array(np.asarray(xy)[:, 0].astype(float), pa.float64()),
                "y": pa.array(np.asarray(xy)[:, 1].astype(float), pa.float64()),
            }
        )
        with self._write_lock:
            self._exec("DELETE FROM projections WHERE key = ?", [key])
            self._exec("INSERT INTO projections SELECT ?, item_id, x, y FROM rows", [key], tables={"rows": rows})

    # -- embeddings -------------------------------------------------------------------------
    def get_embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of ``model`` for the given text hashes (missing ones are absent)."""
        unique = list(dict.fromkeys(hashes))
        if not unique:
            return {}
        dim = self._scalar("SELECT len(vector) FROM embeddings WHERE model = $model LIMIT 1", {"model": model})
        if dim is None:
            return {}
        matrix, found = self.embedding_matrix(model, unique, int(dim))  # type: ignore[arg-type]
        return {h: matrix[i] for i, h in enumerate(unique) if found[i]}

    def count_embedded(self, model: str, hashes: Sequence[str]) -> int:
        """How many of ``hashes`` (each occurrence counted) have a cached vector of ``model``.

        Reads the hashes only: fetching the vectors to count them read 1.5 GB at a million items.
        """
        if not len(hashes):
            return 0
        wanted = pa.table({"text_hash": pa.array(list(hashes), pa.string())})
        with self._registered({"wanted": wanted}) as cur:
            rows = cur.execute(
                "SELECT count(*) FROM wanted w SEMI JOIN "
                "(SELECT text_hash FROM embeddings WHERE model = $model) e USING (text_hash)",
                {"model": model},
            ).fetchall()
        return int(rows[0][0])

    def embedding_matrix(self, model: str, hashes: Sequence[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of ``model`` aligned with ``hashes``: a ``(len(hashes), dim)`` float32
        matrix (rows of hashes not cached stay zero) and a mask of the rows found.

        Streams the result into the matrix a batch at a time, so a million vectors (1.5 GB at
        dimension 384) are held once, not once as query result and again as the matrix. Raises
        :class:`StoreError` when a cached vector of ``model`` has another dimension.
        """
        out = np.zeros((len(hashes), dim), dtype=np.float32)
        found = np.zeros(len(hashes), dtype=bool)
        if not len(hashes):
            return out, found
        wanted = pa.table({"row": pa.array(np.arange(len(hashes)), pa.int64()),
                           "text_hash": pa.array(list(hashes), pa.string())})
        wrong = False
        with self._registered({"wanted": wanted}) as cur:
            # Two steps in one snapshot: the wanted rows' row ids (reading hashes only), then their
            # vectors by row id. One join read every stored vector to probe it (a 256-row sample
            # took 0.9 s at a million vectors, now 0.1 s; all million 12.5 s, now 3.5 s).
            cur.execute("BEGIN TRANSACTION")
            try:
                located = cur.sql(
                    "SELECT w.row, e.rowid AS stored_row FROM wanted w JOIN embeddings e USING (text_hash) "
                    "WHERE e.model = $model",
                    params={"model": model},
                ).to_arrow_table()
                cur.register("located", located)
                try:
                    reader = cur.sql(
                        "SELECT l.row, e.vector FROM embeddings e JOIN located l ON e.rowid = l.stored_row"
                    ).to_arrow_reader(65_536)
                    for batch in reader:  # read to the end: an unfinished result blocks the cursor
                        if wrong or batch.num_rows == 0:
                            continue
                        rows = batch.column(0).to_numpy()
                        flat = batch.column(1).flatten().to_numpy(zero_copy_only=False)
                        if len(flat) != len(rows) * dim:
                            wrong = True
                            continue
                        out[rows] = flat.reshape(len(rows), dim)
                        found[rows] = True
                finally:
                    cur.unregister("located")
            finally:
                cur.execute("ROLLBACK")  # it only read
        if wrong:
            raise StoreError(
                f"the embedding cache holds vectors of model {model!r} that are not {dim}-dimensional: "
                "the model changed under the same name; use another model name or a new database"
            )
        return out, found

    def put_embeddings(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Cache vectors of ``model`` (an existing hash is kept; nothing is kept in a read-only database)."""
        if len(hashes) == 0 or self.read_only:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = pa.table(
            {
                "text_hash": pa.array(list(hashes), pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]).cast(
                    pa.list_(pa.float32())
                ),
            }
        )
        with self._write_lock:
            self._exec(
                "INSERT OR IGNORE INTO embeddings SELECT ?, text_hash, vector FROM rows", [model], tables={"rows": rows}
            )

    def import_embedding_shards(self, files: Sequence[str | Path]) -> int:
        """Cache the vectors in Parquet shards (columns model, text_hash, vector), read by DuckDB
        directly; an existing (model, hash) is kept. Returns how many vectors were new."""
        if not files:
            return 0
        paths = [str(Path(f)) for f in files]
        with self._write_lock:
            before = int(self._scalar("SELECT count(*) FROM embeddings"))  # type: ignore[arg-type]
            self._exec(
                "INSERT OR IGNORE INTO embeddings "
                "SELECT model, text_hash, vector::FLOAT[] FROM read_parquet($files)",
                {"files": paths},  # type: ignore[arg-type]
            )
            return int(self._scalar("SELECT count(*) FROM embeddings")) - before  # type: ignore[arg-type]

    def embedding_counts(self) -> pd.DataFrame:
        """Cached vectors per model."""
        return self.query_df("SELECT model, count(*) AS vectors FROM embeddings GROUP BY model ORDER BY model")

    # -- predictions ------------------------------------------------------------------------
    def save_predictions(self, model: str, frame: pd.DataFrame) -> None:
        """Store the latest prediction per item: columns item_id, category, probability, unsure, top3_json."""
        rows = frame[["item_id", "category", "probability", "unsure", "top3_json"]].copy()
        rows["predicted_at"] = _now()
        with self._write_lock:
            self._exec(
                """INSERT OR REPLACE INTO predictions
                   SELECT item_id, ?, category, probability, unsure, top3_json::JSON, predicted_at FROM rows""",
                [model],
                tables={"rows": rows},
            )

    def predictions(self, model: str) -> pd.DataFrame:
        """Stored predictions of ``model``."""
        return self.query_df(
            "SELECT item_id, category, probability, unsure, top3, predicted_at FROM predictions WHERE model = ?",
            [model],
        )

    # -- interactions -----------------------------------------------------------------------
    def add_interactions(self, frame: pd.DataFrame) -> int:
        """Append purchases (``user_id``, ``item_id``, optional ``ts``, ``order_number``, ``quantity``);
        rows already stored are skipped. Returns how many were added.

        Raises :class:`DataImportError` naming rows (counted from 1) whose order number is not a whole
        number from 0 to 2,147,483,647 or whose quantity is negative or not finite; nothing is written.
        """
        n = len(frame)
        col = lambda name: frame[name] if name in frame else pd.Series([None] * n, index=frame.index)  # noqa: E731
        order = pd.to_numeric(col("order_number"), errors="coerce").astype("float64")
        quantity = pd.to_numeric(col("quantity"), errors="coerce").astype("float64")
        bad_order = np.flatnonzero(order.notna() & ~((order >= 0) & (order <= MAX_ORDER_NUMBER) & (order % 1 == 0)))
        if len(bad_order):
            raise DataImportError(
                f"order numbers must be whole numbers from 0 to {MAX_ORDER_NUMBER:,}; row(s) "
                + ", ".join(str(i + 1) for i in bad_order[:10]) + (" …" if len(bad_order) > 10 else "")
            )
        bad_quantity = np.flatnonzero(quantity.notna() & ~(np.isfinite(quantity) & (quantity >= 0)))
        if len(bad_quantity):
            raise DataImportError(
                "quantities must be finite and not negative; row(s) "
                + ", ".join(str(i + 1) for i in bad_quantity[:10]) + (" …" if len(bad_quantity) > 10 else "")
            )
        rows = pd.DataFrame(
            {
                "user_id": frame["user_id"].astype(str),
                "item_id": frame["item_id"].astype(str),
                "ts": pd.to_datetime(col("ts"), errors="coerce"),
                "order_number": order.astype("Int64"),
                "quantity": quantity,
            }
        )
        rows = rows.drop_duplicates()
        with self._write_lock:
            # Importing the same file twice must not double anyone's purchases.
            added = self._exec(
                """INSERT INTO interactions SELECT r.* FROM rows r WHERE NOT EXISTS (
                       SELECT 1 FROM interactions i WHERE i.user_id = r.user_id AND i.item_id = r.item_id
                         AND i.ts IS NOT DISTINCT FROM r.ts AND i.order_number IS NOT DISTINCT FROM r.order_number
                         AND i.quantity IS NOT DISTINCT FROM r.quantity)""",
                tables={"rows": rows},
            )
        return int(added[0][0]) if added else 0

    def interactions(self) -> pd.DataFrame:
        """All purchases: user_id, item_id, ts (as timestamp), order_number, quantity."""
        return self.query_df(
            "SELECT user_id, item_id, ts AS timestamp, order_number, quantity FROM interactions ORDER BY user_id"
        )

    def purchases_of(self, user_id: str) -> pd.DataFrame:
        """One shopper's purchases, newest order first: item_id, title, category, order_number."""
        return self.query_df(
            """SELECT p.item_id, i.title, l.category, p.order_number FROM interactions p
               LEFT JOIN items i USING (item_id) LEFT JOIN labels l USING (item_id)
               WHERE p.user_id = ? ORDER BY p.order_number DESC NULLS LAST, p.ts DESC NULLS LAST""",
            [user_id],
        )

    def category_affinity(self, user_id: str) -> pd.DataFrame:
        """A shopper's purchases per category of the bought items: category, purchases, share."""
        return self.query_df(
            """SELECT coalesce(l.category, '(no category)') AS category, count(*) AS purchases,
                      count(*) / sum(count(*)) OVER () AS share
               FROM interactions p LEFT JOIN labels l USING (item_id)
               WHERE p.user_id = ? GROUP BY 1 ORDER BY purchases DESC, category""",
            [user_id],
        )

    def interactions_version(self) -> int:
        """Changes whenever purchases are added (for caches)."""
        return int(self._scalar("SELECT count(*) FROM interactions") or 0)

    # -- overview ---------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counts shown in the dashboard's sidebar."""
        rows = self._exec(
            """SELECT (SELECT count(*) FROM items WHERE source = 'catalog'),
                      (SELECT count(*) FROM items WHERE source = 'upload'),
                      (SELECT count(*) FROM labels),
                      (SELECT count(*) FROM categories),
                      (SELECT count(*) FROM embeddings),
                      (SELECT count(*) FROM interactions)"""
        )
        row = rows[0] if rows else None
        keys = ("catalog_items", "uploaded_items", "labelled_items", "categories", "cached_vectors", "interactions")
        return dict(zip(keys, (int(v) for v in row or (0,) * 6)))

    # -- team: roles, audit trail, card claims (issue 24; the rules are in coldrec.access) ---------
    def roles(self) -> pd.DataFrame:
        """Every granted role: email, role, granted_by, granted_at, by email."""
        return self.query_df("SELECT email, role, granted_by, granted_at FROM roles ORDER BY email")

    def role_of(self, email: str) -> str | None:
        """The role granted to ``email`` (compared in lower case), or ``None``. Asked several times a
        rerun (every check): read once per write of this file, like the version counters."""
        email = (email or "").strip().lower()
        value = self._reading(("role", email), lambda: self._scalar("SELECT role FROM roles WHERE email = ?", [email]))
        return None if value is None else str(value)

    def set_role(self, email: str, role: str | None, by: str) -> None:
        """Grant ``role`` to ``email`` (``None`` removes it); the caller checked both."""
        email = (email or "").strip().lower()
        with self._write_lock:
            if role is None:
                self._exec("DELETE FROM roles WHERE email = ?", [email])
            else:
                self._exec("INSERT OR REPLACE INTO roles VALUES (?, ?, ?, ?)", [email, role, by, _now()])

    def record_audit(self, who: str, action: str, subject: object = None, before: object = None, after: object = None) -> None:
        """Append one row to the audit trail (writes other than labels: imports, categories, models, roles)."""
        if self.read_only:  # nothing is written there, so nothing happened to record
            return
        text = lambda v: None if v is None else str(v)[:2_000]  # noqa: E731
        with self._write_lock:
            self._exec(
                "INSERT INTO audit_events (done_at, who, action, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
                [_now(), (who or "").strip() or "local", action, text(subject), text(before), text(after)],
            )

    def audit_events(self) -> pd.DataFrame:
        """The audit trail's rows, newest first: event_id, done_at, who, action, subject, before, after."""
        return self.query_df("SELECT event_id, done_at, who, action, subject, before, after FROM audit_events ORDER BY event_id DESC")

    def claim_first(self, item_ids: Sequence[str], who: str, seconds: float) -> str | None:
        """Claim, for ``seconds``, the first of ``item_ids`` nobody else holds an unexpired claim on,
        and give up ``who``'s other claims (one card each). Returns it, or ``None`` when all are held.
        A claim of ``who`` on it with more than half its time left is kept as it is: a rerun of the
        same card writes nothing (a write makes every cached reading of this file read again)."""
        if not item_ids:
            return None
        now = _now()
        with self._write_lock:
            rows = self._exec(
                "SELECT item_id, who, expires_at FROM claims WHERE expires_at > ? AND item_id IN (SELECT unnest(?::VARCHAR[]))",
                [now, [str(i) for i in item_ids]],
            )
            held = {r[0] for r in rows if r[1] != who}
            free = next((str(i) for i in item_ids if str(i) not in held), None)
            if free is None:
                return None
            half = pd.Timedelta(seconds=float(seconds) / 2).to_pytimedelta()
            if any(r[0] == free and r[1] == who and r[2] > now + half for r in rows):
                return free
            self._exec("DELETE FROM claims WHERE who = ? OR expires_at <= ?", [who, now])
            self._exec("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)",
                       [free, who, now + pd.Timedelta(seconds=float(seconds)).to_pytimedelta()])
            return free

    def release_claims(self, who: str) -> None:
        """Give up ``who``'s claims (after labelling or skipping the card)."""
        with self._write_lock:
            self._exec("DELETE FROM claims WHERE who = ?", [who])

    def claims(self) -> pd.DataFrame:
        """Unexpired claims: item_id, who, expires_at."""
        return self.query_df("SELECT item_id, who, expires_at FROM claims WHERE expires_at > ? ORDER BY item_id", [_now()])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _none_if_na(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    return text if text.strip() else None


