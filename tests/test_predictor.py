"""The predictor (coldrec/services/predictor.py): predictions with evidence and neighbours, labels feeding back, incremental and background refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.ingest import load_items
from coldrec.store import StoreError


def test_predict_returns_top3_evidence_and_catalog_neighbours(workspace):
    items = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["steel frying pan", "dog food pack"], "description": ["", ""]})
    batch = workspace.predictor.predict(items)
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
    before = workspace.predictor.predict(items).predictions[0]
    target = next(c for c in ["Cookware", "Footwear", "Pet Supplies"] if c != before.category)
    for n in range(6):
        workspace.store.upsert_items(
            pd.DataFrame({"item_id": [f"y{n}"], "title": ["yoga mat"], "description": [""]}), source="upload"
        )
        workspace.labels.label(f"y{n}", target, who="ana")
    after = workspace.predictor.predict(items).predictions[0]
    assert after.category == target


def test_classifier_is_reused_until_labels_change(workspace):
    first = workspace.predictor.classifier()
    assert workspace.predictor.classifier() is first
    workspace.labels.label("C1", "Footwear", who="ana")
    assert workspace.predictor.classifier() is not first


def test_predictions_are_saved_for_stored_items(workspace):
    workspace.store.upsert_items(pd.DataFrame({"item_id": ["u1"], "title": ["wool socks"]}), source="upload", batch="b")
    batch = workspace.predictor.predict(workspace.store.items(batch="b"))
    workspace.predictor.save_predictions(batch)
    saved = workspace.store.predictions(workspace.encoder.name)
    assert saved["item_id"].tolist() == ["u1"] and saved.loc[0, "category"] == batch.predictions[0].category


def test_predict_text_splits_title_and_description(workspace):
    batch = workspace.predictor.predict_text("cast iron skillet\nheavy pan for the oven")
    assert batch.items.loc[0, "title"] == "cast iron skillet"
    assert batch.items.loc[0, "description"] == "heavy pan for the oven"
    assert np.isclose(np.linalg.norm(batch.vectors[0]), 1.0)


def test_an_upload_extends_the_graph_and_its_items_learn_from_labels(workspace):
    before = workspace.predictor.classifier()
    n_before = len(workspace.vectors.item_index().ids)
    items = pd.DataFrame({"item_id": ["u1", "u2"], "title": ["steel frying pan", "dog food pack"], "description": ["", ""]})
    workspace.imports.add_upload(items, batch="b")
    model = workspace.predictor.classifier()
    assert model is not before and len(workspace.vectors.item_index().ids) == n_before + 2
    assert model.label_distributions_.shape[0] == n_before + 2  # the graph grew; nothing was rebuilt from scratch
    # Labelling the upload's twin in the catalog moves the upload's prediction at once.
    first = workspace.predictor.predict(items).predictions[0]
    c1_label = workspace.store.labels().set_index("item_id").loc["C1", "category"]
    target = next(c for c in workspace.store.category_names() if c not in (first.category, c1_label))
    workspace.labels.label("C1", target, who="ana")  # C1 has the same text as u1
    after = workspace.predictor.predict(items).predictions[0]
    assert dict(after.top).get(target, 0.0) > dict(first.top).get(target, 0.0) + 0.03


def test_incremental_refresh_matches_a_fresh_fit(workspace, tiny_encoder):
    from coldrec.workspace import Workspace

    workspace.predictor.classifier()
    for item_id, category in [("C2", "Footwear"), ("F1", "Pet Supplies"), ("P2", "Cookware")]:
        workspace.labels.label(item_id, category, who="ana")
        incremental = workspace.predictor.classifier()
    fresh = Workspace(workspace.store, tiny_encoder, workspace.settings).predictor.classifier()
    from coldrec.graph import distributions

    # The propagation matches; beta is refitted only when the labels grew by a fifth.
    np.testing.assert_allclose(distributions(incremental._fit.state), distributions(fresh._fit.state), atol=0.02)
    assert (incremental.label_distributions_.argmax(axis=1) == fresh.label_distributions_.argmax(axis=1)).all()


def test_large_workspaces_refit_calibration_in_the_background(workspace, monkeypatch):
    import time

    import coldrec.services.predictor as predictor_module
    from coldrec.services.predictor import PredictorService

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    items = pd.DataFrame({"item_id": [f"u{i}" for i in range(4)], "title": ["steel pan", "dog bed", "boot", "wok"],
                          "description": [""] * 4})
    workspace.imports.add_upload(items, batch="b")
    asked = []
    real = PredictorService._refit_in_background
    monkeypatch.setattr(PredictorService, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))

    def finish() -> None:
        real(workspace.predictor, *asked[-1])
        deadline = time.time() + 30
        while workspace.predictor.refitting() and time.time() < deadline:
            time.sleep(0.05)

    first = workspace.predictor.classifier()
    assert asked == [(False, True)] and first._fit.beta_fitted is False  # the label-free beta first ...
    finish()
    assert workspace.state.refit_epoch == 1 and workspace.predictor.classifier()._fit.beta_fitted is True  # ... then the fitted one,
    assert first._fit.beta_fitted is False  # published as a new model: the one a session holds is not written into
    version = workspace.state.version()
    for item_id, category in zip(items["item_id"], ["Cookware", "Pet Supplies", "Footwear", "Cookware"]):
        workspace.labels.label(item_id, category, who="ana")  # 12 -> 16 labels: a third more
    workspace.predictor.classifier()
    assert asked[-1] == (True, True)
    finish()
    assert workspace.state.refit_epoch == 2
    assert workspace.state.version() != version  # views keyed on version() see the new calibration


def test_large_workspaces_update_look_alikes_at_once_and_the_rest_in_the_background(workspace, monkeypatch):
    import time

    import coldrec.services.predictor as predictor_module
    from coldrec.graph import distributions
    from coldrec.services.predictor import PredictorService
    from coldrec.workspace import Workspace

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    workspace.predictor.classifier()
    deadline = time.time() + 30
    while workspace.predictor.refitting() and time.time() < deadline:
        time.sleep(0.05)
    asked = []
    real = PredictorService._refit_in_background
    monkeypatch.setattr(PredictorService, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))
    workspace.labels.label("C2", "Footwear", who="ana")
    local = workspace.predictor.classifier()
    assert asked == [(True, False)]  # the prototype shift is left for the background
    fresh = Workspace(workspace.store, workspace.encoder, workspace.settings).predictor.classifier()
    gap_before = np.abs(distributions(local._fit.state) - distributions(fresh._fit.state)).max()
    epoch = workspace.state.refit_epoch
    real(workspace.predictor, True, False)
    deadline = time.time() + 30
    while workspace.predictor.refitting() and time.time() < deadline:
        time.sleep(0.05)
    assert workspace.state.refit_epoch == epoch + 1 and not workspace.predictor.refitting()
    gap_after = np.abs(distributions(workspace.predictor.classifier()._fit.state) - distributions(fresh._fit.state)).max()
    assert gap_after < 1e-3 and gap_after <= gap_before
    # the model a session was reading is unchanged (consistent), the next read gets the new one
    assert np.abs(distributions(local._fit.state) - distributions(fresh._fit.state)).max() == gap_before


def test_a_landed_background_refit_brings_its_predictions_so_the_next_page_computes_none(workspace, monkeypatch):
    import time

    import coldrec.estimator as estimator_module
    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    items = pd.DataFrame({"item_id": [f"u{i}" for i in range(4)], "title": ["steel pan", "dog bed", "boot", "wok"],
                          "description": [""] * 4})
    workspace.imports.add_upload(items, batch="b")
    first = workspace.predictor.classifier()  # a fresh fit with the label-free beta; the fitted one follows
    workspace.predictor.current_predictions()
    deadline = time.time() + 30
    while workspace.predictor.refitting() and time.time() < deadline:
        time.sleep(0.05)
    assert not workspace.predictor.refitting() and workspace.state.refit_epoch == 1
    assert workspace.predictor.classifier()._fit.beta != first._fit.beta  # every row's probability moved
    computed = []
    real = estimator_module.distributions
    monkeypatch.setattr(estimator_module, "distributions", lambda state: computed.append(len(state)) or real(state))
    shown = workspace.predictor.current_predictions()
    assert sum(computed) == 0  # every row's probability came with the refit
    model = workspace.predictor.classifier()
    model._fit.predicted = None  # the same model computing every row itself
    again = model.fitted_predictions(unsure_below=workspace.settings.unsure_below)
    assert sum(computed) == len(model._fit.state)
    assert shown["predicted"].tolist() == again["predicted"].tolist()
    np.testing.assert_allclose(shown["confidence"].to_numpy(), again["confidence"].to_numpy(), rtol=1e-6)


def test_upload_with_a_category_column_imports_known_labels_and_warns_about_others(workspace):
    items = load_items(b"id,title,category\nn1,steel pan,Cookware\nn2,red kite,Kites\n", "new.csv")
    _, warnings = workspace.predictor.upload_and_predict(items, "b1", who="ana")
    labels = workspace.store.labels().set_index("item_id")
    assert labels.loc["n1", "category"] == "Cookware" and labels.loc["n1", "source"] == "import"
    assert "n2" not in labels.index and "'Kites'" in warnings[0]


def test_upload_reusing_a_catalog_id_is_refused_before_anything_is_stored(workspace):
    def saved():  # what users entered; the embedding cache may grow
        return {k: v for k, v in workspace.store.stats().items() if k != "cached_vectors"}

    before = saved()
    items = load_items(b"id,title\nnew1,wok lid\nC1,wok\n", "new.csv")
    with pytest.raises(StoreError, match="'C1'"):
        workspace.predictor.upload_and_predict(items, "b1")
    assert saved() == before and workspace.store.items().set_index("item_id").loc["C1", "title"] == "steel frying pan"


def test_uploading_a_product_again_moves_it_to_the_new_batch_and_says_so(workspace):
    first = load_items(b"id,title\nn1,wok lid\nn2,kite string\n", "monday.csv")
    _, warnings = workspace.predictor.upload_and_predict(first, "monday")
    assert warnings == []
    again = load_items(b"id,title\nn1,wok lid\nn3,garden hose\n", "tuesday.csv")
    _, warnings = workspace.predictor.upload_and_predict(again, "tuesday")
    assert len(warnings) == 1 and "'n1' (was in 'monday')" in warnings[0] and "'tuesday'" in warnings[0]
    assert "n2" not in warnings[0] and "n3" not in warnings[0]
    batches = workspace.store.upload_batches_of(["n1", "n2", "n3", "C1"])
    assert batches == {"n1": "tuesday", "n2": "monday", "n3": "tuesday"}
    _, warnings = workspace.predictor.upload_and_predict(again, "tuesday")  # the same file into the same batch
    assert warnings == []


def test_a_background_refit_waits_while_a_click_is_being_served(workspace, monkeypatch):
    import time

    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # behave as a large workspace
    asked = []
    service = predictor_module.PredictorService
    real = service._refit_in_background
    monkeypatch.setattr(service, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))
    predictor = workspace.predictor
    predictor.classifier()
    workspace.labels.label("C2", "Footwear", who="ana")
    predictor.classifier()
    epoch = workspace.state.refit_epoch
    with workspace.background.foreground():  # a click in progress (another session's rerun)
        real(predictor, True, True)
        time.sleep(1.0)
        assert predictor.refitting() and workspace.state.refit_epoch == epoch  # it waits for the click
    deadline = time.time() + 30
    while predictor.refitting() and time.time() < deadline:
        time.sleep(0.05)
    assert workspace.state.refit_epoch == epoch + 1  # and lands once the click is done


def test_closing_stops_a_background_refit_mid_way(workspace, monkeypatch):
    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)
    predictor = workspace.predictor
    predictor.classifier()
    workspace.background.close(timeout=5)  # the refit the fit asked for (beta), if still running
    with workspace.background.foreground():  # held at its first step ...
        predictor._refit_in_background(True, True)
        assert predictor.refitting()
        workspace.background.close(timeout=5)  # ... until the close cancels it
    assert not workspace.background.running("refit") and not predictor.refitting()
