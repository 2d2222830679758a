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


# -- item 19: odd paths on the command line ----------------------------------------------------
def _cli(args: list[str], capsys) -> tuple[int, str]:
    from coldrec import cli

    code = cli.main(args)
    return code, capsys.readouterr().err.strip()


def test_a_file_name_too_long_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "c.duckdb"))
    code, err = _cli(["predict", str(tmp_path / ("x" * 300 + ".csv"))], capsys)
    assert code == 2 and err.startswith("error: ") and "too long" in err and "\n" not in err


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_devices_pipes_and_folders_are_not_regular_files(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "c.duckdb"))
    if kind == "device":
        path = Path("/dev/zero")
    elif kind == "fifo":
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)
    else:
        path = tmp_path / "folder.csv"
        path.mkdir()
    code, err = _cli(["predict", str(path)], capsys)  # a FIFO would block a reader: it is never opened
    assert code == 2 and ("not a regular file" in err if kind != "folder" else "is a folder" in err), err


def test_ansi_escapes_in_a_file_name_are_shown_escaped(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "c.duckdb"))
    name = tmp_path / "\x1b[31mred\x1b]0;title\x07\u202e.csv"
    code, err = _cli(["predict", str(name)], capsys)
    assert code == 2 and "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "\\x1b[31mred" in err and "no such file" in err


def test_read_table_and_taxonomy_name_odd_paths(tmp_path):
    from coldrec.errors import IngestError
    from coldrec.ingest import read_table
    from coldrec.taxonomy import read_taxonomy

    for reader in (read_table, read_taxonomy):
        with pytest.raises(IngestError, match="not a regular file"):
            reader("/dev/zero", "zero.csv")
        with pytest.raises(IngestError, match="too long"):
            reader(tmp_path / ("y" * 400 + ".txt"))


# -- item 20: a killed fine-tuning save leaves nothing behind after the next start ------------------
def test_stale_fine_tuning_folders_are_removed_on_start(tmp_path, tiny_encoder):
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    models = tmp_path / "models"
    stale = models / "ft-20260101-000000-contrastive.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\0" * 1024)
    kept = models / "ft-20260101-000000-lora"
    kept.mkdir()
    (kept / "card.json").write_text("{}")
    other = models / "notes.tmp"
    other.mkdir()
    with Workspace.open(Settings(db_path=tmp_path / "c.duckdb"), encoder=tiny_encoder):
        pass
    assert not stale.exists() and kept.is_dir() and other.is_dir()


# -- item 13: an init cut short is finished by the next `init --if-missing` -------------------------
def test_an_init_killed_after_the_catalog_is_resumed_by_if_missing(monkeypatch, tmp_path, tiny_model_dir, capsys):
    from coldrec.cli import main
    from coldrec.ingest import load_items
    from coldrec.workspace import Workspace

    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "demo.duckdb"))
    monkeypatch.setenv("COLDREC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    real = Workspace.add_demo_arrivals

    def killed(self, progress=None):  # the catalog is in and "initialised" is set: then a kill
        self.imports.add_upload(load_items(PROJECT / "data" / "demo" / "new_arrivals.csv"), batch=Workspace.DEMO_BATCH)
        raise KeyboardInterrupt  # mid-batch: items stored, no predictions yet

    monkeypatch.setattr(Workspace, "add_demo_arrivals", killed)
    assert main(["init"]) == 130
    monkeypatch.setattr(Workspace, "add_demo_arrivals", real)
    capsys.readouterr()
    assert main(["init", "--if-missing"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" not in out and "new arrivals uploaded" in out
    with Store(tmp_path / "demo.duckdb") as store:
        predicted = store.query_df(
            "SELECT count(*) AS n FROM predictions WHERE item_id IN (SELECT item_id FROM items WHERE batch = ?)",
            [Workspace.DEMO_BATCH],
        )["n"].iloc[0]
    assert predicted == 72
    assert main(["init", "--if-missing"]) == 0 and "nothing to do" in capsys.readouterr().out
