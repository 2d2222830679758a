"""Nearest neighbours by cosine similarity: one index behind everything that looks up look-alikes.

:class:`VectorIndex` holds unit vectors keyed by item id. Below :data:`EXACT_MAX_ITEMS` it
searches exactly (one matrix product: a query costs under ~10 ms there and a build costs
nothing); above it builds a faiss HNSW graph (inner product on unit vectors = cosine), which
answers a query in well under a millisecond at a million items with recall@10 >= 0.95
(``benchmarks/bench_neighbours.py``). faiss was chosen over usearch by measurement: at 100k
items on this 2-core machine it built 2.4x faster and answered 2x faster at the same recall.

The index is updated in place when items are added or re-embedded (a changed vector retires its
old row; the index is rebuilt once a fifth of its rows are retired) and can be saved beside the
database and loaded back.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

#: Bytes of similarity scores computed at once by exact search (bounds memory).
_BUDGET = 256 * 1024 * 1024
#: Exact search up to this many items; faiss HNSW above (see the module docstring).
EXACT_MAX_ITEMS = 20_000
#: HNSW links per node, build and search breadth: faiss' usual settings; recall@10 >= 0.99 at 100k.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
#: Rebuild once this share of rows is retired (changed or removed items).
_REBUILD_RETIRED_SHARE = 0.2


def top_k_cosine(queries: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact search: indices and cosines of the ``k`` most similar rows of ``index`` per query, best first.

    Both arrays hold unit vectors. Returns ``(n_queries, min(k, len(index)))`` arrays.
    """
    queries = np.asarray(queries, dtype=np.float32)
    index = np.asarray(index, dtype=np.float32)
    k = min(k, len(index))
    if k <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
    idx_out = np.empty((len(queries), k), dtype=np.int64)
    sim_out = np.empty((len(queries), k), dtype=np.float32)
    chunk = max(1, min(2048, _BUDGET // (16 * max(len(index), 1))))
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ index.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(
            np.arange(sims.shape[1]), (len(sims), 1)
        )
        part_sims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        idx_out[start : start + len(sims)] = np.take_along_axis(part, order, axis=1)
        sim_out[start : start + len(sims)] = np.take_along_axis(part_sims, order, axis=1)
    return idx_out, sim_out


def _locked(method: Callable) -> Callable:
    """A :class:`VectorIndex` method run under the index's lock: pages search it while an upload
    adds rows and a background thread reads its neighbour table."""

    @functools.wraps(method)
    def run(self: "VectorIndex", *args: object, **kwargs: object) -> object:
        with self._lock:
            return method(self, *args, **kwargs)

    return run


class VectorIndex:
    """Unit vectors keyed by item id, searchable by cosine (exact when small, faiss HNSW when large).

    Rows are positions in :attr:`vectors`; a retired row (its item changed or left) is never
    returned. Build with :meth:`build`; change with :meth:`update`.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: list[str] = []
        self.hashes: list[str] = []
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.alive = np.zeros(0, dtype=bool)
        self._row_of: dict[str, int] = {}
        self._hnsw: object | None = None
        # Each row's nearest rows, computed once per row (the item graph's edges): rows and
        # cosines for rows [0, len(_knn_rows)). Dropped when rows are renumbered (compaction).
        self._knn_rows = np.zeros((0, 0), dtype=np.int32)
        self._knn_sims = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.RLock()

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls, ids: Sequence[str], vectors: np.ndarray, hashes: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> "VectorIndex":
        """An index over ``vectors`` (unit rows) keyed by ``ids``; ``hashes`` identify each row's
        text so :meth:`update` can tell a re-embedded item from an unchanged one. ``progress(done,
        total)`` is called as the HNSW graph grows (minutes at a million items)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = cls(vectors.shape[1] if vectors.ndim == 2 else 0)
        index._append(list(map(str, ids)), list(hashes) if hashes is not None else [""] * len(ids), vectors, progress)
        return index

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"faiss-hnsw"``."""
        return "faiss-hnsw" if self._hnsw is not None else "exact"

    def __len__(self) -> int:
        return int(self.alive.sum())

    def _append(
        self, ids: list[str], hashes: list[str], vectors: np.ndarray, progress: Callable[[int, int], None] | None = None
    ) -> None:
        start = len(self.ids)
        for offset, item_id in enumerate(ids):
            old = self._row_of.get(item_id)
            if old is not None:
                self.alive[old] = False
            self._row_of[item_id] = start + offset
        self.ids.extend(ids)
        self.hashes.extend(hashes)
        self.vectors = np.vstack([self.vectors, vectors]) if start else vectors
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])
        retired = len(self.alive) - int(self.alive.sum())
        if retired > _REBUILD_RETIRED_SHARE * max(len(self.alive), 1):
            self._compact()
        if len(self) > EXACT_MAX_ITEMS:
            if self._hnsw is None:
                self._hnsw = _new_hnsw(self.dim)
                _add_in_chunks(self._hnsw, self.vectors, progress)
            else:
                _add_in_chunks(self._hnsw, vectors, progress)
        else:
            self._hnsw = None

    def _compact(self) -> None:
        keep = np.flatnonzero(self.alive)
        self.ids = [self.ids[i] for i in keep]
        self.hashes = [self.hashes[i] for i in keep]
        self.vectors = np.ascontiguousarray(self.vectors[keep])
        self.alive = np.ones(len(keep), dtype=bool)
        self._row_of = {item_id: row for row, item_id in enumerate(self.ids)}
        self._hnsw = None  # rebuilt by the caller when large
        self._knn_rows, self._knn_sims = np.zeros((0, 0), dtype=np.int32), np.zeros((0, 0), dtype=np.float32)

    @_locked
    def update(self, ids: Sequence[str], vectors: np.ndarray, hashes: Sequence[str] | None = None) -> int:
        """Add new items and replace the vectors of items whose text hash changed.

        Items already present with the same hash are left alone. Returns the rows added.
        """
        hashes = list(hashes) if hashes is not None else [""] * len(ids)
        todo = [
            i for i, (item_id, h) in enumerate(zip(ids, hashes))
            if (row := self._row_of.get(str(item_id))) is None or self.hashes[row] != h or not self.alive[row]
        ]
        if todo:
            self._append([str(ids[i]) for i in todo], [hashes[i] for i in todo],
                         np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[todo]))
        return len(todo)

    @_locked
    def remove(self, ids: Sequence[str]) -> int:
        """Retire items (they are no longer returned). Returns how many were present."""
        removed = 0
        for item_id in ids:
            row = self._row_of.pop(str(item_id), None)
            if row is not None and self.alive[row]:
                self.alive[row] = False
                removed += 1
        if len(self.alive) - len(self) > _REBUILD_RETIRED_SHARE * max(len(self.alive), 1):
            large = self._hnsw is not None
            self._compact()
            if large and len(self) > EXACT_MAX_ITEMS:
                self._hnsw = _new_hnsw(self.dim)
                self._hnsw.add(self.vectors)  # type: ignore[attr-defined]
        return removed

    def row_of(self, item_id: str) -> int | None:
        """The live row of ``item_id``, or ``None`` (unlocked: called per item in loops; a dict read)."""
        row = self._row_of.get(str(item_id))
        return row if row is not None and self.alive[row] else None

    # -- searching --------------------------------------------------------------------------
    @_locked
    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of the ``k`` nearest live items per query, best first (``-1`` pads)."""
        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        k = min(k, len(self))
        if k <= 0 or len(queries) == 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        retired = len(self.alive) - len(self)
        fetch = min(len(self.alive), k + retired) if retired and self._hnsw is None else k + min(retired, 4 * k)
        if self._hnsw is None:
            rows, sims = top_k_cosine(queries, self.vectors, fetch)
        else:
            sims, rows = self._hnsw.search(queries, fetch)  # type: ignore[attr-defined]
        if not retired:
            return rows[:, :k], sims[:, :k]
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        out_sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for q in range(len(queries)):
            live = [(r, s) for r, s in zip(rows[q], sims[q]) if r >= 0 and self.alive[r]][:k]
            if live:
                out_rows[q, : len(live)] = [r for r, _ in live]
                out_sims[q, : len(live)] = [s for _, s in live]
        return out_rows, out_sims

    @property
    def neighbours_searched(self) -> int:
        """Rows whose neighbours :meth:`neighbour_table` has searched and kept."""
        return len(self._knn_rows)

    @_locked
    def neighbour_table(
        self, k: int, rows: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of the ``k`` nearest live rows of each of ``rows`` (default: every
        row), best first, ``-1`` where there is none (a retired neighbour, or a retired row).

        Each row is searched once and the answer kept (and saved with the index), so the item
        graph of a million items costs one pass over the index, done by ``coldrec init``, not at
        every start. A row keeps the neighbours it had when it was searched: items added later
        reach it through their own lists (the graph is symmetrised).
        """
        n = len(self.alive)
        if self._knn_rows.shape[1] < k and len(self._knn_rows):
            self._knn_rows, self._knn_sims = np.zeros((0, 0), dtype=np.int32), np.zeros((0, 0), dtype=np.float32)
        done = len(self._knn_rows)
        if done < n:
            width = max(k, self._knn_rows.shape[1])
            new_rows = np.full((n - done, width), -1, dtype=np.int32)
            new_sims = np.full((n - done, width), -np.inf, dtype=np.float32)
            step = 20_000
            for start in range(done, n, step):
                stop = min(start + step, n)
                found, sims = self.search_rows(self.vectors[start:stop], width)
                new_rows[start - done : stop - done, : found.shape[1]] = found
                new_sims[start - done : stop - done, : sims.shape[1]] = sims
                if progress is not None:
                    progress(stop - done, n - done)
            self._knn_rows = np.vstack([self._knn_rows.reshape(-1, width), new_rows])
            self._knn_sims = np.vstack([self._knn_sims.reshape(-1, width), new_sims])
        wanted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        out_rows = self._knn_rows[wanted, :k].astype(np.int64)
        out_sims = self._knn_sims[wanted, :k].copy()
        gone = (out_rows >= 0) & ~self.alive[np.clip(out_rows, 0, None)]
        gone |= ~self.alive[wanted][:, None]
        out_rows[gone], out_sims[gone] = -1, -np.inf
        return out_rows, out_sims

    @_locked
    def search(
        self, queries: np.ndarray, k: int = 5, exclude: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each query the ``k`` nearest ``(item_id, cosine)``, skipping the query's own id in ``exclude``."""
        extra = 1 if exclude is not None else 0
        rows, sims = self.search_rows(queries, k + extra)
        out = []
        for q in range(len(rows)):
            own = exclude[q] if exclude is not None else None
            hits = [(self.ids[r], float(s)) for r, s in zip(rows[q], sims[q]) if r >= 0 and self.ids[r] != own]
            out.append(hits[:k])
        return out

    # -- persistence ------------------------------------------------------------------------
    @_locked
    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder`` (ids, hashes, vectors; the HNSW graph when there is one)."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "vectors.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, self.vectors)
        tmp.replace(folder / "vectors.npy")
        np.save(folder / "alive.npy", self.alive)
        np.save(folder / "knn_rows.npy", self._knn_rows)
        np.save(folder / "knn_sims.npy", self._knn_sims)
        if self._hnsw is not None:
            faiss.write_index(self._hnsw, str(folder / "hnsw.faiss.tmp"))
            (folder / "hnsw.faiss.tmp").replace(folder / "hnsw.faiss")
        else:
            (folder / "hnsw.faiss").unlink(missing_ok=True)
        # The manifest is written last: a crash mid-save leaves the old manifest, which load() checks.
        manifest = {"dim": self.dim, "ids": self.ids, "hashes": self.hashes, "rows": len(self.ids)}
        (folder / "manifest.json.tmp").write_text(json.dumps(manifest))
        (folder / "manifest.json.tmp").replace(folder / "manifest.json")

    @classmethod
    def load(cls, folder: str | Path) -> "VectorIndex | None":
        """The index saved in ``folder``, or ``None`` when there is none or it is incomplete."""
        import faiss

        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            vectors = np.load(folder / "vectors.npy")
            alive = np.load(folder / "alive.npy")
        except (OSError, ValueError):
            return None
        if len(vectors) != manifest["rows"] or len(alive) != manifest["rows"]:
            return None
        index = cls(int(manifest["dim"]))
        index.ids, index.hashes = list(manifest["ids"]), list(manifest["hashes"])
        index.vectors, index.alive = vectors.astype(np.float32), alive.astype(bool)
        index._row_of = {item_id: row for row, item_id in enumerate(index.ids) if index.alive[row]}
        try:  # the neighbour table is optional: without it, it is recomputed when asked for
            knn_rows, knn_sims = np.load(folder / "knn_rows.npy"), np.load(folder / "knn_sims.npy")
            if knn_rows.shape == knn_sims.shape and knn_rows.ndim == 2 and len(knn_rows) <= len(index.ids):
                index._knn_rows, index._knn_sims = knn_rows.astype(np.int32), knn_sims.astype(np.float32)
        except (OSError, ValueError):
            pass
        if (folder / "hnsw.faiss").exists():
            hnsw = faiss.read_index(str(folder / "hnsw.faiss"))
            if hnsw.ntotal != len(index.ids):
                return None
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            index._hnsw = hnsw
        elif len(index) > EXACT_MAX_ITEMS:
            index._hnsw = _new_hnsw(index.dim)
            index._hnsw.add(index.vectors)  # type: ignore[attr-defined]
        return index


def _add_in_chunks(hnsw: object, vectors: np.ndarray, progress: Callable[[int, int], None] | None) -> None:
    step = 50_000
    for start in range(0, len(vectors), step):
        hnsw.add(vectors[start : start + step])  # type: ignore[attr-defined]
        if progress is not None:
            progress(min(start + step, len(vectors)), len(vectors))


def _new_hnsw(dim: int) -> object:
    import faiss

    hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    return hnsw


class NeighbourIndex(VectorIndex):
    """``NeighbourIndex(ids, vectors)``: a :class:`VectorIndex` built in one call (kept for callers
    that build an index over a fixed item list)."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray) -> None:  # noqa: D107
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        super().__init__(vectors.shape[1] if vectors.ndim == 2 else 0)
        if len(ids):
            self._append(list(map(str, ids)), [""] * len(ids), vectors)
