"""Workspace: init, predictions with evidence and neighbours, labels feeding back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.ingest import IngestError, load_items
from coldrec.store import StoreError


def test_init_loads_catalog_labels_and_embeddings(workspace):
    stats = workspace.store.stats()
    assert stats["catalog_items"] == 12 and stats["labelled_items"] == 12 and stats["categories"] == 3
    # 12 items + nothing else embedded yet; prompts are embedded on first classifier use.
    assert stats["cached_vectors"] == 12
    history = workspace.store.label_history()
    assert set(history["source"]) == {"import"} and set(history["who"]) == {"catalog"}


def test_init_twice_adds_no_duplicate_labels(workspace, tmp_path):
    before = len(workspace.store.label_history())
    counts = workspace.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    assert counts["labels"] == 0 and len(workspace.store.label_history()) == before


def test_predict_returns_top3_evidence_and_catalog_neighbours(workspace):
    items = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["steel frying pan", "dog food pack"], "description": ["", ""]})
    batch = workspace.predict(items)
    frame = batch.frame()
    assert frame["item_id"].tolist() == ["n1", "n2"]
    # Identical catalog text is the nearest neighbour with cosine 1.
    assert batch.neighbours[0][0] == ("C1", 1.0) or batch.neighbours[0][0][0] == "C1"
    assert batch.neighbours[0][0][1] > 0.999
    assert len(frame.loc[0, "neighbour_ids"].split()) == 5
    assert batch.predictions[0].evidence[0][:2] == ("C1", "Cookware")


def test_a_label_changes_the_next_prediction(workspace):
    workspace.store.upsert_items(
        pd.DataFrame({"item_id": ["u1"], "title": ["yoga mat"], "description": [""]}), source="upload", batch="b1"
    )
    items = workspace.store.items(batch="b1")
    before = workspace.predict(items).predictions[0]
    target = next(c for c in ["Cookware", "Footwear", "Pet Supplies"] if c != before.category)
    for n in range(6):
        workspace.store.upsert_items(
            pd.DataFrame({"item_id": [f"y{n}"], "title": ["yoga mat"], "description": [""]}), source="upload"
        )
        workspace.label(f"y{n}", target, who="ana")
    after = workspace.predict(items).predictions[0]
    assert after.category == target


def test_classifier_is_reused_until_labels_change(workspace):
    first = workspace.classifier()
    assert workspace.classifier() is first
    workspace.label("C1", "Footwear", who="ana")
    assert workspace.classifier() is not first


def test_predictions_are_saved_for_stored_items(workspace):
    workspace.store.upsert_items(pd.DataFrame({"item_id": ["u1"], "title": ["wool socks"]}), source="upload", batch="b")
    batch = workspace.predict(workspace.store.items(batch="b"))
    workspace.save_predictions(batch)
    saved = workspace.store.predictions(workspace.encoder.name)
    assert saved["item_id"].tolist() == ["u1"] and saved.loc[0, "category"] == batch.predictions[0].category


def test_predict_text_splits_title_and_description(workspace):
    batch = workspace.predict_text("cast iron skillet\nheavy pan for the oven")
    assert batch.items.loc[0, "title"] == "cast iron skillet"
    assert batch.items.loc[0, "description"] == "heavy pan for the oven"
    assert np.isclose(np.linalg.norm(batch.vectors[0]), 1.0)


def test_reuploading_the_same_products_never_re_embeds_them(workspace):
    calls = []
    real_encode = workspace.encoder.encode

    class Spy:
        name, dim, device = workspace.encoder.name, workspace.encoder.dim, workspace.encoder.device

        def encode(self, texts, progress=None):
            calls.append(len(texts))
            return real_encode(texts, progress)

    workspace.encoder = Spy()
    items = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["wool jacket", "linen shirt"], "description": ["", ""]})
    workspace.predict(items)
    assert sum(calls) >= 2
    calls.clear()
    workspace.predict(items.assign(item_id=["again1", "again2"]))
    assert calls == []


# -- the item index and the graph predictor inside a workspace ------------------------------------


def test_item_index_is_saved_beside_the_database_and_reloaded(workspace, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    index = workspace.item_index()
    assert len(index) == len(workspace.store.items())
    folder = workspace._index_folder()
    assert folder is not None and (folder / "manifest.json").exists()
    assert str(folder).startswith(str(workspace.store.path))  # beside the database file
    path, settings = workspace.store.path, workspace.settings
    workspace.close()
    with Workspace(Store(path), tiny_encoder, settings) as again:
        reloaded = again.item_index()
        assert reloaded is not index and reloaded.ids == index.ids
        np.testing.assert_allclose(reloaded.vectors, index.vectors)


def test_an_upload_extends_the_graph_and_its_items_learn_from_labels(workspace):
    before = workspace.classifier()
    n_before = len(workspace.item_index().ids)
    items = pd.DataFrame({"item_id": ["u1", "u2"], "title": ["steel frying pan", "dog food pack"], "description": ["", ""]})
    workspace.add_upload(items, batch="b")
    model = workspace.classifier()
    assert model is not before and len(workspace.item_index().ids) == n_before + 2
    assert model.label_distributions_.shape[0] == n_before + 2  # the graph grew; nothing was rebuilt from scratch
    # Labelling the upload's twin in the catalog moves the upload's prediction at once.
    first = workspace.predict(items).predictions[0]
    c1_label = workspace.store.labels().set_index("item_id").loc["C1", "category"]
    target = next(c for c in workspace.store.category_names() if c not in (first.category, c1_label))
    workspace.label("C1", target, who="ana")  # C1 has the same text as u1
    after = workspace.predict(items).predictions[0]
    assert dict(after.top).get(target, 0.0) > dict(first.top).get(target, 0.0) + 0.03


def test_incremental_refresh_matches_a_fresh_fit(workspace, tiny_encoder):
    from coldrec.workspace import Workspace

    workspace.classifier()
    for item_id, category in [("C2", "Footwear"), ("F1", "Pet Supplies"), ("P2", "Cookware")]:
        workspace.label(item_id, category, who="ana")
        incremental = workspace.classifier()
    fresh = Workspace(workspace.store, tiny_encoder, workspace.settings).classifier()
    from coldrec.graph import distributions

    # The propagation matches; beta is refitted only when the labels grew by a fifth.
    np.testing.assert_allclose(distributions(incremental._fit.state), distributions(fresh._fit.state), atol=0.02)
    assert (incremental.label_distributions_.argmax(axis=1) == fresh.label_distributions_.argmax(axis=1)).all()


def test_large_workspaces_refit_calibration_in_the_background(workspace, monkeypatch):
    import time

    import coldrec.workspace as workspace_module
    from coldrec.workspace import Workspace

    monkeypatch.setattr(workspace_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    items = pd.DataFrame({"item_id": [f"u{i}" for i in range(4)], "title": ["steel pan", "dog bed", "boot", "wok"],
                          "description": [""] * 4})
    workspace.add_upload(items, batch="b")
    asked = []
    real = Workspace._refit_in_background
    monkeypatch.setattr(Workspace, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))

    def finish() -> None:
        real(workspace, *asked[-1])
        deadline = time.time() + 30
        while workspace.refitting() and time.time() < deadline:
            time.sleep(0.05)

    first = workspace.classifier()
    assert asked == [(False, True)] and first._fit.beta_fitted is False  # the label-free beta first ...
    finish()
    assert workspace._refit_epoch == 1 and workspace.classifier()._fit.beta_fitted is True  # ... then the fitted one,
    assert first._fit.beta_fitted is False  # published as a new model: the one a session holds is not written into
    version = workspace.version()
    for item_id, category in zip(items["item_id"], ["Cookware", "Pet Supplies", "Footwear", "Cookware"]):
        workspace.label(item_id, category, who="ana")  # 12 -> 16 labels: a third more
    workspace.classifier()
    assert asked[-1] == (True, True)
    finish()
    assert workspace._refit_epoch == 2
    assert workspace.version() != version  # views keyed on version() see the new calibration


def test_large_workspaces_update_look_alikes_at_once_and_the_rest_in_the_background(workspace, monkeypatch):
    import time

    import coldrec.workspace as workspace_module
    from coldrec.graph import distributions
    from coldrec.workspace import Workspace

    monkeypatch.setattr(workspace_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    workspace.classifier()
    deadline = time.time() + 30
    while workspace.refitting() and time.time() < deadline:
        time.sleep(0.05)
    asked = []
    real = Workspace._refit_in_background
    monkeypatch.setattr(Workspace, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))
    workspace.label("C2", "Footwear", who="ana")
    local = workspace.classifier()
    assert asked == [(True, False)]  # the prototype shift is left for the background
    fresh = Workspace(workspace.store, workspace.encoder, workspace.settings).classifier()
    gap_before = np.abs(distributions(local._fit.state) - distributions(fresh._fit.state)).max()
    epoch = workspace._refit_epoch
    real(workspace, True, False)
    deadline = time.time() + 30
    while workspace.refitting() and time.time() < deadline:
        time.sleep(0.05)
    assert workspace._refit_epoch == epoch + 1 and not workspace.refitting()
    gap_after = np.abs(distributions(workspace.classifier()._fit.state) - distributions(fresh._fit.state)).max()
    assert gap_after < 1e-3 and gap_after <= gap_before
    # the model a session was reading is unchanged (consistent), the next read gets the new one
    assert np.abs(distributions(local._fit.state) - distributions(fresh._fit.state)).max() == gap_before


def test_similar_catalog_items_skip_uploads_that_crowd_the_neighbourhood(workspace):
    crowd = pd.DataFrame({"item_id": [f"u{i}" for i in range(40)], "title": ["steel frying pan"] * 40,
                          "description": [f"pan {i}" for i in range(40)]})
    workspace.add_upload(crowd, batch="crowd")
    catalog = set(workspace.store.items(source="catalog")["item_id"])
    vectors = workspace.embed_items(crowd.iloc[:3])
    found = workspace.similar_catalog_items(vectors, k=5, exclude=["u0", "u1", "u2"])
    assert [len(hits) for hits in found] == [5, 5, 5]
    assert all(item_id in catalog for hits in found for item_id, _ in hits)
    assert all([s for _, s in hits] == sorted((s for _, s in hits), reverse=True) for hits in found)


def test_prepare_saves_the_index_with_every_neighbour_and_stores_the_map(workspace, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    done = workspace.prepare()
    assert done == {"items": 12, "searched": 12}
    assert workspace.prepare()["searched"] == 0  # nothing left to search
    assert workspace.store.query_df("SELECT count(*) AS n FROM projections").loc[0, "n"] == 12
    path = workspace.store.path
    workspace.close()
    with Workspace(Store(path), tiny_encoder) as again:  # a restart loads the search instead of redoing it
        assert again.item_index().neighbours_searched == 12
        assert again.prepare()["searched"] == 0


# -- found in review: each once failed or lost data --------------------------------------------
def test_importing_names_only_keeps_descriptions_and_a_cleared_path_is_saved(workspace):
    before = workspace.store.categories().set_index("name")
    workspace.import_categories(pd.DataFrame({"name": ["Cookware"]}))
    after = workspace.store.categories().set_index("name")
    assert after.loc["Cookware", "description"] == before.loc["Cookware", "description"]
    workspace.import_categories(pd.DataFrame({"name": ["Cookware"], "path": [""]}))
    assert pd.isna(workspace.store.categories().set_index("name").loc["Cookware", "path"])


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"title": ["x"]}), "needs a 'name' column"),
        (pd.DataFrame({"name": ["Toys", "toys"]}), "repeated category name"),
        (pd.DataFrame({"name": ["Toys", ""]}), "empty name in row(s) 2"),
    ],
)
def test_bad_category_files_are_refused_whole(workspace, table, message):
    before = workspace.store.categories()
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        workspace.import_categories(table, "cats.csv")
    pd.testing.assert_frame_equal(workspace.store.categories(), before)


def test_running_init_again_keeps_labels_people_changed(workspace, tmp_path):
    workspace.label("C1", "Footwear", who="ana")
    workspace.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    assert workspace.store.labels().set_index("item_id").loc["C1", "category"] == "Footwear"
    assert workspace.store.get_meta("initialised") == "1"


def test_importing_the_same_purchases_twice_adds_nothing(workspace):
    data = b"user_id,item_id,order_number\nu1,C1,1\nu1,C2,2\n"
    assert workspace.import_interactions(data, "p.csv") == 2
    assert workspace.import_interactions(data, "p.csv") == 0
    assert workspace.store.stats()["interactions"] == 2


def test_upload_with_a_category_column_imports_known_labels_and_warns_about_others(workspace):
    items = load_items(b"id,title,category\nn1,steel pan,Cookware\nn2,red kite,Kites\n", "new.csv")
    _, warnings = workspace.upload_and_predict(items, "b1", who="ana")
    labels = workspace.store.labels().set_index("item_id")
    assert labels.loc["n1", "category"] == "Cookware" and labels.loc["n1", "source"] == "import"
    assert "n2" not in labels.index and "'Kites'" in warnings[0]


def test_upload_reusing_a_catalog_id_is_refused_before_anything_is_stored(workspace):
    def saved():  # what users entered; the embedding cache may grow
        return {k: v for k, v in workspace.store.stats().items() if k != "cached_vectors"}

    before = saved()
    items = load_items(b"id,title\nnew1,wok lid\nC1,wok\n", "new.csv")
    with pytest.raises(StoreError, match="'C1'"):
        workspace.upload_and_predict(items, "b1")
    assert saved() == before and workspace.store.items().set_index("item_id").loc["C1", "title"] == "steel frying pan"


def test_purchase_ids_with_gaps_and_fractional_orders(workspace):
    from coldrec.audience import load_interactions

    frame = pd.DataFrame({"user_id": [1.0, 2.0, None], "item_id": ["C1", "C2", "C3"]})
    with pytest.raises(IngestError, match="empty user or item id in row\\(s\\) 3"):
        load_interactions(_parquet(frame), "p.parquet")
    ok = load_interactions(_parquet(frame.iloc[:2]), "p.parquet")
    assert ok["user_id"].tolist() == ["1", "2"]
    with pytest.raises(IngestError, match="whole numbers"):
        load_interactions(b"user_id,item_id,order_number\nu,C1,1.5\n", "p.csv")


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def test_a_background_refit_waits_while_a_click_is_being_served(workspace, monkeypatch):
    import time

    import coldrec.workspace as workspace_module
    from coldrec.workspace import Workspace

    monkeypatch.setattr(workspace_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    asked = []
    real = Workspace._refit_in_background
    monkeypatch.setattr(Workspace, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))
    workspace.classifier()
    workspace.label("C2", "Footwear", who="ana")
    workspace.classifier()
    epoch = workspace._refit_epoch
    with workspace.background.foreground():  # a click in progress (another session's rerun)
        real(workspace, True, True)
        time.sleep(1.0)
        assert workspace.refitting() and workspace._refit_epoch == epoch  # it waits for the click
    deadline = time.time() + 30
    while workspace.refitting() and time.time() < deadline:
        time.sleep(0.05)
    assert workspace._refit_epoch == epoch + 1  # and lands once the click is done


def test_closing_stops_a_background_refit_mid_way(workspace, monkeypatch):
    import coldrec.workspace as workspace_module

    monkeypatch.setattr(workspace_module, "EXACT_MAX_ITEMS", 0)
    workspace.classifier()
    workspace.background.close(timeout=5)  # the refit the fit asked for (beta), if still running
    with workspace.background.foreground():  # held at its first step ...
        workspace._refit_in_background(True, True)
        assert workspace.refitting()
        workspace.background.close(timeout=5)  # ... until the close cancels it
    assert not workspace.background.running("refit") and not workspace.refitting()
