"""Vectors (coldrec/services/vectors.py): the embedding cache, the saved item index, similar catalog items."""

from __future__ import annotations

import numpy as np
import pandas as pd



def test_reuploading_the_same_products_never_re_embeds_them(workspace):
    calls = []
    real_encode = workspace.encoder.encode

    class Spy:
        name, dim, device = workspace.encoder.name, workspace.encoder.dim, workspace.encoder.device

        def encode(self, texts, progress=None):
            calls.append(len(texts))
            return real_encode(texts, progress)

    workspace.models.use_encoder(Spy())
    items = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["wool jacket", "linen shirt"], "description": ["", ""]})
    workspace.predictor.predict(items)
    assert sum(calls) >= 2
    calls.clear()
    workspace.predictor.predict(items.assign(item_id=["again1", "again2"]))
    assert calls == []


def test_item_index_is_saved_beside_the_database_and_reloaded(workspace, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    index = workspace.vectors.item_index()
    assert len(index) == len(workspace.store.items())
    folder = workspace.vectors.index_folder()
    assert folder is not None and (folder / "manifest.json").exists()
    assert str(folder).startswith(str(workspace.store.path))  # beside the database file
    path, settings = workspace.store.path, workspace.settings
    workspace.close()
    with Workspace(Store(path), tiny_encoder, settings) as again:
        reloaded = again.vectors.item_index()
        assert reloaded is not index and reloaded.ids == index.ids
        np.testing.assert_allclose(reloaded.vectors, index.vectors)


def test_similar_catalog_items_skip_uploads_that_crowd_the_neighbourhood(workspace):
    crowd = pd.DataFrame({"item_id": [f"u{i}" for i in range(40)], "title": ["steel frying pan"] * 40,
                          "description": [f"pan {i}" for i in range(40)]})
    workspace.imports.add_upload(crowd, batch="crowd")
    catalog = set(workspace.store.items(source="catalog")["item_id"])
    vectors = workspace.vectors.embed_items(crowd.iloc[:3])
    found = workspace.vectors.similar_catalog_items(vectors, k=5, exclude=["u0", "u1", "u2"])
    assert [len(hits) for hits in found] == [5, 5, 5]
    assert all(item_id in catalog for hits in found for item_id, _ in hits)
    assert all([s for _, s in hits] == sorted((s for _, s in hits), reverse=True) for hits in found)


def test_prepare_saves_the_index_with_every_neighbour_and_stores_the_map(workspace, tiny_encoder):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    done = workspace.vectors.prepare()
    assert done == {"items": 12, "searched": 12}
    assert workspace.vectors.prepare()["searched"] == 0  # nothing left to search
    assert workspace.store.query_df("SELECT count(*) AS n FROM projections").loc[0, "n"] == 12
    path = workspace.store.path
    workspace.close()
    with Workspace(Store(path), tiny_encoder) as again:  # a restart loads the search instead of redoing it
        assert again.vectors.item_index().neighbours_searched == 12
        assert again.vectors.prepare()["searched"] == 0
