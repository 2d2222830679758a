"""2-D maps of item embeddings: PCA, t-SNE or UMAP, computed once per (model, method, item set)
and kept in the store, plus a deterministic sample for drawing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .errors import ConfigError
from .store import Store

#: t-SNE refuses more points than this. On the 2-core benchmark CPU (shared with other work),
#: sklearn's Barnes-Hut t-SNE after PCA to 50 dimensions took ~26 s for 5,000 points on 1 thread
#: (benchmarks/results/explore.json); it grows faster than linearly (~160 s for 10,000 on 2 threads).
TSNE_MAX_POINTS = 5_000
#: Dimensions kept by PCA before t-SNE or UMAP (removes noise and makes neighbour search cheap).
_PRE_DIMS = 50
#: Above this many items PCA is fitted on a seeded sample of this size and the rest projected
#: with it: two principal axes are estimated to within noise from 50,000 points, and the fit
#: then costs the same at a million items as at 50,000.
PCA_FIT_SAMPLE = 50_000
#: Largest selection shape taken from the browser (a lasso's vertices): anything longer is cut.
MAX_SELECTION_VERTICES = 10_000


def available_methods() -> list[str]:
    """Projection methods that can run here: "pca" and "tsne" always, "umap" when umap-learn is installed."""
    methods = ["pca", "tsne"]
    if importlib.util.find_spec("umap") is not None:
        methods.append("umap")
    return methods


def project(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """An ``(n, 2)`` map of ``vectors`` by ``method`` (see :func:`available_methods`).

    t-SNE is refused (``ValueError``) above :data:`TSNE_MAX_POINTS` points: project a sample
    instead. Fewer than 3 points get a trivial map (zeros, or the PCA line for 2).
    """
    if method not in available_methods():
        raise ConfigError(f"unknown or unavailable projection method {method!r}; use one of {available_methods()}")
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 3 or x.ndim != 2 or x.shape[1] < 2:
        return _tiny(x)
    if method == "tsne" and n > TSNE_MAX_POINTS:
        raise ConfigError(
            f"t-SNE is limited to {TSNE_MAX_POINTS:,} points (it would take minutes for {n:,}); "
            "use PCA, UMAP, or a sample"
        )
    # Half the cores (at least one) for BLAS/OpenMP: spinning threads collapse when they share
    # cores with the dashboard or other work (t-SNE of 2,000 points: 45 s on 2 threads, 9 s on 1,
    # on the loaded 2-core benchmark machine).
    with threadpool_limits(limits=max(1, (os.cpu_count() or 1) // 2)):
        return _project(x, method, seed)


def _project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    n = len(x)
    if method == "pca":
        from sklearn.decomposition import PCA

        if n <= PCA_FIT_SAMPLE:
            return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float64)
        sample = np.random.default_rng(seed).choice(n, PCA_FIT_SAMPLE, replace=False)
        pca = PCA(n_components=2, random_state=seed).fit(x[sample])
        return np.vstack([pca.transform(x[i : i + 200_000]) for i in range(0, n, 200_000)]).astype(np.float64)
    x = _reduce(x, seed)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (n - 1) / 3.0)  # t-SNE needs perplexity < n
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x).astype(
            np.float64
        )
    import umap  # only reached when available_methods() found it

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def projection_key(model: str, method: str, item_ids: Iterable[str]) -> str:
    """A stable key for the map of ``item_ids`` (in any order) by ``model`` and ``method``."""
    payload = json.dumps([model, method, sorted(str(i) for i in item_ids)], ensure_ascii=False)
    return f"{method}:{hashlib.sha256(payload.encode()).hexdigest()}"


def stored_projection(
    store: Store, model: str, method: str, item_ids: Sequence[str], vectors: np.ndarray, seed: int = 0
) -> pd.DataFrame:
    """The map (item_id, x, y, in the order of ``item_ids``) stored for this model, method and item
    set; computed by :func:`project` and stored on first use, so reruns only read it."""
    ids = [str(i) for i in item_ids]
    if len(set(ids)) != len(ids):
        raise ValueError("item_ids repeat an id; a map has one point per item")
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} item ids but {len(vectors)} vectors")
    key = projection_key(model, method, ids)
    order = pd.DataFrame({"item_id": ids})
    stored = store.get_projection(key)
    if len(stored) == len(ids):
        return order.merge(stored, on="item_id", how="left")
    xy = project(vectors, method, seed)
    store.put_projection(key, ids, xy)
    return order.assign(x=xy[:, 0], y=xy[:, 1])


def sample_for_display(
    frame: pd.DataFrame, max_points: int = 20_000, keep: Iterable[str] = (), seed: int = 0
) -> tuple[pd.DataFrame, bool]:
    """At most ``max_points`` rows of ``frame`` (more only if ``keep`` alone exceeds it), and whether it was sampled.

    Rows whose item_id is in ``keep`` are always kept; the rest is a seeded random sample,
    proportional per ``source`` when that column exists, so catalog and uploads keep their
    shares. Rows stay in their original order.
    """
    if len(frame) <= max_points:
        return frame, False
    wanted = {str(i) for i in keep}
    kept = frame["item_id"].astype(str).isin(wanted).to_numpy() if wanted else np.zeros(len(frame), dtype=bool)
    budget = max(max_points - int(kept.sum()), 0)
    rest = np.flatnonzero(~kept)
    groups = frame["source"].astype(str).to_numpy()[rest] if "source" in frame else np.zeros(len(rest), dtype=object)
    names, codes = np.unique(groups, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    quota = _largest_remainder(sizes, budget)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(rest[codes == g], size=quota[g], replace=False) for g in range(len(names)) if quota[g]]
    rows = np.sort(np.concatenate([np.flatnonzero(kept), *chosen]))
    return frame.iloc[rows], True


def _largest_remainder(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` over groups in proportion to ``sizes`` (integers summing to the budget)."""
    total = int(sizes.sum())
    if total == 0 or budget <= 0:
        return np.zeros(len(sizes), dtype=np.int64)
    budget = min(budget, total)
    exact = sizes * budget / total
    quota = np.floor(exact).astype(np.int64)
    extra = budget - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:extra]] += 1
    return quota


def _reduce(x: np.ndarray, seed: int) -> np.ndarray:
    """PCA to 50 dimensions before a neighbour-based method (when there are more)."""
    if x.shape[1] <= _PRE_DIMS or len(x) <= _PRE_DIMS:
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=_PRE_DIMS, random_state=seed).fit_transform(x)


def _tiny(x: np.ndarray) -> np.ndarray:
    """A map for fewer than 3 points (or 1-dimensional vectors): centred first coordinates."""
    out = np.zeros((len(x), 2), dtype=np.float64)
    if len(x) == 2 and x.ndim == 2:
        half = float(np.linalg.norm(x[0] - x[1])) / 2
        out[:, 0] = [-half, half]
    return out


def density_grid(x: np.ndarray, y: np.ndarray, bins: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of points per cell of a ``bins`` x ``bins`` grid over the map, as ``(counts[y, x],
    x_centres, y_centres)``: how the whole catalog is drawn when only a sample is drawn as points."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) == 0:
        return np.zeros((0, 0)), np.zeros(0), np.zeros(0)
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    return counts.T, (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon_x: Sequence[float], polygon_y: Sequence[float]) -> np.ndarray:
    """Whether each point ``(x[i], y[i])`` lies inside the polygon (even-odd rule; the polygon
    closes itself). Only points inside its bounding box are tested, edge by edge, so a lasso
    over a million points costs well under a second."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    px, py = np.asarray(polygon_x, dtype=np.float64), np.asarray(polygon_y, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    if len(px) < 3 or len(px) != len(py):
        return inside
    candidates = np.flatnonzero((x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max()))
    cx, cy = x[candidates], y[candidates]
    hit = np.zeros(len(candidates), dtype=bool)
    for x0, y0, x1, y1 in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
        crosses = (y0 > cy) != (y1 > cy)
        if not crosses.any():
            continue
        at = x0 + (cy[crosses] - y0) * (x1 - x0) / (y1 - y0)
        hit[crosses] ^= cx[crosses] < at
    inside[candidates] = hit
    return inside


def items_in_selection(x: np.ndarray, y: np.ndarray, selection: object) -> np.ndarray:
    """Which points fall inside the boxes and lassos of a chart selection (Streamlit's plotly
    selection state: ``{"box": [{"x": [x0, x1], "y": [y0, y1]}], "lasso": [{"x": [...], "y": [...]}]}``).

    The selection comes from the browser, so it is read defensively: anything that is not a
    list of finite numbers is ignored, and a shape is cut at :data:`MAX_SELECTION_VERTICES`.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    chosen = np.zeros(len(x), dtype=bool)
    if not isinstance(selection, Mapping):
        return chosen
    for shape in _shapes(selection.get("box")):
        xs, ys = shape
        if len(xs) >= 2 and len(ys) >= 2:
            chosen |= (x >= min(xs[:2])) & (x <= max(xs[:2])) & (y >= min(ys[:2])) & (y <= max(ys[:2]))
    for xs, ys in _shapes(selection.get("lasso")):
        chosen |= points_in_polygon(x, y, xs, ys)
    return chosen


def _shapes(entries: object) -> list[tuple[list[float], list[float]]]:
    """The (xs, ys) of each well-formed shape in a selection list (others are skipped)."""
    out: list[tuple[list[float], list[float]]] = []
    if not isinstance(entries, list):
        return out
    for entry in entries[:100]:
        if not isinstance(entry, Mapping):
            continue
        xs, ys = _numbers(entry.get("x")), _numbers(entry.get("y"))
        if xs is not None and ys is not None and len(xs) == len(ys):
            out.append((xs, ys))
    return out


def _numbers(values: object) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out = []
    for v in values[:MAX_SELECTION_VERTICES]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            return None
        out.append(float(v))
    return out
