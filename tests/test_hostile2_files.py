"""Files and disks, round 2 (issue 25): a full disk, foreign database files, odd CLI paths, stale
fine-tuning folders, error details in the browser. Each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from coldrec.errors import DiskFullError, StoreError
from coldrec.store import Store

PROJECT = Path(__file__).resolve().parent.parent


# -- item 14: a full disk is one line, and nothing saved is lost ---------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("a small tmpfs cannot be mounted here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_a_disk_full_error_and_saved_labels_survive(small_disk):
    db = small_disk / "c.duckdb"
    ids = [f"i{n}" for n in range(3)]
    with Store(db) as store:
        store.upsert_categories(pd.DataFrame({"name": ["Cookware"], "description": ["pans"]}))
        store.upsert_items(pd.DataFrame({"item_id": ids, "title": ["pan", "pot", "wok"]}), source="catalog")
        store.add_labels(ids, ["Cookware"] * 3, who="ana")
    filler = _fill(small_disk)
    many = [f"n{n}" for n in range(40_000)]
    with pytest.raises(DiskFullError, match=r"^disk full: .*c\.duckdb could not be written.*nothing saved before was lost"):
        with Store(db) as store:
            store.upsert_items(pd.DataFrame({"item_id": many, "title": ["x" * 200] * len(many)}), source="upload", batch="b")
            store.add_labels(many, ["Cookware"] * len(many), who="ana")
    filler.unlink()
    with Store(db) as store:
        labels = store.labels().set_index("item_id")["category"]
        assert all(labels.get(i) == "Cookware" for i in ids)


def test_the_cli_says_disk_full_in_one_line(monkeypatch, capsys, tmp_path):
    from coldrec import cli

    def full(args, settings):
        raise duckdb.TransactionException('TransactionContext Error: Failed to commit: could not write "x.wal": '
                                          "No space left on device")

    monkeypatch.setitem(cli._COMMANDS, "stats", full)
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "x.duckdb"))
    assert cli.main(["stats"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: disk full: ") and "\n" not in err and "Traceback" not in err
    monkeypatch.setitem(cli._COMMANDS, "stats", lambda a, s: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert cli.main(["stats"]) == 2
    assert capsys.readouterr().err.startswith("error: disk full: ")


# -- item 15: a file that is not a coldrec database is refused, unchanged -----------------------
def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_duckdb(path: Path, sql: str) -> Path:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()
    return path


@pytest.mark.parametrize("sql, needle", [
    ("CREATE TABLE invoices (id INTEGER, total DOUBLE); INSERT INTO invoices VALUES (1, 9.5)", "invoices"),
    ("CREATE TABLE meta (name VARCHAR, created DATE)", "meta"),
    ("CREATE TABLE items (sku VARCHAR); CREATE TABLE orders (id INTEGER)", "orders"),
    ("CREATE SCHEMA app; CREATE TABLE app.items (x INTEGER)", "items"),
])
def test_another_applications_duckdb_file_is_refused_unchanged(tmp_path, sql, needle):
    path = _foreign_duckdb(tmp_path / "other.duckdb", sql)
    before = _digest(path)
    with pytest.raises(StoreError, match=rf"another application.*{needle}.*did not change it"):
        Store(path)
    assert _digest(path) == before and not (tmp_path / "other.duckdb.wal").exists()


def test_a_truncated_duckdb_file_is_refused_unchanged(tmp_path):
    path = tmp_path / "c.duckdb"
    Store(path).close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    before = _digest(path)
    with pytest.raises(StoreError, match="damaged or not a DuckDB file"):
        Store(path)
    assert _digest(path) == before


def test_a_sqlite_file_is_refused_without_loading_an_extension(tmp_path):
    import sqlite3

    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="is a SQLite database"):
        Store(path)
    assert _digest(path) == before


def test_an_empty_duckdb_database_becomes_a_coldrec_database(tmp_path):
    blank = tmp_path / "blank.duckdb"
    duckdb.connect(str(blank)).close()
    with Store(blank) as store:
        assert store.stats()["categories"] == 0
    with Store(blank) as store:  # and a coldrec database opens again
        assert store.stats()["catalog_items"] == 0
