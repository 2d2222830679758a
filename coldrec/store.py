"""The DuckDB database: items, categories, label history, embeddings, predictions, interactions.

One file per installation. DuckDB lets one process open a file for writing; inside that
process every thread gets its own cursor, and every query's result is fetched fully
before the cursor is used again (DuckDB 2 streams results).
Labels are an append-only event log; the current label of an item is its latest event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import StoreError, StoreLockedError

SCHEMA_VERSION = 2

#: Where a label came from.
#: manual: typed or picked by a person; accepted: a person accepted the model's suggestion;
#: import: from a file; propagated: copied to look-alikes in one action; undo: an undone action.
LABEL_SOURCES = ("manual", "accepted", "import", "propagated", "undo")
ITEM_SOURCES = ("catalog", "upload")

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
    position INTEGER            -- row of the item in the file it came from
);
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
"""




def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """A coldrec database. ``Store(path)`` creates the file and schema if missing.

    Use ``":memory:"`` for a throwaway database.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the database {self.path} is in use by another coldrec process "
                    "(a dashboard or a CLI command). Stop it, or set COLDREC_DB to another file."
                ) from exc
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._exec(_SCHEMA)
        self._exec("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    # -- plumbing ---------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    def query_df(
        self, sql: str, params: Sequence[object] | None = None, tables: dict[str, object] | None = None
    ) -> pd.DataFrame:
        """Run a read query (trusted SQL, user values only as ``params``) and return all rows.

        ``tables`` (frames or Arrow tables) are visible to the query by name.
        """
        with self._registered(tables) as cur:
            return cur.execute(sql, params or []).df()

    def _exec(
        self, sql: str, params: Sequence[object] | None = None, tables: dict[str, object] | None = None
    ) -> list[tuple]:
        """Run ``sql`` with ``tables`` (frames or Arrow tables) visible by name; fetch every row.

        DuckDB 2 streams results: a result left unfetched blocks the cursor.
        """
        with self._registered(tables) as cur:
            return cur.execute(sql, params or []).fetchall()

    @contextmanager
    def _registered(self, tables: dict[str, object] | None) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor with ``tables`` registered by name for the duration."""
        cur = self._cursor()
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
        """Close the database (checkpoints the write-ahead log)."""
        self._con.close()

    def get_meta(self, key: str) -> str | None:
        """A value from the meta table (``None`` when unset)."""
        value = self._scalar("SELECT value FROM meta WHERE key = ?", [key])
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Set a value in the meta table."""
        with self._write_lock:
            self._exec("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def catalog_fingerprint(self) -> tuple[object, ...]:
        """Changes whenever items are added or updated (for caches)."""
        return tuple(self._exec("SELECT count(*), max(added_at), count(*) FILTER (WHERE source = 'catalog') FROM items")[0])

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
                "name": frame["name"].astype(str).str.strip(),
                "description": frame["description"].astype(object) if has_description else blank,
                "path": frame["path"].astype(object) if has_path else blank,
            }
        )
        rows = rows[rows["name"] != ""].where(lambda r: pd.notna(r), None)
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

    def categories(self) -> pd.DataFrame:
        """All categories (name, description, path), by name."""
        return self.query_df("SELECT name, description, path FROM categories ORDER BY name")

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
            self._exec(
                """INSERT INTO items
                   SELECT item_id, title, description, brand, price, NULL, ?, ?, ?, position FROM rows
                   ON CONFLICT (item_id) DO UPDATE SET title = excluded.title,
                       description = excluded.description, brand = excluded.brand,
                       price = excluded.price, batch = excluded.batch, position = excluded.position""",
                [source, batch, _now()],
                tables={"rows": rows},
            )
        return n

    def items(self, source: str | None = None, batch: str | None = None) -> pd.DataFrame:
        """Items with their current label (``category``, NULL when unlabelled), in the order they were added."""
        return self.query_df(
            """SELECT i.item_id, i.title, i.description, i.brand, i.price, i.source, i.batch,
                      i.added_at, l.category
               FROM items i LEFT JOIN labels l USING (item_id)
               WHERE (? IS NULL OR i.source = ?) AND (? IS NULL OR i.batch = ?)
               ORDER BY i.added_at, i.position""",
            [source, source, batch, batch],
        )

    def items_by_id(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """Title and current label of the given items, indexed by item_id (unknown ids are absent)."""
        return self.query_df(
            """SELECT i.item_id, i.title, l.category FROM items i LEFT JOIN labels l USING (item_id)
               WHERE i.item_id IN (SELECT unnest(?::VARCHAR[]))""",
            [[str(i) for i in item_ids]],
        ).set_index("item_id")

    def batches(self) -> pd.DataFrame:
        """Upload batches, newest first, with their item counts."""
        return self.query_df(
            """SELECT batch, count(*) AS items, min(added_at) AS added_at FROM items
               WHERE source = 'upload' GROUP BY batch ORDER BY added_at DESC"""
        )

    # -- labels -----------------------------------------------------------------------------
    def add_labels(
        self, item_ids: Sequence[str], categories: Sequence[str | None], who: str, source: str = "manual"
    ) -> int:
        """Append label events (``None`` as a category removes the label) as one undoable action.
        All or nothing. Returns how many events were written.

        Raises :class:`StoreError` naming unknown items or categories.
        """
        if source not in LABEL_SOURCES:
            raise StoreError(f"unknown label source {source!r}")
        if len(item_ids) != len(categories):
            raise StoreError("item_ids and categories differ in length")
        who = (who or "").strip() or "anonymous"
        events = pa.table(
            {
                "item_id": pa.array([str(i) for i in item_ids], pa.string()),
                "category": pa.array([None if c is None else str(c) for c in categories], pa.string()),
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
            self._insert_events(events, who, source)
        return events.num_rows

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

    def label(self, item_id: str, category: str | None, who: str, source: str = "manual") -> None:
        """Label one item (see :meth:`add_labels`)."""
        self.add_labels([item_id], [category], who=who, source=source)

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
        return int(self._scalar("SELECT coalesce(max(event_id), 0) FROM label_events") or 0)

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
        """Store a 2-D map under ``key`` (replacing an earlier one)."""
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
        if not hashes:
            return {}
        wanted = pa.table({"text_hash": pa.array(list(dict.fromkeys(hashes)), pa.string())})
        with self._registered({"wanted": wanted}) as cur:
            table = cur.sql(
                "SELECT e.text_hash, e.vector FROM embeddings e SEMI JOIN wanted w USING (text_hash) "
                "WHERE e.model = $model",
                params={"model": model},
            ).to_arrow_table()
        if table.num_rows == 0:
            return {}
        vectors = table.column("vector").combine_chunks()
        dim = len(vectors[0])
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        matrix = flat.reshape(-1, dim)
        return dict(zip(table.column("text_hash").to_pylist(), matrix))

    def put_embeddings(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Cache vectors of ``model`` (an existing hash is kept)."""
        if len(hashes) == 0:
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
        rows already stored are skipped. Returns how many were added."""
        n = len(frame)
        col = lambda name: frame[name] if name in frame else pd.Series([None] * n, index=frame.index)  # noqa: E731
        rows = pd.DataFrame(
            {
                "user_id": frame["user_id"].astype(str),
                "item_id": frame["item_id"].astype(str),
                "ts": pd.to_datetime(col("ts"), errors="coerce"),
                "order_number": pd.to_numeric(col("order_number"), errors="coerce").astype("Int64"),
                "quantity": pd.to_numeric(col("quantity"), errors="coerce"),
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


def _none_if_na(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    return text if text.strip() else None


