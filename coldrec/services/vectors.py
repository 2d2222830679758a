"""Vectors of the serving model: embedding items (through the embedding cache), the neighbour
index over every stored item (kept up to date, saved beside the database) and the catalog items
most similar to a vector."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoder import ProgressFn, TextEncoder, embed_texts, text_hash
from ..ingest import item_text
from ..neighbours import VectorIndex
from .catalog import CatalogService
from .state import Depends, State


class VectorService:
    """Item vectors and the item index (one thread updates the index at a time)."""

    def __init__(self, state: State, catalog: CatalogService) -> None:
        self._state = state
        self.store = state.store
        self._catalog = catalog
        # One thread brings the index up to date at a time; searches read it under its own lock.
        self._index_lock = threading.Lock()
        #: Why the saved neighbour index was rebuilt at the last load (``None``: it was not).
        self.index_notice: str | None = None

    @property
    def encoder(self) -> TextEncoder:
        return self._state.encoder

    def embed_items(self, items: pd.DataFrame, progress: ProgressFn | None = None) -> np.ndarray:
        """Unit vectors for items (title + description), from the cache where possible."""
        descriptions = items["description"] if "description" in items else [""] * len(items)
        texts = [item_text(t, d) for t, d in zip(items["title"], descriptions)]
        return embed_texts(self.encoder, texts, cache=self.store, progress=progress)

    def item_vectors(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Every stored item (with its current label) and its unit vector, in store order."""

        items = self._catalog.items()

        def build() -> tuple[list[str], np.ndarray]:
            return items["item_id"].tolist(), self.embed_items(items)

        ids, vectors = self._state.memo("item_vectors", Depends.MODEL | Depends.ITEMS, build)
        if ids != items["item_id"].tolist():  # the cached vectors belong to another item list
            ids, vectors = build()
            self._state.put("item_vectors", Depends.MODEL | Depends.ITEMS, (ids, vectors))
        return items, vectors

    def item_index(self, progress: ProgressFn | None = None) -> VectorIndex:
        """The neighbour index over every stored item (catalog and uploads) for the current model.

        Kept up to date incrementally (new and re-embedded items) and saved beside the database,
        so a restart loads it instead of rebuilding it. ``progress`` follows a (re)build.
        """
        key = self._state.key(Depends.MODEL | Depends.ITEMS)
        held = self._state.held("item_index")
        if held is not None and held[0] == key:  # type: ignore[index]
            return held[1]  # type: ignore[index]
        with self._index_lock:
            return self._updated_index(progress)

    def _updated_index(self, progress: ProgressFn | None) -> VectorIndex:
        key = self._state.key(Depends.MODEL | Depends.ITEMS)
        kept = self._state.held("item_index")
        if kept is not None and kept[0] == key:  # type: ignore[index]
            return kept[1]  # type: ignore[index]  # another thread brought it up to date meanwhile
        items, vectors = self.item_vectors()
        hashes = [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])]
        ids = items["item_id"].tolist()
        # The in-memory index is updated in place only for the same model (items were added or
        # edited); another model's vectors must not survive in the rows whose text did not change.
        index = kept[1] if kept is not None and kept[0][0] == key[0] and kept[1].dim == vectors.shape[1] else None  # type: ignore[index]
        folder = self.index_folder()
        if index is None and folder is not None:
            index, why = VectorIndex.load_checked(folder, binding=self.index_binding())
            if index is not None:
                why = _index_mismatch(index, ids, hashes, vectors)
                index = None if why else index
            if why and why != "no saved index":
                self.index_notice = f"the saved neighbour index was not used ({why}); it was rebuilt"
                logging.getLogger("coldrec").warning("%s: %s", folder, self.index_notice)
        if index is None:
            index = VectorIndex.build(ids, vectors, hashes, progress=progress)
            changed = len(ids)
        else:
            changed = index.update(ids, vectors, hashes)
            gone = set(index.ids) - set(ids)
            changed += index.remove(sorted(gone)) if gone else 0
        if changed:
            self.save_index(index)
        self._state.hold("item_index", (key, index))
        return index

    def save_index(self, index: VectorIndex) -> None:
        """Save the index beside the database (nothing for an in-memory database or a read-only folder)."""
        folder = self.index_folder()
        if folder is None:
            return
        try:
            index.save(folder, binding=self.index_binding())
        except OSError:  # a read-only location: the index still works, it is rebuilt next start
            pass

    def index_binding(self) -> str:
        """The id that binds a saved index to this database (made once, kept in ``meta``); an index
        saved for another database file is never loaded for this one."""
        binding = self.store.get_meta("index_binding")
        if binding is None and not self.store.read_only:
            import uuid

            binding = uuid.uuid4().hex
            self.store.set_meta("index_binding", binding, bump=False)  # a record, not a setting
        return binding or ""

    def index_folder(self) -> Path | None:
        """Where the item index of the current model is saved: beside the database file."""
        path = str(self.store.path)
        if path == ":memory:" or not path:
            return None
        import hashlib

        model = hashlib.sha256(self.encoder.name.encode("utf-8")).hexdigest()[:16]
        return Path(path + ".index") / model

    def prepare(self, progress: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
        """Do now what the first prediction would otherwise wait for: embed every item, build the
        item index and search each item's neighbours (the graph's edges), saved beside the
        database, and store Explore's PCA map. ``coldrec init`` runs it (at a million items it is the nightly job's longest
        step), so the dashboard opens on a prepared workspace. ``progress(step, done, total)``.
        Returns ``{"items", "searched"}`` (items whose neighbours were searched now)."""
        from ..graph import GRAPH_K
        from ..projection import stored_projection

        def step(name: str) -> ProgressFn | None:
            return None if progress is None else (lambda done, total: progress(name, done, total))

        items, vectors = self.item_vectors()
        index = self.item_index(progress=step("building the neighbour index"))
        before = index.neighbours_searched
        index.neighbour_table(GRAPH_K + 1, progress=step("finding each item's neighbours"))
        if index.neighbours_searched > before:
            self.save_index(index)
        if len(items):  # Explore's map (PCA), stored in the database
            stored_projection(self.store, self.encoder.name, "pca", items["item_id"].tolist(), vectors)
        return {"items": len(items), "searched": index.neighbours_searched - before}

    def similar_catalog_items(
        self, vectors: np.ndarray, k: int = 5, exclude: list[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each vector the ``k`` most similar catalog items ``(item_id, cosine)``, skipping the
        query's own id in ``exclude``. Searches the item index (no second index over the catalog:
        at a million items that would be another 20-minute build) and keeps catalog rows."""
        index = self.item_index()

        def catalog_rows() -> np.ndarray:
            mask = np.zeros(len(index.alive), dtype=bool)
            for item_id in self.store.items(source="catalog")["item_id"]:
                row = index.row_of(item_id)
                if row is not None:
                    mask[row] = True
            return mask

        is_catalog = self._state.memo("catalog_rows", Depends.MODEL | Depends.ITEMS, catalog_rows,
                                      extra=(len(index.alive),))
        wanted = np.arange(len(vectors))
        out: list[list[tuple[str, float]]] = [[] for _ in wanted]
        fetch = 4 * k + 1
        while len(wanted):
            rows, sims = index.search_rows(vectors[wanted], min(fetch, len(index)))
            short = []
            for q, found_rows, found_sims in zip(wanted, rows, sims):
                own = exclude[q] if exclude is not None else None
                hits = [(index.ids[r], float(s)) for r, s in zip(found_rows, found_sims)
                        if r >= 0 and is_catalog[r] and index.ids[r] != own]
                out[q] = hits[:k]
                if len(hits) < k and found_rows.shape[0] >= fetch and fetch < len(index):
                    short.append(q)  # uploads crowd its neighbourhood: look further
            wanted, fetch = np.array(short, dtype=np.int64), fetch * 4
        return out

    def embedding_coverage(self) -> dict[str, int]:
        """How many stored items already have a vector for the current model."""

        def build() -> dict[str, int]:
            items = self._catalog.items()
            hashes = [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])]
            found = self.store.get_embeddings(self.encoder.name, hashes)
            return {"items": len(items), "embedded": sum(h in found for h in hashes)}

        # Kept until the items, the model or the cache's size change (another process may embed;
        # hashing a million texts takes seconds).
        return dict(self._state.memo("embedding_coverage", Depends.MODEL | Depends.ITEMS | Depends.STORED_VECTORS, build))

    def embedding_counts(self) -> pd.DataFrame:
        """How many vectors the embedding cache holds per model."""
        return self.store.embedding_counts()


def _index_mismatch(index: VectorIndex, ids: list[str], hashes: list[str], vectors: np.ndarray) -> str:
    """Why a loaded index disagrees with the database's items ("" when it agrees): each live row
    of an item that is still stored with the same text must hold that item's stored vector."""
    if index.dim != vectors.shape[1]:
        return f"its vectors have {index.dim} dimensions, the model's {vectors.shape[1]}"
    rows, positions = [], []
    for position, (item_id, text) in enumerate(zip(ids, hashes)):
        row = index.row_of(item_id)
        if row is not None and index.hashes[row] == text:
            rows.append(row)
            positions.append(position)
    step = 50_000  # compared in chunks: at a million items both matrices are 1.5 GB already
    for start in range(0, len(rows), step):
        mine, theirs = rows[start : start + step], positions[start : start + step]
        if not np.allclose(index.vectors[mine], vectors[theirs], atol=1e-5):
            return "its vectors are not this database's"
    return ""
