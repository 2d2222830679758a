"""The item graph and label propagation (Zhou et al. 2004, "Learning with local and global consistency").

Products that look alike almost always share a category, and a workspace always holds many
unlabelled products. So every item's category distribution is smoothed over a k-nearest-
neighbour graph of all items (catalog and uploads), with labelled items clamped to their label:

    F <- alpha * S @ F + (1 - alpha) * Y0,     F[labelled] = one-hot(label)

``S = D^-1/2 W D^-1/2`` is the symmetrised, normalised graph; ``W`` holds ``max(cos, 0)^3`` of the
``k`` nearest neighbours on vectors centred on the workspace mean (centring removes the direction
every product shares, so cosines spread over [-1, 1] and the cube keeps only close look-alikes);
``Y0`` is each item's own (inductive) distribution. With a second view of the items (``features``:
unit rows of the workspace's character n-gram topics, :mod:`coldrec.text_features`), an edge's
cosine is ``(1 - FEATURE_WEIGHT) * cos(embeddings) + FEATURE_WEIGHT * cos(features)`` and the
exact neighbour search runs on that mixed similarity. After a label only the rows the change reaches
are updated (:func:`propagate` with ``changed``), warm-started from the previous solution.
Above the exact search's size the candidates are the :data:`GRAPH_CANDIDATES` embedding
neighbours the index keeps, re-weighted by the mixed similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: Neighbours per item in the graph (Zhou et al. and most label-propagation work use 5–10).
GRAPH_K = 10
#: Candidates per item when the graph comes from the neighbour index's kept table (a workspace
#: above :data:`~coldrec.neighbours.EXACT_MAX_ITEMS`, and every upload): the item itself and its
#: ``3 * GRAPH_K`` embedding-nearest, re-weighted by the edge similarity (the mixed one with the
#: text view), of which the ``GRAPH_K`` best are kept. The rule is "three candidates per edge kept":
#: with ``GRAPH_K + 1`` the text view recovered about half of its gain, with this nearly all of the
#: exact search's (BENCHMARKS.md, "Large workspaces").
GRAPH_CANDIDATES = 3 * GRAPH_K + 1
#: Edge weight = cos^GRAPH_POWER on centred vectors (sharpens towards true look-alikes).
GRAPH_POWER = 3
#: Share of an item's distribution that comes from its neighbours (Zhou et al.'s 0.99 smooths
#: too far for category labels; 0.9 is the common choice, and measured flat from 0.8 to 0.95).
ALPHA = 0.9
#: Propagation stops when no probability moves by more than this.
TOLERANCE = 1e-4
MAX_ITERATIONS = 60
#: Share of an edge's cosine from the second view when there is one: the two views weigh the
#: same (not tuned: 0.25 and 0.75 measured within 0.011 of 0.5 at every k on both JD levels, BENCHMARKS.md).
FEATURE_WEIGHT = 0.5


@dataclass
class ItemGraph:
    """Normalised neighbour graph over a fixed list of items (rows = positions in that list)."""

    matrix: sp.csr_matrix
    #: The workspace mean the graph's cosines were centred on.
    centre: np.ndarray
    #: The symmetric edge weights before normalisation (``W``), kept so that appending items
    #: does not recompute every old edge (at a million items that is 15 million cosines).
    weights: sp.csr_matrix | None = None

    @property
    def n(self) -> int:
        """Number of items (rows)."""
        return self.matrix.shape[0]


def empty_graph(vectors: np.ndarray) -> ItemGraph:
    """A graph over ``vectors`` without edges (propagation then leaves every prior as it is)."""
    n = len(vectors)
    centre = vectors.mean(axis=0) if n else np.zeros(vectors.shape[1], dtype=np.float32)
    none = sp.csr_matrix((n, n), dtype=np.float32)
    return ItemGraph(none, centre.astype(np.float32), none)


def centre_vectors(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Unit vectors after subtracting ``centre`` (rows that become zero stay zero)."""
    out = np.asarray(vectors, dtype=np.float32) - centre.astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-9)


def build_graph(
    vectors: np.ndarray,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    k: int = GRAPH_K,
    centre: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> ItemGraph:
    """The normalised kNN graph of ``vectors`` (unit rows).

    ``neighbours``: ``(rows, cosines)`` of each item's nearest items from an index (the item
    itself may be among them; it is dropped); computed exactly when not given. Candidates are
    re-scored on centred vectors, so an approximate index only needs to find them. ``centre``:
    the vector the cosines are centred on (default: the mean of ``vectors``); a workspace passes
    the one its graph was first built with, so a rebuild equals a graph extended in place.
    ``features``: the second view (unit rows, one per item; see the module docstring); without
    ``neighbours`` the exact search then runs on the mixed similarity.
    """
    from .neighbours import top_k_cosine

    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        return empty_graph(vectors)
    centre = vectors.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float32)
    centred = centre_vectors(vectors, centre)
    if neighbours is None and features is None:
        neighbours = top_k_cosine(vectors, vectors, min(n, k + 1))
    elif neighbours is None:
        joined = mixed_vectors(centred, features)
        neighbours = (top_k_cosine(joined, joined, min(n, k + 1))[0], None)  # its cosines are the mixed ones
        del joined
    rows_idx = neighbours[0]
    sims = neighbours[1] if len(neighbours) > 1 else None
    if sims is not None and np.shape(sims) == np.shape(rows_idx):
        embedding_cos = _centred_cosines(vectors, centre, rows_idx, np.asarray(sims, dtype=np.float32))
        weights = _edge_weights(centred, centred, rows_idx, features, features, embedding_cos)
    else:
        weights = _edge_weights(centred, centred, rows_idx, features, features)
    w = _symmetric(n, rows_idx, weights, k)
    return ItemGraph(_normalise(w), centre, w)


def mixed_vectors(centred: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Rows whose dot products are the mixed similarity of the module docstring: centred unit
    embeddings and unit features side by side, scaled by the square roots of their weights."""
    return np.hstack([np.sqrt(1.0 - FEATURE_WEIGHT) * centred, np.sqrt(FEATURE_WEIGHT) * features]).astype(np.float32)


def _centred_cosines(vectors: np.ndarray, centre: np.ndarray, neighbour_rows: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """The cosines on centred vectors of each row and its candidates, from the index's cosines
    ``sims`` of the raw vectors: ``(x.y - x.c - y.c + c.c) / (|x - c| |y - c|)``. Exact algebra,
    and no candidate's vector is gathered (at 31 candidates of 384 floats per item, that gather
    was most of the graph's build)."""
    centre = centre.astype(np.float32)
    along = vectors @ centre
    norms = np.sqrt(np.maximum(np.einsum("ij,ij->i", vectors, vectors) - 2.0 * along + float(centre @ centre), 0.0))
    targets = np.clip(neighbour_rows, 0, None)
    with np.errstate(invalid="ignore", over="ignore"):
        dots = np.where(neighbour_rows >= 0, sims, 0.0) - along[:, None] - along[targets] + float(centre @ centre)
        denominator = norms[:, None] * norms[targets]
    return np.where((denominator > 1e-9) & (neighbour_rows >= 0), dots / np.maximum(denominator, 1e-9), 0.0).astype(np.float32)


def _edge_weights(
    queries: np.ndarray, centred: np.ndarray, neighbour_rows: np.ndarray,
    query_features: np.ndarray | None = None, features: np.ndarray | None = None,
    embedding_cos: np.ndarray | None = None,
) -> np.ndarray:
    """``max(cos, 0)^GRAPH_POWER`` between each centred query and its candidate rows of
    ``centred``; with ``query_features`` and ``features`` (the second view of the queries and of
    ``centred``'s rows) the cosine is the mixed one. ``embedding_cos``: the centred cosines
    already known (:func:`_centred_cosines`), so only the second view is gathered."""
    out = np.empty(neighbour_rows.shape, dtype=np.float32)
    gathered = (0 if embedding_cos is not None else centred.shape[1]) + (features.shape[1] if features is not None else 0)
    step = _rows_per_block(neighbour_rows.shape[1], max(gathered, 1))
    for start in range(0, len(neighbour_rows), step):
        rows = neighbour_rows[start : start + step]
        targets = np.clip(rows, 0, None)
        if embedding_cos is not None:
            cos = embedding_cos[start : start + len(rows)]
        else:
            cos = np.einsum("id,ijd->ij", queries[start : start + len(rows)], centred[targets])
        if features is not None and query_features is not None:
            cos = (1.0 - FEATURE_WEIGHT) * cos + FEATURE_WEIGHT * np.einsum(
                "id,ijd->ij", query_features[start : start + len(rows)], features[targets])
        out[start : start + len(rows)] = np.maximum(cos, 0.0) ** GRAPH_POWER
    out[neighbour_rows < 0] = 0.0  # an index returns -1 when it found fewer neighbours
    return out


#: Bytes of gathered candidate vectors held at once while edges are weighed (bounds memory: at
#: 31 candidates a block of 20,000 rows of 384 + 256 floats would be 1.6 GB).
_GATHER_BUDGET = 256 * 1024 * 1024


def _rows_per_block(candidates: int, dims: int) -> int:
    """Rows whose ``candidates`` gathered vectors of ``dims`` floats fit :data:`_GATHER_BUDGET`."""
    return max(1, min(20_000, _GATHER_BUDGET // max(4 * candidates * dims, 1)))


def _symmetric(n: int, neighbour_rows: np.ndarray, weights: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep each item's ``k`` strongest edges other than itself, then ``W = max(W, W^T)``."""
    own = neighbour_rows == np.arange(len(neighbour_rows))[:, None]
    weights = np.where(own | (neighbour_rows < 0), 0.0, weights)
    order = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    cols = np.take_along_axis(neighbour_rows, order, axis=1)
    vals = np.take_along_axis(weights, order, axis=1)
    keep = vals > 0
    rows = np.repeat(np.arange(len(cols)), keep.sum(axis=1))
    w = sp.csr_matrix((vals[keep], (rows, cols[keep])), shape=(n, n), dtype=np.float32)
    return w.maximum(w.T).tocsr()


def _normalise(w: sp.csr_matrix) -> sp.csr_matrix:
    degree = np.asarray(w.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0).astype(np.float32)
    d = sp.diags(inv)
    return (d @ w @ d).tocsr().astype(np.float32)


def extend_graph(
    graph: ItemGraph, vectors: np.ndarray, new_neighbours: np.ndarray, k: int = GRAPH_K,
    features: np.ndarray | None = None,
) -> ItemGraph:
    """``graph`` with items appended. ``vectors``: every item's vector, old rows first and the new
    ones last; ``new_neighbours``: rows (into ``vectors``) of each new item's nearest items;
    ``features``: the second view, when the graph was built with one (only the new rows and the
    rows they link to are read; the old edges keep their weights).

    Old items keep their edges (and the old centre); each new item links to its ``k`` nearest and,
    by symmetry, they to it. Equals :func:`build_graph` with the old centre whenever no new item
    enters an old item's own top ``k``.
    """
    n_old, n = graph.n, len(vectors)
    if n <= n_old:
        return graph
    new_neighbours = np.asarray(new_neighbours, dtype=np.int64)
    if graph.weights is not None:
        old_w = graph.weights.tocoo()
    else:  # a graph built without its weights: recover them from the vectors, in blocks
        old_w = graph.matrix.tocoo()
        data = np.empty(len(old_w.data), dtype=np.float32)
        for start in range(0, len(data), 1_000_000):
            r, c = old_w.row[start : start + 1_000_000], old_w.col[start : start + 1_000_000]
            cos = np.einsum("ij,ij->i", centre_vectors(vectors[r], graph.centre), centre_vectors(vectors[c], graph.centre))
            if features is not None:
                cos = (1.0 - FEATURE_WEIGHT) * cos + FEATURE_WEIGHT * np.einsum("ij,ij->i", features[r], features[c])
            data[start : start + len(r)] = np.maximum(cos, 0.0) ** GRAPH_POWER
        old_w = sp.coo_matrix((data, (old_w.row, old_w.col)), shape=old_w.shape)
    # Only the new items and the rows they link to are centred (not every item).
    own = np.arange(n_old, n)
    queries = centre_vectors(vectors[own], graph.centre)
    weights = np.zeros(new_neighbours.shape, dtype=np.float32)
    step = _rows_per_block(new_neighbours.shape[1], vectors.shape[1] + (features.shape[1] if features is not None else 0))
    for start in range(0, len(own), step):
        rows = new_neighbours[start : start + step]
        flat = np.clip(rows, 0, None).ravel()
        targets = centre_vectors(vectors[flat], graph.centre).reshape(*rows.shape, -1)
        cos = np.einsum("id,ijd->ij", queries[start : start + len(rows)], targets)
        if features is not None:
            cos = (1.0 - FEATURE_WEIGHT) * cos + FEATURE_WEIGHT * np.einsum(
                "id,ijd->ij", features[own[start : start + len(rows)]], features[flat].reshape(*rows.shape, -1))
        weights[start : start + len(rows)] = np.where(rows >= 0, np.maximum(cos, 0.0) ** GRAPH_POWER, 0.0)
    rows = np.vstack([np.full((n_old, new_neighbours.shape[1]), -1, dtype=np.int64), new_neighbours])
    weights = np.vstack([np.zeros((n_old, new_neighbours.shape[1]), dtype=np.float32), weights])
    added = _symmetric(n, rows, weights, k)
    w = sp.csr_matrix((old_w.data.astype(np.float32), (old_w.row, old_w.col)), shape=(n, n))
    w = w.maximum(added).tocsr()
    return ItemGraph(_normalise(w), graph.centre, w)


def propagate(
    graph: ItemGraph,
    prior: np.ndarray,
    labelled_rows: Sequence[int] | np.ndarray,
    labelled_classes: Sequence[int] | np.ndarray,
    alpha: float = ALPHA,
    start: np.ndarray | None = None,
    changed: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
    pause: Callable[[], None] | None = None,
) -> tuple[np.ndarray, int]:
    """The propagation's fixed point ``F`` (``(n, n_classes)``, not normalised: pass it back as
    ``start``; :func:`distributions` turns it into probabilities) and the iterations used.

    ``prior``: each item's own distribution ``Y0``. Labelled rows are clamped to their class.
    ``start``: a previous solution to warm-start from. ``changed``: rows whose prior or label
    changed since ``start``; then only rows reachable from them are recomputed, frontier by
    frontier, until nothing moves by more than ``tolerance``. ``pause()`` is called before each
    sweep (a background refit waits there while a click is being served).
    """
    prior = np.asarray(prior, dtype=np.float32)
    n, c = prior.shape
    labelled_rows = np.asarray(labelled_rows, dtype=np.int64)
    labelled_classes = np.asarray(labelled_classes, dtype=np.int64)
    is_labelled = np.zeros(n, dtype=bool)
    is_labelled[labelled_rows] = True
    if start is not None and changed is not None:
        return _propagate_locally(graph.matrix, prior, labelled_rows, labelled_classes, is_labelled, alpha,
                                  np.asarray(start, dtype=np.float32), changed, tolerance, max_iterations, pause)
    y0 = prior.copy()
    y0[labelled_rows] = 0.0
    y0[labelled_rows, labelled_classes] = 1.0
    f = y0.copy() if start is None else np.asarray(start, dtype=np.float32).copy()
    f[labelled_rows] = y0[labelled_rows]
    s = graph.matrix
    base = (1.0 - alpha) * y0
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        new = _sweep(s, f, base, alpha, pause)
        new[is_labelled] = y0[is_labelled]
        moved = float(np.abs(new - f).max()) if n else 0.0
        f = new
        if moved <= tolerance:
            break
    return f, iterations


def _propagate_locally(
    s: sp.csr_matrix, prior: np.ndarray, labelled_rows: np.ndarray, labelled_classes: np.ndarray,
    is_labelled: np.ndarray, alpha: float, start: np.ndarray, changed: np.ndarray, tolerance: float,
    max_iterations: int, pause: Callable[[], None] | None,
) -> tuple[np.ndarray, int]:
    """:func:`propagate` from ``start`` after the rows ``changed`` changed: recompute the rows
    adjacent to what moved, until nothing moves. Each item's clamped prior is formed only for the
    rows recomputed (at a million items forming it for every row, three copies of the whole
    distribution, took most of a label's second); a frontier covering much of the graph is cheaper
    as one whole sweep (one sparse product, no slicing)."""
    n = len(prior)
    label_of = np.full(n, -1, dtype=np.int64)
    label_of[labelled_rows] = labelled_classes

    def clamped(rows: np.ndarray) -> np.ndarray:  # Y0 of these rows: the prior, a label's one-hot
        y = prior[rows].copy()
        held = np.flatnonzero(label_of[rows] >= 0)
        y[held] = 0.0
        y[held, label_of[rows[held]]] = 1.0
        return y

    f = start.copy()
    f[labelled_rows] = clamped(labelled_rows)
    frontier = np.unique(np.asarray(changed, dtype=np.int64))
    iterations = 0
    whole: tuple[np.ndarray, np.ndarray] | None = None  # Y0 and (1 - alpha) Y0 of every row, formed once if needed
    while len(frontier) and iterations < max_iterations:
        iterations += 1
        if pause is not None:
            pause()
        if len(frontier) > n // 8:
            if whole is None:
                y0 = clamped(np.arange(n))
                whole = (y0, (1.0 - alpha) * y0)
            new = _sweep(s, f, whole[1], alpha, pause)
            new[is_labelled] = whole[0][is_labelled]
            moved = np.abs(new - f).max(axis=1)
            f = new
            frontier = np.flatnonzero(moved > tolerance)
            continue
        rows = np.unique(np.concatenate([frontier, s[frontier].indices]))
        y0 = clamped(rows)
        new = alpha * (s[rows] @ f) + (1.0 - alpha) * y0
        held = is_labelled[rows]
        new[held] = y0[held]
        moved = np.abs(new - f[rows]).max(axis=1)
        f[rows] = new
        frontier = rows[moved > tolerance]
    return f, iterations


#: Rows per block of a sweep made with a ``pause`` (a sweep over a million rows takes a second or more).
_PAUSE_ROWS = 131_072


def _sweep(s: sp.csr_matrix, f: np.ndarray, base: np.ndarray, alpha: float, pause: Callable[[], None] | None) -> np.ndarray:
    """``alpha * S @ F + base``; with ``pause``, in blocks of rows with ``pause()`` before each,
    so that a click waits for one block of a background refit, not a whole sweep."""
    if pause is None:
        return alpha * (s @ f) + base
    out = np.empty_like(f)
    for start in range(0, s.shape[0], _PAUSE_ROWS):
        pause()
        stop = min(start + _PAUSE_ROWS, s.shape[0])
        out[start:stop] = alpha * (s[start:stop] @ f) + base[start:stop]
    return out


def distributions(f: np.ndarray) -> np.ndarray:
    """Rows of a propagation result as probability distributions (uniform where a row is zero)."""
    f = np.maximum(f, 0.0)
    sums = f.sum(axis=1, keepdims=True)
    return np.where(sums > 0, f / np.maximum(sums, 1e-12), 1.0 / max(f.shape[1], 1)).astype(np.float32)
