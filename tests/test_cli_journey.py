"""CLI breakages of the merchandiser journey (issue 22): init on a database that holds data,
`make run` on a database of one's own, an unknown audience id, one source of predictions."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from coldrec.cli import main
from coldrec.store import Store

from tests.conftest import PROJECT


def _stats(path) -> dict[str, int]:
    with Store(path) as store:
        return store.stats()


def test_init_refuses_a_database_that_holds_data(env, capsys):
    before = _stats(env / "cli.duckdb")
    capsys.readouterr()
    assert main(["init"]) == 2  # the demo, into a shop's database
    err = capsys.readouterr().err
    assert "already holds 3 categories, 12 items" in err and "--merge" in err and "Nothing was changed" in err
    assert _stats(env / "cli.duckdb") == before
    # The user's own catalog again: refused as well.
    assert main(["init", "--catalog", str(env / "catalog.csv"), "--categories", str(env / "categories.csv")]) == 2
    assert _stats(env / "cli.duckdb") == before


def test_init_if_missing_leaves_a_database_with_data_even_without_the_initialised_mark(env, capsys):
    with Store(env / "cli.duckdb") as store:  # e.g. filled from the dashboard's own import
        store.set_meta("initialised", "")
    before = _stats(env / "cli.duckdb")
    capsys.readouterr()
    assert main(["init", "--if-missing"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _stats(env / "cli.duckdb") == before


def test_init_merge_adds_when_told_explicitly(env, small_catalog):
    catalog, _ = small_catalog
    more = catalog.assign(item_id=catalog["item_id"] + "x")
    more.to_csv(env / "more.csv", index=False)
    assert main(["init", "--merge", "--catalog", str(env / "more.csv"), "--categories", str(env / "categories.csv")]) == 0
    assert _stats(env / "cli.duckdb")["catalog_items"] == 24


def _make_dry_run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "COLDREC_DB"}
    done = subprocess.run(["make", "-n", "run"], cwd=PROJECT, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_loads_the_demo_only_into_the_default_database(tmp_path):
    assert "coldrec init --if-missing" in _make_dry_run()
    assert "coldrec init --if-missing" in _make_dry_run(COLDREC_DB="data/coldrec.duckdb")
    own = _make_dry_run(COLDREC_DB=str(tmp_path / "new.duckdb"))
    assert "coldrec init" not in own and "streamlit run app.py" in own


@pytest.fixture
def shop(env):
    pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["C1", "C2", "F1", "P1"]}).to_csv(
        env / "purchases.csv", index=False)
    assert main(["import-interactions", str(env / "purchases.csv")]) == 0
    return env


def test_audience_of_an_unknown_id_is_refused_before_any_model_is_built(shop, monkeypatch, capsys):
    from coldrec.services.audience import AudienceService
    from coldrec.workspace import Workspace

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded for an id the database does not hold")

    monkeypatch.setattr(Workspace, "open", classmethod(never))
    monkeypatch.setattr(AudienceService, "model", never)
    capsys.readouterr()
    assert main(["audience", "NO-SUCH-ID"]) == 2
    err = capsys.readouterr().err
    assert "No item with id 'NO-SUCH-ID'" in err and "Traceback" not in err


def test_audience_of_an_unknown_id_as_a_subprocess_is_a_clear_fast_error(shop):
    done = subprocess.run([sys.executable, "-m", "coldrec", "audience", "NO-SUCH-ID"], cwd=PROJECT,
                          env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "No item with id 'NO-SUCH-ID'" in done.stderr and done.stdout == ""


def _batch_predictions(ws) -> tuple[np.ndarray, list[bool], list[str]]:
    batch = ws.predictor.predict_batch("monday")
    return (np.array([p.probability for p in batch.predictions]), [p.unsure for p in batch.predictions],
            [p.category for p in batch.predictions])


def test_cli_and_dashboard_give_the_same_predictions_on_the_same_database(env, tiny_encoder, monkeypatch):
    """The dashboard's long-lived workspace updates its model in place (uploads extend the graph,
    labels warm-start it, beta is refitted only when the labels grew by a fifth); a new process (the
    CLI, or the dashboard after a restart) fits from scratch. Both must predict the same."""
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    settings = Settings.from_env()
    new = pd.DataFrame({
        "item_id": [f"n{i}" for i in range(12)],
        "title": ["steel pan", "iron wok", "leather boot", "wool socks", "dog toy", "cat food",
                  "kettle set", "sandal pack", "pet ball", "coffee pot", "running shoe", "dog bed"],
        "description": [""] * 12,
    })
    dashboard = Workspace.open(settings, encoder=tiny_encoder)
    dashboard.predictor.classifier()
    dashboard.predictor.upload_and_predict(new, batch="monday")  # the graph grows in place
    for item_id, category in [("n0", "Cookware"), ("n2", "Footwear")]:  # labels warm-start it
        dashboard.labels.label(item_id, category, who="ana")
        dashboard.predictor.classifier()
    live = _batch_predictions(dashboard)
    dashboard.close()

    fresh = Workspace.open(settings, encoder=tiny_encoder)  # what `python -m coldrec predict` builds
    try:
        again = _batch_predictions(fresh)
    finally:
        fresh.close()
    assert live[2] == again[2] and live[1] == again[1]
    np.testing.assert_allclose(live[0], again[0], atol=2e-3)
    # And the CLI itself, on the stored batch's file.
    new.to_csv(env / "monday.csv", index=False)
    assert main(["predict", str(env / "monday.csv"), "-o", str(env / "out.csv")]) == 0
    out = pd.read_csv(env / "out.csv", encoding="utf-8-sig")
    assert out["top1"].tolist() == live[2]
    np.testing.assert_allclose(out["top1_probability"].to_numpy(), live[0], atol=2e-3)
