"""The Explore page on a synthetic 100,000-item workspace (tiny model, random clustered vectors):
it renders, draws every item as density, and a lasso selects items beyond the drawn sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coldrec import ui
from coldrec.encoder import text_hash
from coldrec.ingest import item_text
from coldrec.projection import points_in_polygon
from coldrec.store import Store
from coldrec.workspace import Workspace

from tests.conftest import PROJECT, dashboard_on
from tests.test_pages import shown

pytestmark = pytest.mark.slow

N_ITEMS = 100_000


@pytest.fixture(scope="module")
def large_env(tmp_path_factory, tiny_model_dir, tiny_encoder):
    """A prepared 100k-item workspace whose vectors are synthetic (stored as the tiny model's)."""
    folder = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, tiny_encoder.dim)).astype(np.float32)
    cluster = rng.integers(0, 40, N_ITEMS)
    vectors = centres[cluster] + rng.normal(scale=0.8, size=(N_ITEMS, tiny_encoder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    titles = [f"item {i} of group {c}" for i, c in enumerate(cluster)]
    store = Store(folder / "app.duckdb")
    store.upsert_categories(pd.DataFrame({"name": [f"group {c}" for c in range(10)], "description": "", "path": ""}))
    store.upsert_items(pd.DataFrame({"item_id": [f"C{i}" for i in range(N_ITEMS)], "title": titles, "description": ""}),
                       source="catalog")
    store.put_embeddings(tiny_encoder.name, [text_hash(item_text(t, "")) for t in titles], vectors)
    labelled = np.flatnonzero(cluster < 10)[:200]
    store.add_labels([f"C{i}" for i in labelled], [f"group {cluster[i]}" for i in labelled], who="setup", source="import")
    store.set_meta("initialised", "1")
    with Workspace(store, tiny_encoder) as ws:
        ws.vectors.prepare()  # what `coldrec init` does: the index and every item's neighbours, saved
    return folder


@pytest.fixture
def app_at_scale(large_env, monkeypatch, tiny_model_dir):
    yield from dashboard_on(monkeypatch, large_env / "app.duckdb", tiny_model_dir, large_env)


def test_explore_at_100k_items_draws_them_all_and_a_lasso_selects_beyond_the_sample(app_at_scale):
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=600)
    at.run()
    at = at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    assert any("All 100,000 items are drawn as the grey density" in shown(c.value) for c in at.caption)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "heatmap"
    drawn = sum(len(t.get("customdata") or []) for t in spec["data"][1:])
    assert drawn == 20_000

    ws = ui._open_workspace()
    from coldrec import explore

    positions = explore.map_positions(ws, "pca")
    x, y = positions["x"].to_numpy(), positions["y"].to_numpy()
    lasso = {"x": [float(x.min()), float(np.median(x)), float(np.median(x)), float(x.min())],
             "y": [float(y.min()), float(y.min()), float(np.median(y)), float(np.median(y))]}
    inside = int(points_in_polygon(x, y, lasso["x"], lasso["y"]).sum())
    assert inside > 20_000 * 0.25 * 1.5  # more than the drawn points in that quarter could ever be
    at.session_state["map"] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": [lasso]}}
    at.run()
    assert not at.exception, at.exception
    assert any(f"Selection: {inside:,} item(s)" in shown(s.value) for s in at.subheader)
    assert any(f"The first 1,000 of the {inside:,} selected items" in shown(c.value) for c in at.caption)
