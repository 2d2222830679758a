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


def test_a_start_on_an_unchanged_catalog_takes_the_saved_hashes_and_an_edited_one_re_embeds(workspace, tiny_encoder, monkeypatch):
    from coldrec.services import vectors as vectors_module
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    workspace.vectors.prepare()
    path, settings = workspace.store.path, workspace.settings
    workspace.close()

    def no_hashing(text):  # the saved index was made for exactly these items: nothing to hash
        raise AssertionError("hashed an item text on an unchanged catalog")

    with monkeypatch.context() as patch:
        patch.setattr(vectors_module, "text_hash", no_hashing)
        with Workspace(Store(path), tiny_encoder, settings) as again:
            assert len(again.vectors.item_index()) == 12 and again.vectors.index_notice is None
    store = Store(path)  # another process edits one item's text
    item = store.items().iloc[[0]][["item_id", "title", "description"]].assign(title="wool winter jacket")
    store.upsert_items(item, source="catalog")
    store.close()
    with Workspace(Store(path), tiny_encoder, settings) as again:
        _, vectors = again.vectors.item_vectors()
        expected = again.vectors.embed_items(again.catalog.items().iloc[[0]])
        np.testing.assert_allclose(vectors[0], expected[0], atol=1e-5)


def test_an_index_saved_with_the_older_narrow_table_is_widened_once_at_the_start_and_saved(workspace, tiny_encoder,
                                                                                           monkeypatch):
    """A workspace prepared before the graph took GRAPH_CANDIDATES: its next start searches the kept
    table again at the new width (vectors kept, nothing re-embedded) and saves it; the start after
    that searches nothing, and the graph's fit takes the saved wide table."""
    from coldrec.graph import GRAPH_CANDIDATES, GRAPH_K
    from coldrec.neighbours import VectorIndex
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    index = workspace.vectors.item_index()
    index.neighbour_table(GRAPH_K + 1)  # what `coldrec init` kept before
    workspace.vectors.save_index(index)
    folder = workspace.vectors.index_folder()
    vectors_file = (folder / "vectors.npy").stat()
    assert VectorIndex.load(folder).table_width == GRAPH_K + 1
    path, settings = workspace.store.path, workspace.settings
    workspace.close()
    with Workspace(Store(path), tiny_encoder, settings) as again:
        assert again.vectors.item_index().table_width == GRAPH_CANDIDATES
    saved = VectorIndex.load(folder)
    assert saved.table_width == GRAPH_CANDIDATES and saved.neighbours_searched == 12
    assert (folder / "vectors.npy").stat().st_ino == vectors_file.st_ino  # only the table (and manifest) rewritten
    monkeypatch.setattr(VectorIndex, "search_rows", lambda *a, **k: (_ for _ in ()).throw(AssertionError("searched")))
    with Workspace(Store(path), tiny_encoder, settings) as third:
        assert third.vectors.item_index().table_width == GRAPH_CANDIDATES
