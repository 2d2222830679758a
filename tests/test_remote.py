"""CLI commands while the dashboard holds the database: served by the dashboard process (issue 22, item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coldrec import remote
from coldrec.cli import main

PROJECT = Path(__file__).resolve().parent.parent

# A stand-in for `streamlit run app.py`: opens the workspace as the dashboard does, serves, waits.
HOLDER = """
import sys
from coldrec import remote
from coldrec.config import Settings
from coldrec.workspace import Workspace
ws = Workspace.open(Settings.from_env())
assert remote.serve(ws)
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
ws.close()
"""


@pytest.fixture
def served(monkeypatch, tmp_path, tiny_model_dir, small_catalog):
    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    env = {**os.environ, "COLDREC_DB": str(tmp_path / "shop.duckdb"), "COLDREC_MODEL": str(tiny_model_dir),
           "COLDREC_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT)}
    for key in ("COLDREC_DB", "COLDREC_MODEL", "COLDREC_DEVICE"):
        monkeypatch.setenv(key, env[key])
    assert main(["init", "--catalog", str(tmp_path / "catalog.csv"), "--categories", str(tmp_path / "categories.csv")]) == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=PROJECT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    yield tmp_path, env
    holder.stdin.close()
    holder.wait(30)


def _cli(env, *argv, cwd):
    return subprocess.run([sys.executable, "-m", "coldrec", *argv], cwd=cwd, env=env, capture_output=True, text=True)


def test_read_and_write_commands_run_while_the_dashboard_holds_the_database(served):
    folder, env = served
    stats = _cli(env, "stats", cwd=PROJECT)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["catalog_items"] == 12 and "dashboard holds this database" in stats.stderr
    sql = _cli(env, "sql", "SELECT count(*) AS n FROM items", cwd=PROJECT)
    assert sql.returncode == 0 and sql.stdout.splitlines() == ["n", "12"], sql.stderr
    # the nightly feed, with a relative path from another folder
    pd.DataFrame({"sku": ["n1", "n2"], "name": ["steel pot set", "cat toy ball"]}).to_csv(folder / "feed.csv", index=False)
    saved = _cli(env, "predict", "feed.csv", "--save-batch", "nightly", "-o", "out.csv", cwd=folder)
    assert saved.returncode == 0, saved.stderr
    assert pd.read_csv(folder / "out.csv", encoding="utf-8-sig")["item_id"].tolist() == ["n1", "n2"]
    stats = json.loads(_cli(env, "stats", cwd=PROJECT).stdout)
    assert stats["uploaded_items"] == 2  # written by the dashboard's own store: nothing lost
    refused = _cli(env, "audience", "NO-SUCH-ID", cwd=PROJECT)
    assert refused.returncode == 2 and "error:" in refused.stderr


def test_without_a_serving_dashboard_the_lock_message_stands(tmp_path, monkeypatch):
    db = tmp_path / "x.duckdb"
    assert remote.forward(db, ["stats"]) is None  # nobody listens
    assert not remote.socket_path(db).exists()


def test_the_socket_is_private_to_its_user(served):
    folder, env = served
    path = remote.socket_path(env["COLDREC_DB"])
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
