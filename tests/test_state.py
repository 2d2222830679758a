"""Where derived state lives (issue 21): every model-derived view follows a model switch, caches are
keyed in one place, and per-rerun threads do not pile up database cursors."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from coldrec.encoder import embed_texts
from coldrec.ingest import item_text


class RotatedEncoder:
    """Another model with the same dimension: the tiny model's vectors, permuted and sign-flipped."""

    def __init__(self, base) -> None:  # noqa: ANN001 - the tiny encoder
        self.base = base
        self.name, self.dim, self.device = base.name + "+rotated", base.dim, base.device
        rng = np.random.default_rng(7)
        self.perm = rng.permutation(base.dim)
        self.signs = np.where(rng.random(base.dim) < 0.5, -1.0, 1.0).astype(np.float32)

    def encode(self, texts, progress=None):  # noqa: ANN001, ANN201
        return self.base.encode(texts, progress)[:, self.perm] * self.signs


def test_a_model_switch_replaces_the_item_index_vectors(workspace):
    old = workspace.vectors.item_index()
    workspace.vectors.similar_catalog_items(old.vectors[:1], k=3)  # the index is built and in use
    rotated = RotatedEncoder(workspace.encoder)
    workspace.models.use_encoder(rotated)
    index = workspace.vectors.item_index()
    items = workspace.catalog.items()
    expected = rotated.encode([item_text(t, d) for t, d in zip(items["title"], items["description"])])
    rows = [index.row_of(i) for i in items["item_id"]]
    np.testing.assert_allclose(index.vectors[rows], expected, atol=1e-5)
    # and the neighbours served are the new model's
    query = expected[:1]
    found = workspace.vectors.similar_catalog_items(query, k=1, exclude=[None])[0][0]
    assert found[0] == items["item_id"].iloc[0] and found[1] > 0.999


def test_embedding_coverage_follows_the_embedding_cache(workspace):
    workspace.store.upsert_items(
        pd.DataFrame({"item_id": ["u1"], "title": ["brand new kettle"], "description": [""]}), source="upload", batch="b"
    )
    assert workspace.vectors.embedding_coverage() == {"items": 13, "embedded": 12}
    # another process (``coldrec embed``) fills the cache: the items did not change, the coverage did
    embed_texts(workspace.encoder, [item_text("brand new kettle", "")], cache=workspace.store)
    assert workspace.vectors.embedding_coverage() == {"items": 13, "embedded": 13}


def test_batch_predictions_follow_a_model_switch(workspace):
    workspace.store.upsert_items(
        pd.DataFrame({"item_id": ["u1"], "title": ["steel frying pan"], "description": [""]}), source="upload", batch="b"
    )
    first = workspace.predictor.batch_predictions("b")
    assert workspace.predictor.batch_predictions("b") is first  # kept while nothing changed
    rotated = RotatedEncoder(workspace.encoder)
    workspace.models.use_encoder(rotated)
    after = workspace.predictor.batch_predictions("b")
    np.testing.assert_allclose(after.vectors, rotated.encode(["steel frying pan"]), atol=1e-5)


def test_threads_share_a_bounded_pool_of_cursors(store):
    def read() -> None:
        store.stats()

    for _ in range(40):  # Streamlit runs every rerun on a new thread
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert len(store._cursors) <= 2


def test_an_upload_predicts_its_batch_once(app_env, monkeypatch):
    from coldrec.services.predictor import PredictorService
    from tests.test_pages import _page, _upload

    calls = []
    real_predict = PredictorService.predict

    def counting(self, items, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(len(items))
        return real_predict(self, items, *args, **kwargs)

    monkeypatch.setattr(PredictorService, "predict", counting)
    at = _upload(_page("pages/upload.py"))
    assert not at.exception, at.exception
    assert calls == [3]  # the page shows the batch the upload computed
    at.run()  # a later rerun (a row selected, a download) predicts nothing either
    assert calls == [3]


def test_a_view_is_keyed_on_what_it_depends_on_and_nothing_else(workspace):
    from coldrec.services.state import Depends

    state, builds = workspace.state, []

    def build() -> int:
        builds.append(1)
        return len(builds)

    assert state.memo("by items", Depends.ITEMS, build) == 1
    workspace.labels.label("C1", "Footwear", who="ana")  # a label: not an input of this view
    assert state.memo("by items", Depends.ITEMS, build) == 1
    assert state.memo("by labels", Depends.LABELS, build) == 2
    workspace.labels.label("C1", "Cookware", who="ana")
    assert state.memo("by labels", Depends.LABELS, build) == 3
    assert state.memo("by labels", Depends.LABELS, build, extra=("another argument",)) == 4


def test_one_view_cannot_be_keyed_two_ways(workspace):
    import pytest

    from coldrec.services.state import Depends

    workspace.state.memo("coverage", Depends.MODEL | Depends.ITEMS, lambda: 1)
    with pytest.raises(ValueError, match="coverage"):  # the second key would never hit (issue 21, bug 2)
        workspace.state.memo("coverage", Depends.MODEL, lambda: 2)


def test_a_model_switch_drops_every_cached_value_and_held_object(workspace):
    from coldrec.services.state import Depends

    workspace.predictor.current_predictions()
    workspace.state.memo("a view", Depends.ITEMS, lambda: "old")
    assert workspace.state.held("classifier") is not None and workspace.state.held("item_index") is not None
    workspace.models.use_encoder(RotatedEncoder(workspace.encoder))
    assert workspace.state.held("classifier") is None and workspace.state.held("item_index") is None
    assert workspace.state.memo("a view", Depends.ITEMS, lambda: "new") == "new"
    assert workspace.state.version()[0] == workspace.encoder.name


def test_every_view_that_shows_predictions_follows_a_background_refit(workspace):
    from coldrec.services.state import Depends

    before = workspace.state.key(Depends.PREDICTIONS)
    workspace.state.refit_landed()
    assert workspace.state.key(Depends.PREDICTIONS) != before
    assert workspace.state.key(Depends.MODEL | Depends.ITEMS) == workspace.state.key(Depends.MODEL | Depends.ITEMS)
