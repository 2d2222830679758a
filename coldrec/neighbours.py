"""Nearest neighbours by cosine similarity.

Exact search (one matrix product, chunked to bound memory). Everything that needs
neighbours goes through :func:`top_k_cosine` or :class:`NeighbourIndex`, so an approximate
index can replace it in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Bytes of similarity scores computed at once (bounds memory for large catalogs).
_BUDGET = 256 * 1024 * 1024


def top_k_cosine(queries: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosines of the ``k`` most similar rows of ``index`` for each query, best first.

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


@dataclass
class NeighbourIndex:
    """Item ids with their unit vectors, searchable by cosine."""

    ids: list[str]
    vectors: np.ndarray

    def search(
        self, queries: np.ndarray, k: int = 5, exclude: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each query the ``k`` nearest ``(item_id, cosine)``, skipping the query's own id in ``exclude``."""
        extra = 1 if exclude is not None else 0
        idx, sims = top_k_cosine(queries, self.vectors, k + extra)
        out = []
        for row in range(len(idx)):
            own = exclude[row] if exclude is not None else None
            hits = [(self.ids[j], float(s)) for j, s in zip(idx[row], sims[row]) if self.ids[j] != own]
            out.append(hits[:k])
        return out
