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

from ..background import Background
from ..encoder import ProgressFn, TextEncoder, embed_texts, text_hash
from ..ingest import item_text
from ..neighbours import VectorIndex
from .catalog import CatalogService
from .state import Depends, State


class VectorService:
    """Item vectors and the item index (one thread updates the index at a time)."""

    def __init__(self, state: State, catalog: CatalogService, background: Background) -> None:
        self._state = state
        self.store = state.store
        self._catalog = catalog
        self._background = background
        # One thread brings the index up to date at a time; searches read it under its own lock.
        self._index_lock = threading.Lock()
        self._load_notice: str | None = None

    @property
    def index_notice(self) -> str | None:
        """Why the saved neighbour index (or its graph) was rebuilt at the last load (``None``: it was not)."""
        held = self._state.held("item_index")
        graph_notice = held[1].graph_notice if held is not None else None  # type: ignore[index]
        return self._load_notice or graph_notice

    @property
    def encoder(self) -> TextEncoder:
        return self._state.encoder

    def embed_items(self, items: pd.DataFrame, progress: ProgressFn | None = None) -> np.ndarray:
        """Unit vectors for items (title + description), from the cache where possible."""
        descriptions = items["description"] if "description" in items else [""] * len(items)
        texts = [item_text(t, d) for t, d in zip(items["title"], descriptions)]
        return embed_texts(self.encoder, texts, cache=self.store, progress=progress)

    def item_hashes(self) -> list[str]:
        """Each stored item's text hash (the key of its vector), in store order (hashing a
        million texts takes seconds: kept until the items change)."""
        items = self._catalog.items()
        return self._state.memo("item_hashes", Depends.ITEMS,
                                lambda: [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])])

    def item_vectors(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Every stored item (with its current label) and its unit vector, in store order.

        The vectors are the item index's rows (the index holds every item), so a start maps
        them from the saved index instead of reading a million vectors from the database."""
        items = self._catalog.items()
        index = self.item_index()

        def build() -> tuple[VectorIndex, np.ndarray]:
            ids = items["item_id"].tolist()
            if len(index.ids) == len(ids) and bool(index.alive.all()) and index.ids == ids:
                return index, index.vectors  # the usual case: the index's rows are the items, in order
            rows = np.array([index.row_of(i) for i in ids], dtype=np.int64)
            return index, index.vectors[rows]

        held, vectors = self._state.memo("item_vectors", Depends.MODEL | Depends.ITEMS, build)
        if held is not index:  # the index was updated in place since (same items key, new rows)
            held, vectors = build()
            self._state.put("item_vectors", Depends.MODEL | Depends.ITEMS, (held, vectors))
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
        items_key, stamp = self._state.key(Depends.ITEMS), _stamp(key)
        items = self._catalog.items()
        ids = items["item_id"].tolist()
        # The in-memory index is updated in place only for the same model (items were added or
        # edited); another model's vectors must not survive in the rows whose text did not change.
        index = kept[1] if kept is not None and kept[0][0] == key[0] else None  # type: ignore[index]
        folder = self.index_folder()
        unchanged = False  # the index holds exactly the stored items, as they are now
        if index is None and folder is not None:
            index, why = VectorIndex.load_checked(folder, binding=self.index_binding())
            if index is not None:
                # Saved for this very catalog (its fingerprint, the key every cache of items uses)
                # and these ids in this order: the saved text hashes are the items', and a start
                # skips hashing a million texts and comparing them.
                unchanged = index.stamp == stamp and bool(index.alive.all()) and index.ids == ids
                if unchanged:
                    self._state.put("item_hashes", Depends.ITEMS, list(index.hashes), key=items_key)
                why = self._index_mismatch(index, items, ids, self.item_hashes())
                index = None if why else index
            if why and why != "no saved index":
                self._load_notice = f"the saved neighbour index was not used ({why}); it was rebuilt"
                logging.getLogger("coldrec").warning("%s: %s", folder, self._load_notice)
            elif index is not None:
                self._read_graph_in_background(index)
        if index is None:
            index = VectorIndex.build(ids, self.embed_items(items), self.item_hashes(), progress=progress)
            changed = len(ids)
        elif unchanged:
            changed = 0
        else:  # embed (through the cache) only the items the index lacks or holds an old text of
            hashes = self.item_hashes()
            todo = index.stale(ids, hashes)
            changed = index.update([ids[i] for i in todo], self.embed_items(items.iloc[todo]),
                                   [hashes[i] for i in todo]) if todo else 0
            gone = set(index.ids) - set(ids) if len(index) != len(ids) or changed else set()
            changed += index.remove(sorted(gone)) if gone else 0
        changed += index.stamp != stamp
        changed += self._widen_table(index, progress)
        index.stamp = stamp
        if changed:
            self.save_index(index)
        self._state.hold("item_index", (key, index))
        return index

    @staticmethod
    def _widen_table(index: VectorIndex, progress: ProgressFn | None) -> bool:
        """Search again, once, the kept neighbour table of an index saved when the graph took
        fewer candidates than :data:`~coldrec.graph.GRAPH_CANDIDATES` (11 before), so that the
        wider table is saved with it. Done here, where the index is loaded, rather than left to
        the first graph fit: a fit's save follows rows searched, not columns, and an upload after
        a restart would otherwise search every row on the click. The vectors and the faiss graph
        stay as they are. Returns whether it widened the table."""
        from ..graph import GRAPH_CANDIDATES

        if not 0 < index.table_width < GRAPH_CANDIDATES:
            return False
        logging.getLogger("coldrec").warning(
            "the saved neighbour index keeps %d neighbours per item, the graph now takes %d: searching them once",
            index.table_width, GRAPH_CANDIDATES)
        index.neighbour_table(GRAPH_CANDIDATES, progress=progress)
        return True

    def _index_mismatch(self, index: VectorIndex, items: pd.DataFrame, ids: list[str], hashes: list[str]) -> str:
        """Why a loaded index disagrees with the database ("" when it agrees): its dimension must
        be the model's, and a sample of its live rows whose item is still stored with the same text
        must hold the vectors the database keeps for those texts. A sample, not every row: files
        mixed in from another index differ everywhere, and comparing a million rows read them all."""
        if index.dim != self.encoder.dim:
            return f"its vectors have {index.dim} dimensions, the model's {self.encoder.dim}"
        rng = np.random.default_rng(len(items))
        picked = rng.permutation(len(items))[: 4 * _MISMATCH_SAMPLE]
        sample = [int(p) for p in picked if (row := index.row_of(ids[p])) is not None and index.hashes[row] == hashes[p]]
        sample = sorted(sample[:_MISMATCH_SAMPLE])
        if not sample:
            return ""
        rows = [index.row_of(ids[p]) for p in sample]
        if not np.allclose(index.vectors[rows], self.embed_items(items.iloc[sample]), atol=1e-5):
            return "its vectors are not this database's"
        return ""

    def _read_graph_in_background(self, index: VectorIndex) -> None:
        """Read the loaded index's graph file now, off the click's thread (the first prediction does
        not wait for it; the first search would), and save a graph rebuilt because it was bad."""
        def read(cancelled: object) -> None:
            index.load_graph()  # a search may have read it first: its notice says what happened
            if index.graph_notice:
                logging.getLogger("coldrec").warning("%s: %s", self.index_folder(), index.graph_notice)
                self.save_index(index)

        self._background.start("index graph", read)

    def save_index(self, index: VectorIndex) -> None:
        """Save the index beside the database (nothing for an in-memory database or a read-only folder)."""
        folder = self.index_folder()
        if folder is None:
            return
        try:
            index.save(folder, binding=self.index_binding())  # with index.stamp: the items it holds
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
        from ..graph import GRAPH_CANDIDATES
        from ..projection import stored_projection

        def step(name: str) -> ProgressFn | None:
            return None if progress is None else (lambda done, total: progress(name, done, total))

        items, vectors = self.item_vectors()
        index = self.item_index(progress=step("building the neighbour index"))
        before = index.neighbours_searched
        index.neighbour_table(GRAPH_CANDIDATES, progress=step("finding each item's neighbours"))
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
            hashes = self.item_hashes()
            return {"items": len(hashes), "embedded": self.store.count_embedded(self.encoder.name, hashes)}

        # Kept until the items, the model or the cache's size change (another process may embed;
        # hashing a million texts takes seconds).
        return dict(self._state.memo("embedding_coverage", Depends.MODEL | Depends.ITEMS | Depends.STORED_VECTORS, build))

    def embedding_counts(self) -> pd.DataFrame:
        """How many vectors the embedding cache holds per model."""
        return self.store.embedding_counts()


def _stamp(key: tuple[object, ...]) -> str:
    """What an index saved for the items of ``key`` (model, catalog fingerprint) records."""
    import json

    return json.dumps([str(part) for part in key])


#: Rows of a loaded index compared with the database's vectors (see VectorService._index_mismatch).
_MISMATCH_SAMPLE = 256
