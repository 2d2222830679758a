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
import logging
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
        self._graph: object | None = None  # the faiss HNSW graph; None: exact search
        # A saved graph not read yet: load_checked defers it (1.8 GB at a million items, and a
        # restart's predictions do not search), :meth:`load_graph` reads it.
        self._graph_file: Path | None = None
        #: Why a saved graph was not used and rebuilt from the vectors (``None``: it was not).
        self.graph_notice: str | None = None
        # Each row's nearest rows, computed once per row (the item graph's edges): rows and
        # cosines for rows [0, len(_knn_rows)). Dropped when rows are renumbered (compaction).
        self._knn_rows = np.zeros((0, 0), dtype=np.int32)
        self._knn_sims = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.RLock()
        # What each file of the folder the index was last loaded from or saved to holds, so that a
        # save rewrites only what changed (a stamp-only save writes the manifest alone; at a
        # million items the vectors and the graph are 3.3 GB): file name -> (the array's digest,
        # or the graph's change count, and the file's inode, size and mtime when it was written or
        # checked). The graph's change count goes up whenever the graph is replaced or added to.
        self._files_in: Path | None = None
        self._files: dict[str, tuple[object, tuple[int, int, int]]] = {}
        self._graph_changes = 0
        #: What the owner says these rows were indexed from (saved in the manifest, given back by
        #: :meth:`load`; not checked here): the workspace keeps its catalog's fingerprint in it.
        self.stamp = ""

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
    def _hnsw(self) -> object | None:
        if self._graph_file is not None:
            self.load_graph()
        return self._graph

    @_hnsw.setter
    def _hnsw(self, graph: object | None) -> None:
        self._graph, self._graph_file = graph, None
        self._graph_changes += 1

    @_locked
    def load_graph(self) -> str:
        """Read the saved graph that :meth:`load_checked` deferred, checked against the index's
        vectors (anything that searches reads it first; a background task reads it after a start).
        Returns why it was not used (``""``: it was, or there was none to read); then a graph is
        built from the vectors and :attr:`graph_notice` says so."""
        path = self._graph_file
        if path is None:
            return ""
        self._graph_file = None
        hnsw, why = _load_hnsw(path, self) if path.exists() else (None, "its graph file is missing")
        if hnsw is None:
            if len(self) > EXACT_MAX_ITEMS:
                hnsw = _new_hnsw(self.dim)
                _add_in_chunks(hnsw, self.vectors, None)
            self.graph_notice = f"the saved neighbour graph was not used ({why}); it was rebuilt"
            self._graph_changes += 1
        self._graph = hnsw
        return why

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
                self._graph_changes += 1
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

    def stale(self, ids: Sequence[str], hashes: Sequence[str]) -> list[int]:
        """Positions in ``ids`` of the items :meth:`update` would (re)add: new ids, and ids whose
        text hash changed or whose row was retired (unlocked: dict reads)."""
        return [
            i for i, (item_id, h) in enumerate(zip(ids, hashes))
            if (row := self._row_of.get(str(item_id))) is None or self.hashes[row] != h or not self.alive[row]
        ]

    @_locked
    def update(self, ids: Sequence[str], vectors: np.ndarray, hashes: Sequence[str] | None = None) -> int:
        """Add new items and replace the vectors of items whose text hash changed.

        Items already present with the same hash are left alone. Returns the rows added.
        """
        hashes = list(hashes) if hashes is not None else [""] * len(ids)
        self.load_graph()  # before the rows change: it is checked against them
        todo = self.stale(ids, hashes)
        if todo:
            self._append([str(ids[i]) for i in todo], [hashes[i] for i in todo],
                         np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[todo]))
        return len(todo)

    @_locked
    def remove(self, ids: Sequence[str]) -> int:
        """Retire items (they are no longer returned). Returns how many were present."""
        self.load_graph()  # before the rows change: it is checked against them
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
                self._graph_changes += 1
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

    @property
    def table_width(self) -> int:
        """Neighbours kept per row by :meth:`neighbour_table` (0 before any search)."""
        return self._knn_rows.shape[1] if len(self._knn_rows) else 0

    @_locked
    def neighbour_table(
        self, k: int, rows: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of the ``k`` nearest live rows of each of ``rows`` (default: every
        row), best first, ``-1`` where there is none (a retired neighbour, or a retired row).

        Each row is searched once and the answer kept (and saved with the index), so the item
        graph of a million items costs one pass over the index, done by ``coldrec init``, not at
        every start. The kept lists follow later changes so that they do not depend on the
        index's history: rows added later enter the lists of the rows they are nearer to than
        their last kept neighbour, and a list that held a retired row is searched again. With
        exact search the table then equals a rebuilt index's (ties aside); with HNSW, new rows
        enter the lists of the rows they found (the reverse search would cost a full pass).

        A kept table narrower than ``k`` (an index saved when the graph took 11 candidates, not
        :data:`~coldrec.graph.GRAPH_CANDIDATES`) is widened here: every row is searched again
        (its first ``k`` can only come from a search); the vectors and the HNSW graph are kept.
        The workspace does it once, when it loads such an index, and saves it
        (:meth:`~coldrec.services.vectors.VectorService.item_index`).
        """
        n = len(self.alive)
        if self._knn_rows.shape[1] < k and len(self._knn_rows):
            logging.getLogger("coldrec").info("the kept neighbour table has %d columns, %d are wanted: searching every"
                                              " row again", self._knn_rows.shape[1], k)
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
            if done:
                self._merge_into_kept(done, n, new_rows, new_sims)
            self._knn_rows = np.vstack([self._knn_rows.reshape(-1, width), new_rows])
            self._knn_sims = np.vstack([self._knn_sims.reshape(-1, width), new_sims])
        self._refresh_retired()
        wanted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        out_rows = self._knn_rows[wanted, :k].astype(np.int64)
        out_sims = self._knn_sims[wanted, :k].copy()
        gone = (out_rows >= 0) & ~self.alive[np.clip(out_rows, 0, None)]
        gone |= ~self.alive[wanted][:, None]
        out_rows[gone], out_sims[gone] = -1, -np.inf
        return out_rows, out_sims

    def _merge_into_kept(self, done: int, n: int, new_rows: np.ndarray, new_sims: np.ndarray) -> None:
        """Let the rows appended since the table was kept (``done`` to ``n``) into the kept lists
        of rows ``0`` to ``done``: exactly (every kept row against every new live row, in chunks)
        when the search is exact, else through the new rows' own lists (HNSW)."""
        width = self._knn_rows.shape[1]
        columns = np.flatnonzero(self.alive[done:n]) + done
        if not len(columns) or not width:
            return
        if self._hnsw is None:
            kk = min(width, len(columns))
            chunk = max(1, min(20_000, _BUDGET // (16 * len(columns))))
            for start in range(0, done, chunk):
                stop = min(start + chunk, done)
                sims = self.vectors[start:stop] @ self.vectors[columns].T
                part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < len(columns) else np.tile(
                    np.arange(len(columns)), (stop - start, 1)
                )
                self._merge_rows(np.arange(start, stop), columns[part], np.take_along_axis(sims, part, axis=1))
            return
        pairs: dict[int, list[tuple[int, float]]] = {}
        for offset, (found, sims) in enumerate(zip(new_rows, new_sims)):
            for row, sim in zip(found, sims):
                if 0 <= row < done:
                    pairs.setdefault(int(row), []).append((done + offset, float(sim)))
        if pairs:
            rows = np.fromiter(pairs, dtype=np.int64)
            most = max(len(v) for v in pairs.values())
            cand_rows = np.full((len(rows), most), -1, dtype=np.int64)
            cand_sims = np.full((len(rows), most), -np.inf, dtype=np.float32)
            for i, row in enumerate(rows):
                got = pairs[int(row)]
                cand_rows[i, : len(got)] = [r for r, _ in got]
                cand_sims[i, : len(got)] = [s for _, s in got]
            self._merge_rows(rows, cand_rows, cand_sims)

    def _merge_rows(self, rows: np.ndarray, cand_rows: np.ndarray, cand_sims: np.ndarray) -> None:
        """Keep the best ``width`` of each kept list of ``rows`` and its candidates."""
        width = self._knn_rows.shape[1]
        all_rows = np.hstack([self._knn_rows[rows].astype(np.int64), cand_rows])
        all_sims = np.hstack([self._knn_sims[rows], cand_sims.astype(np.float32)])
        order = np.argsort(-all_sims, axis=1, kind="stable")[:, :width]
        self._knn_rows[rows] = np.take_along_axis(all_rows, order, axis=1)
        self._knn_sims[rows] = np.take_along_axis(all_sims, order, axis=1)

    def _refresh_retired(self) -> None:
        """Search again the live rows whose kept list holds a retired row (so that the next
        nearest takes its place, as in a rebuilt index)."""
        if not len(self._knn_rows) or bool(self.alive.all()):
            return
        kept = self._knn_rows
        held = (kept >= 0) & ~self.alive[np.clip(kept, 0, None)]
        stale = np.flatnonzero(held.any(axis=1) & self.alive[: len(kept)])
        width = kept.shape[1]
        for start in range(0, len(stale), 20_000):
            rows = stale[start : start + 20_000]
            found, sims = self.search_rows(self.vectors[rows], width)
            self._knn_rows[rows] = -1
            self._knn_sims[rows] = -np.inf
            self._knn_rows[rows, : found.shape[1]] = found
            self._knn_sims[rows, : sims.shape[1]] = sims

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
    def save(self, folder: str | Path, binding: str = "") -> None:
        """Write the index to ``folder`` (ids, hashes, vectors; the HNSW graph when there is one).

        The manifest, written last, holds ``binding`` (the database it belongs to) and a digest of
        every array file, so :meth:`load` takes nothing from another workspace or a half-written
        or altered folder. Only what changed since the index was loaded from or saved to this
        folder is written: a file whose array has the same digest, or a graph not changed since,
        is kept when the file is still the one written or checked then (same inode, size and
        mtime); so a save after only the stamp moved writes the manifest alone. Each file is
        written to a temporary name and renamed; the manifest is removed first when any other
        file is rewritten (the folder is no index until the new manifest is in place)."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        here = folder.resolve()
        known = self._files if self._files_in == here else {}
        digests = _part_digests(self)

        def kept(name: str, mark: object) -> bool:
            return name in known and known[name] == (mark, _signature(folder / name))

        arrays = {"vectors.npy": self.vectors, "alive.npy": self.alive, "knn_rows.npy": self._knn_rows,
                  "knn_sims.npy": self._knn_sims}
        stale = [name for name in arrays if not kept(name, digests[name])]
        graph_here = self._graph_file is not None and self._graph_file == folder / "hnsw.faiss"
        graph = None if graph_here else self._hnsw  # a graph deferred from another folder is read now
        if graph_here:
            write_graph = False  # not read since it was loaded from here, so not changed: the file is the graph
        elif graph is not None:
            write_graph = not kept("hnsw.faiss", self._graph_changes)
        else:
            write_graph = (folder / "hnsw.faiss").exists()  # an exact index: no graph file
        files = dict(known) if known else {}
        if stale or write_graph:
            (folder / "manifest.json").unlink(missing_ok=True)  # the folder is not a valid index until the end
        for name in stale:
            tmp = folder / f"{name}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, arrays[name])
            tmp.replace(folder / name)
            files[name] = (digests[name], _signature(folder / name))
        if write_graph and graph is not None:
            faiss.write_index(graph, str(folder / "hnsw.faiss.tmp"))
            (folder / "hnsw.faiss.tmp").replace(folder / "hnsw.faiss")
            files["hnsw.faiss"] = (self._graph_changes, _signature(folder / "hnsw.faiss"))
        elif write_graph:
            (folder / "hnsw.faiss").unlink(missing_ok=True)
            files.pop("hnsw.faiss", None)
        manifest = {"dim": self.dim, "ids": self.ids, "hashes": self.hashes, "rows": len(self.ids),
                    "binding": binding, "stamp": self.stamp, "digests": digests}
        (folder / "manifest.json.tmp").write_text(json.dumps(manifest))
        (folder / "manifest.json.tmp").replace(folder / "manifest.json")
        self._files_in, self._files = here, files

    @classmethod
    def load(cls, folder: str | Path, binding: str | None = None) -> "VectorIndex | None":
        """The index saved in ``folder``, or ``None`` when there is none, it is incomplete or damaged,
        or it belongs to another database than ``binding`` (see :meth:`load_checked` for why)."""
        return cls.load_checked(folder, binding)[0]

    @classmethod
    def load_checked(cls, folder: str | Path, binding: str | None = None) -> "tuple[VectorIndex | None, str]":
        """``(index, "")``, or ``(None, why)`` when the folder holds no usable index: missing files,
        another database's index (``binding``), a digest that does not match its files (altered or
        mixed folders), vectors that are not finite unit rows of the manifest's dimension, neighbour
        rows out of range, or a graph file that faiss cannot read or that holds other vectors."""
        from concurrent.futures import ThreadPoolExecutor

        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if not isinstance(manifest, dict):
                return None, "the manifest is not an index manifest"
            # Mapped, not read (a million rows are 1.5 GB): pages load as rows are used, and the
            # mapping is copy-on-write, so nothing done to the arrays in memory reaches the file.
            signatures = {name: _signature(folder / name) for name in _ARRAY_FILES}  # before reading: see save
            vectors = np.load(folder / "vectors.npy", mmap_mode="c", allow_pickle=False)
            alive = np.load(folder / "alive.npy", allow_pickle=False)
            knn_rows = np.load(folder / "knn_rows.npy", mmap_mode="c", allow_pickle=False)
            knn_sims = np.load(folder / "knn_sims.npy", mmap_mode="c", allow_pickle=False)
        except FileNotFoundError:
            return None, "no saved index" if not (folder / "manifest.json").exists() else "a file of the index is missing"
        except (OSError, ValueError, EOFError) as exc:
            return None, f"a file of the index cannot be read ({type(exc).__name__})"
        try:
            dim, rows = int(manifest["dim"]), int(manifest["rows"])
            ids, hashes = [str(i) for i in manifest["ids"]], [str(h) for h in manifest["hashes"]]
        except (KeyError, TypeError, ValueError):
            return None, "the manifest is incomplete"
        if binding is not None and manifest.get("binding") != binding:
            return None, "it was saved for another database"
        if vectors.ndim != 2 or vectors.shape != (rows, dim) or alive.shape != (rows,) or len(ids) != rows \
                or len(hashes) != rows or vectors.dtype != np.float32:
            return None, "its files disagree on the number of rows or the dimension"
        if knn_rows.ndim != 2 or knn_rows.shape != knn_sims.shape or len(knn_rows) > rows \
                or knn_rows.dtype != np.int32 or knn_sims.dtype != np.float32:
            return None, "its neighbour table has the wrong shape"
        index = cls(dim)
        index.ids, index.hashes, index.stamp = ids, hashes, str(manifest.get("stamp") or "")
        index.vectors, index.alive = vectors, alive.astype(bool)
        index._knn_rows, index._knn_sims = knn_rows, knn_sims
        graph_file = folder / "hnsw.faiss"
        # The digest reads every byte (1.6 GB at a million items): in a thread (hashlib releases
        # the GIL) while the checks below run. The graph file is not read here (see load_graph).
        # A manifest written before the save kept unchanged files holds one digest over everything
        # ("digest"): still read, and its next save rewrites every file once.
        parts = manifest.get("digests")
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(_part_digests if isinstance(parts, dict) else _legacy_digest, index)
            finite = _finite(index.vectors)
            in_range = not len(knn_rows) or (int(knn_rows.min()) >= -1 and int(knn_rows.max()) < rows)
            index._row_of = {item_id: row for row, item_id in enumerate(index.ids) if index.alive[row]}
            expected = parts if isinstance(parts, dict) else manifest.get("digest")
            if expected != digest.result():
                return None, "its files do not match its manifest (changed, or mixed from another index)"
        if not finite:
            return None, "it holds vectors that are not numbers"
        if not in_range:
            return None, "its neighbour table names rows that do not exist"
        if graph_file.exists() or len(index) > EXACT_MAX_ITEMS:
            index._graph_file = graph_file
        if isinstance(parts, dict):  # checked: what each file holds, for the next save here
            index._files_in = folder.resolve()
            index._files = {name: (parts[name], signatures[name]) for name in _ARRAY_FILES}
            if graph_file.exists():  # checked when it is read (load_graph); a bad one is rebuilt, which counts as a change
                index._files["hnsw.faiss"] = (index._graph_changes, _signature(graph_file))
        return index, ""


def _finite(vectors: np.ndarray) -> bool:
    """Whether every value is a number (in chunks: no 1.5 GB mask at a million rows)."""
    step = 65_536
    return all(bool(np.isfinite(vectors[start : start + step]).all()) for start in range(0, len(vectors), step))


#: The index's array files, each with its own digest in the manifest.
_ARRAY_FILES = ("vectors.npy", "alive.npy", "knn_rows.npy", "knn_sims.npy")


def _part_digests(index: VectorIndex) -> dict[str, str]:
    """A digest of each array file's array (shape and bytes). The ids and text hashes are in the
    manifest itself, beside these digests, so the files are bound to them."""
    import hashlib

    out = {}
    for name, array in zip(_ARRAY_FILES, (index.vectors, index.alive, index._knn_rows, index._knn_sims)):
        digest = hashlib.sha256()  # the fastest here: 1.6 GB/s against blake2b's 0.9 (SHA extensions)
        digest.update(f"{np.dtype(array.dtype).str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # the bytes, not a copy
        out[name] = digest.hexdigest()
    return out


def _legacy_digest(index: VectorIndex) -> str:
    """The one digest a manifest held before :func:`_part_digests` (ids, text hashes, every array)."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(json.dumps([index.dim, index.ids, index.hashes]).encode("utf-8", "surrogatepass"))
    for array in (index.vectors, index.alive, index._knn_rows, index._knn_sims):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # the bytes, not a copy
    return digest.hexdigest()


def _signature(path: Path) -> tuple[int, int, int]:
    """Which file is at ``path`` now (inode, size, modification time; zeros when there is none): a
    file replaced or written to since has another."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _load_hnsw(path: Path, index: VectorIndex) -> "tuple[object | None, str]":
    """A saved faiss graph, checked against the index's vectors (a sample of rows must be stored in
    it as they are and find themselves), or ``(None, why)``."""
    import faiss

    size, rows = path.stat().st_size, len(index.ids)
    if not rows * index.dim * 4 <= size <= rows * (index.dim * 4 + 1_024) + (1 << 20):
        return None, "its graph file has the wrong size for its vectors"
    try:
        hnsw = faiss.read_index(str(path))
    except Exception as exc:  # faiss raises RuntimeError with C++ text for any damaged file
        return None, f"its graph file cannot be read ({type(exc).__name__})"
    if getattr(hnsw, "d", None) != index.dim or getattr(hnsw, "ntotal", None) != len(index.ids) \
            or not hasattr(hnsw, "hnsw"):
        return None, "its graph file is for other vectors"
    rng = np.random.default_rng(0)
    sample = rng.choice(len(index.ids), size=min(64, len(index.ids)), replace=False) if len(index.ids) else []
    try:
        stored = np.stack([hnsw.reconstruct(int(r)) for r in sample]) if len(sample) else None
    except Exception:
        return None, "its graph file cannot be read"
    if stored is not None and not np.allclose(stored, index.vectors[sample], atol=1e-5):
        return None, "its graph file holds other vectors"
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    if stored is not None:
        _, found = hnsw.search(np.ascontiguousarray(index.vectors[sample]), 1)
        if float(np.mean(found[:, 0] == sample)) < 0.9:
            return None, "its graph does not find its own vectors"
    return hnsw, ""


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
