"""The fitted predictor state saved beside the index (coldrec/predictor_state.py): a restart reuses
it only when it was fitted on exactly what the workspace holds, and never trusts a damaged file."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import coldrec.estimator as estimator_module
from coldrec import predictor_state
from coldrec.store import Store
from coldrec.workspace import Workspace


@pytest.fixture
def propagations(monkeypatch):
    """How many times the estimator propagated (a fit does at least one; a reload none)."""
    calls = []
    real = estimator_module.propagate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator_module, "propagate", counted)
    return calls


def _restart(workspace: Workspace, encoder=None) -> Workspace:
    path, settings = workspace.store.path, workspace.settings
    encoder = encoder or workspace.encoder
    workspace.close()
    return Workspace(Store(path), encoder, settings)


def _state_file(workspace: Workspace):
    return workspace.vectors.index_folder() / predictor_state.FILE_NAME


def _loads(workspace: Workspace) -> bool:
    """Whether the saved state would be used for what ``workspace`` holds now."""
    model, fitted = workspace.predictor.classifier(), workspace.predictor._classifier
    return workspace.predictor._restore_predictor(fitted.index, fitted.categories_key, workspace.store.label_version(),
                                        model.labelled_rows_, model._require_fit().labelled_classes) is not None


NEW = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["steel frying pan", "dog food pack"], "description": ["", ""]})


def test_a_restart_reuses_the_saved_state_and_predicts_the_same(workspace, propagations):
    before = workspace.predictor.current_predictions()
    batch_before = workspace.predictor.predict(NEW)
    distributions_before = workspace.predictor.classifier().label_distributions_
    assert _state_file(workspace).exists() and propagations  # the first fit propagated, and was saved
    propagations.clear()
    with _restart(workspace) as again:
        pd.testing.assert_frame_equal(again.predictor.current_predictions(), before)
        assert propagations == []  # nothing was refitted: the saved state was used
        np.testing.assert_array_equal(again.predictor.classifier().label_distributions_, distributions_before)
        batch = again.predictor.predict(NEW)
        assert [p.top for p in batch.predictions] == [p.top for p in batch_before.predictions]
        assert [p.evidence for p in batch.predictions] == [p.evidence for p in batch_before.predictions]
        assert [(p.unsure, p.novel) for p in batch.predictions] == [(p.unsure, p.novel) for p in batch_before.predictions]
        # ... and it keeps learning: a label after the restart updates it as before
        again.labels.label("C2", "Footwear", who="ana")
        assert again.predictor.current_predictions().set_index("item_id").loc["C2", "predicted"] == "Footwear"


def test_a_label_given_while_closed_invalidates_the_saved_state(workspace, propagations, caplog):
    workspace.predictor.current_predictions()
    path = workspace.store.path
    encoder, settings = workspace.encoder, workspace.settings
    workspace.close()
    with Store(path) as store:  # another process (the CLI) labels in between
        store.label("C2", "Footwear", who="cli")
    propagations.clear()
    with caplog.at_level(logging.INFO, logger="coldrec"), Workspace(Store(path), encoder, settings) as again:
        shown = again.predictor.current_predictions().set_index("item_id")
        assert propagations  # refitted ...
        assert shown.loc["C2", "predicted"] == "Footwear"  # ... on the new label
    assert "not used (it was fitted on other label_version)" in caplog.text


def test_new_items_or_changed_categories_invalidate_the_saved_state(workspace, propagations, caplog):
    workspace.predictor.current_predictions()
    again = _restart(workspace)
    again.imports.add_upload(NEW, batch="b")  # the item set changed
    propagations.clear()
    with caplog.at_level(logging.INFO, logger="coldrec"):
        shown = again.predictor.current_predictions()
    assert propagations and set(NEW["item_id"]) <= set(shown["item_id"])
    again = _restart(again)
    again.store.upsert_categories(pd.DataFrame({"name": ["Cookware"], "description": ["cast iron and steel pans"]}))
    propagations.clear()
    with caplog.at_level(logging.INFO, logger="coldrec"):
        again.predictor.current_predictions()
    assert propagations
    assert "fitted on other categories" in caplog.text
    again.close()


def test_another_model_never_uses_this_models_state(workspace, propagations, tiny_encoder):
    workspace.predictor.current_predictions()
    saved = _state_file(workspace).read_bytes()

    class Renamed:  # the same vectors under another model's name (a fine-tuned version, say)
        name, dim, device = "another-model", tiny_encoder.dim, tiny_encoder.device

        def encode(self, texts, progress=None):
            return tiny_encoder.encode(texts, progress)

    again = _restart(workspace, Renamed())
    folder = again.vectors.index_folder()
    assert folder != workspace.vectors.index_folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / predictor_state.FILE_NAME).write_bytes(saved)  # even copied into its folder
    propagations.clear()
    again.predictor.current_predictions()
    assert propagations
    again.close()


@pytest.mark.parametrize("field", ["binding", "model", "dim", "items", "rows", "label_version", "categories", "estimator"])
def test_every_part_of_the_key_must_match(workspace, field, caplog):
    model = workspace.predictor.classifier()
    fitted = workspace.predictor._classifier
    index = fitted.index
    key = workspace.predictor._predictor_key(index, len(index.ids), fitted.label_version, fitted.categories_key)
    rows, classes = model.labelled_rows_, model._require_fit().labelled_classes
    assert predictor_state.load(workspace.vectors.index_folder(), key, index, rows, classes) is not None
    other = replace(key, **{field: getattr(key, field) + (1 if isinstance(getattr(key, field), int) else "x")})
    with caplog.at_level(logging.INFO, logger="coldrec"):
        assert predictor_state.load(workspace.vectors.index_folder(), other, index, rows, classes) is None
    assert f"fitted on other {field}" in caplog.text
    moved = classes.copy()
    moved[0] = (moved[0] + 1) % len(model.classes_)  # same event id, other classes: still refused
    assert predictor_state.load(workspace.vectors.index_folder(), key, index, rows, moved) is None


def test_the_key_follows_each_rows_id_text_and_liveness(workspace):
    index = workspace.vectors.item_index()
    digest = predictor_state.items_digest(index, len(index.ids))
    assert predictor_state.items_digest(index, len(index.ids) - 1) != digest
    index.hashes[3], kept = "other text", index.hashes[3]
    assert predictor_state.items_digest(index, len(index.ids)) != digest
    index.hashes[3] = kept
    index.alive[3] = False
    assert predictor_state.items_digest(index, len(index.ids)) != digest
    index.alive[3] = True
    assert predictor_state.items_digest(index, len(index.ids)) == digest


@pytest.mark.parametrize("damage", ["truncated", "garbled", "empty", "not a zip"])
def test_a_damaged_file_is_ignored_with_a_reason_and_replaced(workspace, propagations, caplog, damage):
    before = workspace.predictor.current_predictions()
    path = _state_file(workspace)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbled":  # bytes inside an array changed: the zip's CRC catches it
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("a predictor, honest")
    propagations.clear()
    with caplog.at_level(logging.INFO, logger="coldrec"):
        again = _restart(workspace)
        pd.testing.assert_frame_equal(again.predictor.current_predictions(), before)
    assert propagations  # refitted rather than trusted
    assert "the saved predictor state was not used" in caplog.text
    assert _loads(again)  # a good file was written in its place
    again.close()


def test_a_crash_while_saving_leaves_the_previous_file(workspace, monkeypatch):
    workspace.predictor.current_predictions()
    path = _state_file(workspace)
    previous = path.read_bytes()

    def crash(fh, **arrays):
        fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(predictor_state.np, "savez", crash)
    fitted = workspace.predictor._classifier
    assert workspace.predictor._save_predictor(fitted, (False, False)) is None
    assert path.read_bytes() == previous  # the rename never happened
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_pending_background_work_is_resumed_after_a_restart(workspace, monkeypatch, propagations):
    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # a large workspace: beta is fitted in the background
    asked = []
    monkeypatch.setattr(predictor_module.PredictorService, "_refit_in_background", lambda self, state, calibration: asked.append((state, calibration)))
    first = workspace.predictor.classifier()
    assert asked == [(False, True)] and first._fit.beta_fitted is False
    again = _restart(workspace)
    propagations.clear()
    restored = again.predictor.classifier()
    assert propagations == []  # the saved state (with the label-free beta) ...
    assert asked == [(False, True), (False, True)]  # still to do: asked again after the restart
    assert restored._fit.beta == first._fit.beta
    again.close()


def test_the_graphs_text_view_is_saved_restored_and_its_settings_bind_the_state(workspace, monkeypatch, propagations):
    """The workspace fits the text view on its items' texts; a restart restores the same fitted
    model (no refit); a change to how the view is built (a constant of coldrec.text_features)
    invalidates the saved state."""
    from coldrec import text_features

    topics = workspace.predictor.classifier()._require_fit().topics
    assert topics is not None and topics.dims >= 2
    propagations.clear()
    with _restart(workspace) as again:
        restored = again.predictor.classifier()._require_fit().topics
        assert propagations == []
        np.testing.assert_array_equal(restored.components, topics.components)
        assert list(restored.ngrams) == list(topics.ngrams)
        key = lambda: again.predictor._predictor_key(  # noqa: E731
            again.predictor._classifier.index, len(again.predictor._classifier.index.ids),
            again.predictor._classifier.label_version, again.predictor._classifier.categories_key)
        before = key()
        monkeypatch.setattr(text_features, "MAX_DIMS", 8)
        assert key().estimator != before.estimator and replace(key(), estimator=before.estimator) == before


def test_labels_given_before_a_close_are_saved_with_the_refit_still_pending(workspace, monkeypatch, propagations):
    """A large workspace's labels update the model locally and leave the full refit to the
    background; closing before it lands saves that model, so the next start loads it (no fit from
    scratch: two minutes at a million items) and resumes the refit."""
    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # a large workspace: labels update locally
    asked = []
    monkeypatch.setattr(predictor_module.PredictorService, "_refit_in_background",
                        lambda self, state, calibration: (asked.append((state, calibration)),
                                                          setattr(self, "_pending_state", self._pending_state or state)))
    now = workspace.predictor.current_predictions().set_index("item_id")["predicted"]
    items = workspace.catalog.items()
    names = workspace.store.category_names()
    given = {item_id: next(c for c in names if c != now[item_id]) for item_id in items["item_id"][:2]}
    for item_id, category in given.items():
        workspace.labels.label(item_id, category, who="test")
        workspace.predictor.classifier()
    before = workspace.predictor.current_predictions()
    assert len(given) == 2 and before.set_index("item_id")["predicted"][list(given)].tolist() == list(given.values())
    assert asked[-1][0] is True  # the labels left the full propagation to the background
    asked.clear()
    again = _restart(workspace)
    propagations.clear()
    pd.testing.assert_frame_equal(again.predictor.current_predictions(), before)
    assert propagations == []  # loaded, not fitted again
    assert asked and asked[0][0] is True  # the full propagation the labels left is asked for again
    again.close()


def test_a_state_fitted_on_the_older_narrower_candidate_table_is_refitted(workspace, monkeypatch, propagations, caplog):
    """A large workspace's graph comes from the index's kept candidates: a state saved when they
    were GRAPH_K + 1 (before the table was widened) is fitted on another graph, so it is not used."""
    from coldrec.graph import GRAPH_K

    wide = predictor_state.GRAPH_CANDIDATES
    monkeypatch.setattr(predictor_state, "GRAPH_CANDIDATES", GRAPH_K + 1)  # what a state saved before carried
    workspace.predictor.current_predictions()
    monkeypatch.setattr(predictor_state, "GRAPH_CANDIDATES", wide)
    propagations.clear()
    with caplog.at_level(logging.INFO, logger="coldrec"), _restart(workspace) as again:
        again.predictor.current_predictions()
        assert propagations  # refitted, not restored
        assert _loads(again)  # and the state saved now is the one the next start uses
