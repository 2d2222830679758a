"""Analytics behind the explore views: counts per category, confidence, unsure shares, category
health, drift of an upload batch, emerging clusters, near-duplicates.

Grouping, counting and joining run in DuckDB SQL over the store; matrix work (centroids,
cosines, k-means) runs in numpy and its results are handed to SQL as tables. Vectors are unit
rows aligned with the caller's ``item_ids``; nothing builds an n x n matrix, so memory stays
bounded at 50,000 x 384.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse
from threadpoolctl import threadpool_limits

from .language import WordTokenizer
from .errors import NotReadyError
from .graph import GRAPH_CANDIDATES
from .neighbours import VectorIndex
from .store import Store

#: Rows of similarities computed at once by :func:`near_duplicates` (x n columns of float32).
_PAIR_BLOCK = 256
#: Items whose neighbours :func:`near_duplicates_indexed` asks the index for at once.
_QUERY_BLOCK = 4096
#: Points used to choose k for :func:`emerging_clusters` (silhouette is quadratic in points).
_SILHOUETTE_SAMPLE = 2000
#: Titles shown per emerging cluster.
_EXAMPLES = 3

_F = TypeVar("_F", bound=Callable)


def _half_the_cores(function: _F) -> _F:
    """Run ``function`` with BLAS/OpenMP limited to half the cores (at least one).

    It leaves cores to the dashboard and DuckDB, and spinning BLAS/OpenMP threads collapse when
    they share cores with other busy work: on the 2-core benchmark machine under load, k-means,
    near-duplicates and t-SNE ran 2-5x faster on 1 thread than on 2. (The limit is process-wide;
    overlapping calls may leave it at this same level.)
    """

    @functools.wraps(function)
    def limited(*args, **kwargs):
        with threadpool_limits(limits=max(1, (os.cpu_count() or 1) // 2)):
            return function(*args, **kwargs)

    return limited  # type: ignore[return-value]


def _predictions_source(model: str, predictions: pd.DataFrame | None) -> tuple[str, dict[str, object]]:
    """The table SQL reads predictions from: the stored ones, or ``predictions`` (item_id,
    category, probability, unsure: e.g. the current model's) registered under another name."""
    if predictions is None:
        return "predictions", {}
    frame = predictions[["item_id", "category", "probability", "unsure"]].assign(model=model)
    return "given_predictions", {"given_predictions": frame}


# -- counts over the store --------------------------------------------------------------------
def category_summary(store: Store, model: str, predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per category (all of them, by name): labelled, labelled_catalog, labelled_uploads,
    predicted, predicted_unsure, mean_confidence.

    ``predicted`` counts stored predictions of ``model`` whose top category is that one;
    ``mean_confidence`` is their mean probability (NaN when there are none). ``predictions``
    replaces the stored predictions (e.g. the current model's; see :func:`_predictions_source`).
    """
    source, tables = _predictions_source(model, predictions)
    return store.query_df(
        f"""WITH lab AS (
               SELECT l.category, count(*) AS labelled,
                      count(*) FILTER (WHERE i.source = 'catalog') AS labelled_catalog,
                      count(*) FILTER (WHERE i.source = 'upload') AS labelled_uploads
               FROM labels l JOIN items i USING (item_id) GROUP BY l.category),
           pred AS (
               SELECT category, count(*) AS predicted, count(*) FILTER (WHERE unsure) AS predicted_unsure,
                      avg(probability) AS mean_confidence
               FROM {source} WHERE model = ? GROUP BY category)
           SELECT c.name AS category,
                  coalesce(lab.labelled, 0) AS labelled,
                  coalesce(lab.labelled_catalog, 0) AS labelled_catalog,
                  coalesce(lab.labelled_uploads, 0) AS labelled_uploads,
                  coalesce(pred.predicted, 0) AS predicted,
                  coalesce(pred.predicted_unsure, 0) AS predicted_unsure,
                  pred.mean_confidence
           FROM categories c LEFT JOIN lab ON lab.category = c.name LEFT JOIN pred ON pred.category = c.name
           ORDER BY c.name""",
        [model],
        tables=tables,
    )


def confidence_histogram(
    store: Store, model: str, bins: int = 10, predictions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stored predictions of ``model`` counted per top category and probability bin.

    ``bins`` equal bins over [0, 1] (a probability of 1 falls in the last one); columns category,
    bin_start, bin_end, items; only non-empty bins, by category then bin. ``predictions`` replaces
    the stored predictions (see :func:`_predictions_source`).
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    source, tables = _predictions_source(model, predictions)
    return store.query_df(
        f"""WITH b AS (
               -- round first so 0.7 * 10 = 7.000000000000001 lands in bin 7, not bin 6 via 6.9999...
               SELECT category, least(floor(round(probability * ?, 9)), ? - 1)::INTEGER AS bin
               FROM {source} WHERE model = ?)
           SELECT category, bin / ? AS bin_start, (bin + 1) / ? AS bin_end, count(*) AS items
           FROM b GROUP BY category, bin ORDER BY category, bin""",
        [float(bins), float(bins), model, float(bins), float(bins)],
        tables=tables,
    )


def unsure_by_batch(store: Store, model: str, predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per upload batch, newest first: batch, items, predicted (with a stored prediction of ``model``),
    unsure, unsure_share (unsure / predicted; NaN when nothing was predicted). ``predictions``
    replaces the stored predictions (see :func:`_predictions_source`)."""
    source, tables = _predictions_source(model, predictions)
    return store.query_df(
        f"""SELECT i.batch, count(*) AS items, count(p.item_id) AS predicted,
                  count(*) FILTER (WHERE p.unsure) AS unsure,
                  CASE WHEN count(p.item_id) > 0
                       THEN (count(*) FILTER (WHERE p.unsure)) / count(p.item_id) END AS unsure_share
           FROM items i LEFT JOIN {source} p ON p.item_id = i.item_id AND p.model = ?
           WHERE i.source = 'upload'
           GROUP BY i.batch ORDER BY min(i.added_at) DESC, i.batch""",
        [model],
        tables=tables,
    )


# -- category health --------------------------------------------------------------------------
@_half_the_cores
def category_health(store: Store, item_ids: Sequence[str], vectors: np.ndarray) -> pd.DataFrame:
    """Centroid, spread and nearest other category of each category, over the labelled items among ``item_ids``.

    Columns category, items, spread (mean ``1 - cos`` of members to their normalised centroid),
    nearest_category, centroid_cosine (cosine between the two centroids; NaN when there is only
    one category). Most confusable first (centroid_cosine descending); categories without labelled
    items are omitted.
    """
    vectors = _check_aligned(item_ids, vectors)
    members = store.query_df(
        "SELECT t.row, l.category FROM ids t JOIN labels l USING (item_id) ORDER BY t.row",
        tables={"ids": _id_table(item_ids)},
    )
    columns = ["category", "items", "spread", "nearest_category", "centroid_cosine"]
    if members.empty:
        return pd.DataFrame(columns=columns)
    codes, names = pd.factorize(members["category"], sort=True)
    rows = members["row"].to_numpy()
    centroids = _unit(_group_sums(codes, vectors[rows], len(names)))
    distance = 1.0 - np.einsum("ij,ij->i", vectors[rows], centroids[codes])
    between = centroids @ centroids.T
    np.fill_diagonal(between, -np.inf)
    nearest = between.argmax(axis=1)
    alone = len(names) == 1
    near = pd.DataFrame(
        {
            "category": names,
            "nearest_category": [None if alone else names[j] for j in nearest],
            "centroid_cosine": [np.nan if alone else float(between[i, j]) for i, j in enumerate(nearest)],
        }
    )
    per_item = pd.DataFrame({"category": members["category"], "distance": distance.astype(np.float64)})
    return store.query_df(
        """SELECT m.category, count(*) AS items, avg(m.distance) AS spread, n.nearest_category, n.centroid_cosine
           FROM m JOIN n USING (category)
           GROUP BY m.category, n.nearest_category, n.centroid_cosine
           ORDER BY n.centroid_cosine DESC NULLS LAST, m.category""",
        tables={"m": per_item, "n": near},
    )


# -- drift of an upload batch -----------------------------------------------------------------
@dataclass
class DriftReport:
    """How far an upload batch sits from the catalog.

    ``by_category``: category, batch_items, catalog_items, centroid_distance, far_share (one row
    per category predicted for the batch; largest centroid distance first, categories the catalog
    has no labelled items of first of all). ``new_category_candidates``: item_id, title, predicted,
    probability, nearest_catalog_id, nearest_catalog_title, nearest_similarity (batch items whose
    best cosine to any catalog item is below ``far_below``, most isolated first).
    """

    batch: str
    far_below: float
    by_category: pd.DataFrame
    new_category_candidates: pd.DataFrame


@_half_the_cores
def drift(
    store: Store, model: str, batch: str, item_ids: Sequence[str], vectors: np.ndarray, far_below: float = 0.5,
    predictions: pd.DataFrame | None = None, nearest: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare upload ``batch`` with the catalog; ``item_ids``/``vectors`` cover at least both.

    Batch items are grouped by their stored prediction of ``model`` (items without one are left
    out of ``by_category`` but can still be candidates, with an empty ``predicted``). Raises
    ``ValueError`` when no catalog item is among ``item_ids``. ``predictions`` replaces the stored
    predictions (see :func:`_predictions_source`); ``nearest`` is :func:`nearest_catalog`'s result
    for this batch when the caller kept it (else it is computed).
    """
    vectors = _check_aligned(item_ids, vectors)
    ids = _id_table(item_ids)
    source, given = _predictions_source(model, predictions)
    rows = store.query_df(
        f"""SELECT t.row, i.item_id, i.source, l.category AS label, p.category AS predicted
           FROM ids t JOIN items i USING (item_id) LEFT JOIN labels l USING (item_id)
           LEFT JOIN {source} p ON p.item_id = i.item_id AND p.model = ?
           WHERE i.source = 'catalog' OR (i.source = 'upload' AND i.batch = ?)
           ORDER BY t.row""",
        [model, batch],
        tables={"ids": ids, **given},
    )
    catalog, uploads = rows[rows["source"] == "catalog"], rows[rows["source"] == "upload"]
    by_columns = ["category", "batch_items", "catalog_items", "centroid_distance", "far_share"]
    cand_columns = ["item_id", "title", "predicted", "probability", "nearest_catalog_id",
                    "nearest_catalog_title", "nearest_similarity"]
    if uploads.empty:
        return DriftReport(batch, far_below, pd.DataFrame(columns=by_columns), pd.DataFrame(columns=cand_columns))
    if catalog.empty:
        raise NotReadyError("drift compares a batch with the catalog, but no catalog item is among item_ids")
    if nearest is None:
        nearest = _nearest_catalog(uploads, catalog, vectors)
    near = uploads[["item_id"]].merge(nearest, on="item_id", how="inner")
    distances = _centroid_distances(uploads, catalog, vectors)
    by_category = store.query_df(
        f"""WITH b AS (
               SELECT p.category, count(*) AS batch_items, avg((n.nearest_similarity < ?)::DOUBLE) AS far_share
               FROM near n JOIN {source} p ON p.item_id = n.item_id AND p.model = ? GROUP BY p.category),
           c AS (
               SELECT l.category, count(*) AS catalog_items
               FROM ids t JOIN items i USING (item_id) JOIN labels l USING (item_id)
               WHERE i.source = 'catalog' GROUP BY l.category)
           SELECT b.category, b.batch_items, coalesce(c.catalog_items, 0) AS catalog_items,
                  d.centroid_distance, b.far_share
           FROM b LEFT JOIN c USING (category) LEFT JOIN d USING (category)
           ORDER BY d.centroid_distance DESC NULLS FIRST, b.category""",
        [float(far_below), model],
        tables={"near": near, "ids": ids, "d": distances, **given},
    )
    candidates = store.query_df(
        f"""SELECT n.item_id, i.title, p.category AS predicted, p.probability, n.nearest_catalog_id,
                  c.title AS nearest_catalog_title, n.nearest_similarity
           FROM near n JOIN items i USING (item_id) JOIN items c ON c.item_id = n.nearest_catalog_id
           LEFT JOIN {source} p ON p.item_id = n.item_id AND p.model = ?
           WHERE n.nearest_similarity < ?
           ORDER BY n.nearest_similarity, n.item_id""",
        [model, float(far_below)],
        tables={"near": near, **given},
    )
    return DriftReport(batch, far_below, by_category, candidates)


def nearest_catalog(
    store: Store, batch: str, item_ids: Sequence[str], vectors: np.ndarray
) -> pd.DataFrame:
    """Each item of upload ``batch`` with its most similar catalog item: item_id,
    nearest_catalog_id, nearest_similarity (exact; ``item_ids``/``vectors`` cover both).

    The costly part of :func:`drift` (a batch against every catalog item) and the only part that
    depends on vectors alone, so callers can keep it until the items change and pass it back.
    """
    vectors = _check_aligned(item_ids, vectors)
    rows = store.query_df(
        """SELECT t.row, i.item_id, i.source FROM ids t JOIN items i USING (item_id)
           WHERE i.source = 'catalog' OR (i.source = 'upload' AND i.batch = ?) ORDER BY t.row""",
        [batch],
        tables={"ids": _id_table(item_ids)},
    )
    return _nearest_catalog(rows[rows["source"] == "upload"], rows[rows["source"] == "catalog"], vectors)


#: Bytes of similarities one block of :func:`_nearest_catalog` may hold.
_NEAREST_BUDGET = 128 * 1024 * 1024


def _nearest_catalog(uploads: pd.DataFrame, catalog: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    columns = {"item_id": uploads["item_id"].to_numpy(), "nearest_catalog_id": None, "nearest_similarity": None}
    if uploads.empty or catalog.empty:
        return pd.DataFrame({k: pd.Series([], dtype=object if k != "nearest_similarity" else float) for k in columns})
    queries = vectors[uploads["row"].to_numpy()]
    targets = np.ascontiguousarray(vectors[catalog["row"].to_numpy()])
    best = np.empty(len(queries), dtype=np.int64)
    sims = np.empty(len(queries), dtype=np.float64)
    step = max(1, _NEAREST_BUDGET // (4 * len(targets)))
    for start in range(0, len(queries), step):
        block = queries[start : start + step] @ targets.T
        best[start : start + len(block)] = block.argmax(axis=1)  # one pass, not a partial sort
        sims[start : start + len(block)] = block[np.arange(len(block)), best[start : start + len(block)]]
    columns["nearest_catalog_id"] = catalog["item_id"].to_numpy()[best]
    columns["nearest_similarity"] = sims
    return pd.DataFrame(columns)


def _centroid_distances(uploads: pd.DataFrame, catalog: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    """1 - cosine between the centroid of batch items predicted as each category and the centroid of
    catalog items labelled with it (only categories that have both)."""
    predicted = uploads.dropna(subset=["predicted"])
    labelled = catalog.dropna(subset=["label"])
    shared = sorted(set(predicted["predicted"]) & set(labelled["label"]))
    if not shared:
        return pd.DataFrame({"category": pd.Series([], dtype=str), "centroid_distance": pd.Series([], dtype=float)})
    position = {name: i for i, name in enumerate(shared)}

    def centroids(frame: pd.DataFrame, column: str) -> np.ndarray:
        frame = frame[frame[column].isin(position)]
        codes = frame[column].map(position).to_numpy()
        return _unit(_group_sums(codes, vectors[frame["row"].to_numpy()], len(shared)))

    cosine = np.einsum("ij,ij->i", centroids(predicted, "predicted"), centroids(labelled, "label"))
    return pd.DataFrame({"category": shared, "centroid_distance": (1.0 - cosine).astype(np.float64)})


# -- emerging clusters ------------------------------------------------------------------------
@dataclass
class ClusterReport:
    """Clusters among (unlabelled) items.

    ``clusters``: cluster (0 = largest), size, keywords (a list of words, best first),
    example_titles (a list of the titles nearest the centre). ``members``: item_id, cluster,
    distance (``1 - cos`` to the normalised cluster centre), in the input order.
    """

    clusters: pd.DataFrame
    members: pd.DataFrame


@_half_the_cores
def emerging_clusters(
    items: pd.DataFrame, vectors: np.ndarray, n_clusters: int | None = None, n_keywords: int = 5, seed: int = 0
) -> ClusterReport:
    """Group ``items`` (item_id, title; aligned with ``vectors``) by k-means, with keywords per cluster.

    With ``n_clusters`` given, k-means with that k. Otherwise k is chosen by silhouette over
    :func:`cluster_k_range` (ceil(n / 25) to max(ceil(n / 10), 12): clusters small enough to name), on a
    sample of at most 2,000 items (silhouette is quadratic), seeded, then the
    chosen k is fitted on all items; fewer than 6 items make one cluster. Keywords come from
    class-based TF-IDF over the titles (each cluster one document; English stop words and
    digit-only tokens dropped; text without spaces, as Chinese, as character bigrams). Raises ``ValueError`` for no items or an impossible k.
    """
    from sklearn.cluster import KMeans

    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(items)
    if n != len(vectors):
        raise ValueError(f"{n} items but {len(vectors)} vectors")
    if n == 0:
        raise ValueError("no items to cluster")
    if n_clusters is not None and not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and the number of items ({n})")
    k = n_clusters if n_clusters is not None else _choose_k(vectors, seed)
    if k == 1:
        labels = np.zeros(n, dtype=np.int64)
        centres = vectors.mean(axis=0, keepdims=True)
    else:
        # float64: sklearn's k-means on float32 takes a slower, upcasting distance path.
        fitted = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(vectors.astype(np.float64))
        labels, centres = fitted.labels_.astype(np.int64), fitted.cluster_centers_
    # Number clusters by size (largest 0), ties by first member, so reruns read the same.
    sizes = np.bincount(labels, minlength=len(centres))
    first = np.array([np.flatnonzero(labels == c)[0] if sizes[c] else n for c in range(len(centres))])
    order = [c for c in np.lexsort((first, -sizes)) if sizes[c]]
    renumber = np.full(len(centres), -1)
    renumber[order] = np.arange(len(order))
    labels = renumber[labels]
    centres = _unit(np.asarray(centres, dtype=np.float32)[order])
    distance = 1.0 - np.einsum("ij,ij->i", vectors, centres[labels])
    titles = items["title"].astype(str).tolist()
    keywords = _class_tfidf_keywords(titles, labels, len(order), n_keywords)
    examples = []
    for c in range(len(order)):
        rows = np.flatnonzero(labels == c)
        nearest = rows[np.argsort(distance[rows], kind="stable")[:_EXAMPLES]]
        examples.append([titles[i] for i in nearest])
    clusters = pd.DataFrame(
        {"cluster": np.arange(len(order)), "size": np.bincount(labels), "keywords": keywords, "example_titles": examples}
    )
    members = pd.DataFrame(
        {"item_id": items["item_id"].astype(str).to_numpy(), "cluster": labels, "distance": distance.astype(np.float64)}
    )
    return ClusterReport(clusters, members)


#: Emerging clusters hold this many items on average at most: a list a person can read through
#: and name. The silhouette alone peaks at small k on sentence embeddings (2 clusters for 284
#: unlabelled toys, one of 187, issue 22), so the range it chooses from starts at n / this.
CLUSTER_MEAN_SIZE_MAX = 25
#: ... and ends at n / this (at least 12 while n // 3 allows): no smaller than a handful of items.
CLUSTER_MEAN_SIZE_MIN = 10
#: The most emerging clusters offered.
CLUSTER_K_MAX = 40


def cluster_k_range(n: int) -> tuple[int, int]:
    """The k the silhouette chooses from for ``n`` items: ceil(n / 25) (at least 2) to
    max(ceil(n / 10), 12), never above 40 or n // 3 (nor the low end above the high one).
    Measured (benchmarks/bench_clusters.py, BENCHMARKS.md): on the demo catalog k 5 → 18 (largest
    cluster 129 → 50 items, NMI 0.49 → 0.67); on Flipkart's 330 toys and school supplies k 2 → 33
    (largest 201 → 36 items, 10.5 → 2.3 categories per cluster)."""
    high = min(CLUSTER_K_MAX, n // 3, max(-(-n // CLUSTER_MEAN_SIZE_MIN), 12))
    return min(max(2, -(-n // CLUSTER_MEAN_SIZE_MAX)), high), high


def _choose_k(vectors: np.ndarray, seed: int, k_range: tuple[int, int] | None = None) -> int:
    """The k in :func:`cluster_k_range` with the best silhouette on a sample (1 for fewer than 6 items)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    low, top = k_range or cluster_k_range(n)
    if top < 2:
        return 1
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, size=min(n, _SILHOUETTE_SAMPLE), replace=False))].astype(np.float64)
    # Cosine distances of the sample once (unit rows), shared by every k's silhouette.
    distances = np.clip(1.0 - sample @ sample.T, 0.0, None)
    np.fill_diagonal(distances, 0.0)
    best_k, best = 1, -np.inf
    for k in range(max(2, low), top + 1):
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(sample)
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette_score(distances, labels, metric="precomputed")
        if score > best + 1e-9:  # ties keep the smaller k
            best_k, best = k, score
    return best_k


def _class_tfidf_keywords(titles: list[str], labels: np.ndarray, k: int, n_keywords: int) -> list[list[str]]:
    """Top ``n_keywords`` words per cluster by class-based TF-IDF: tf within the cluster's titles
    times log(1 + average words per cluster / the word's count over all clusters)."""
    from sklearn.feature_extraction.text import CountVectorizer

    documents = [" ".join(titles[i] for i in np.flatnonzero(labels == c)) for c in range(k)]
    # Words of two or more characters that are not only digits (sizes, years and codes say little);
    # Chinese/Japanese/Korean runs, written without spaces, as character bigrams (coldrec.language).
    vectorizer = CountVectorizer(stop_words="english", tokenizer=WordTokenizer(r"(?u)\b(?!\d+\b)\w\w+\b"),
                                 token_pattern=None)
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # nothing left but stop words and numbers
        return [[] for _ in range(k)]
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    idf = np.log1p(counts.sum() / k / counts.sum(axis=0))
    scores = tf * idf
    out = []
    for c in range(k):
        ranked = np.lexsort((words, -scores[c]))  # best score first, ties alphabetical
        out.append([str(words[j]) for j in ranked[:n_keywords] if counts[c, j] > 0])
    return out


# -- near-duplicates --------------------------------------------------------------------------
class _BestPairs:
    """The best ``limit`` pairs (row a < row b, cosine >= threshold) seen so far, each once.

    ``floor`` rises to the last kept pair's similarity once ``limit`` pairs are held: later
    candidates below it cannot enter, so callers may skip them.
    """

    def __init__(self, threshold: float, limit: int) -> None:
        self.limit = limit
        self.floor = float(threshold)
        self.a = np.zeros(0, dtype=np.int64)
        self.b = np.zeros(0, dtype=np.int64)
        self.s = np.zeros(0, dtype=np.float64)

    def add(self, a: np.ndarray, b: np.ndarray, s: np.ndarray, distinct: bool = True) -> None:
        """Offer pairs (``a < b``); ``distinct=False`` when a pair may already be held."""
        # Rounded so float32 noise (1.0000001 vs 0.99999994) does not order exact copies.
        self.a = np.concatenate([self.a, np.asarray(a, dtype=np.int64)])
        self.b = np.concatenate([self.b, np.asarray(b, dtype=np.int64)])
        self.s = np.concatenate([self.s, np.round(np.asarray(s, dtype=np.float64), 6)])
        if not distinct and len(self.s):
            # A pair found from both of its items: keep it once, at its best similarity.
            order = np.lexsort((-self.s, self.b, self.a))
            a_, b_ = self.a[order], self.b[order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = (a_[1:] != a_[:-1]) | (b_[1:] != b_[:-1])
            keep = order[first]
            self.a, self.b, self.s = self.a[keep], self.b[keep], self.s[keep]
        if len(self.s) >= self.limit:
            best = np.lexsort((self.b, self.a, -self.s))[: self.limit]
            self.a, self.b, self.s = self.a[best], self.b[best], self.s[best]
            # Later candidates only matter if at least as similar as the current last one.
            self.floor = max(self.floor, self.s[-1] - 1e-6)


def _pairs_frame(store: Store, ids: np.ndarray, pairs: _BestPairs) -> pd.DataFrame:
    """The held pairs with titles and sources from the store, ordered as :func:`near_duplicates` says."""
    frame = pd.DataFrame({"a": ids[pairs.a], "b": ids[pairs.b], "similarity": pairs.s})
    return store.query_df(
        """WITH p AS (
               SELECT CASE WHEN ia.source < ib.source OR (ia.source = ib.source AND p.a <= p.b) THEN p.a ELSE p.b END AS a,
                      CASE WHEN ia.source < ib.source OR (ia.source = ib.source AND p.a <= p.b) THEN p.b ELSE p.a END AS b,
                      p.similarity
               FROM pairs p JOIN items ia ON ia.item_id = p.a JOIN items ib ON ib.item_id = p.b)
           SELECT p.a AS item_a, ia.title AS title_a, ia.source AS source_a,
                  p.b AS item_b, ib.title AS title_b, ib.source AS source_b, max(p.similarity) AS similarity
           FROM p JOIN items ia ON ia.item_id = p.a JOIN items ib ON ib.item_id = p.b
           WHERE p.a <> p.b
           GROUP BY ALL ORDER BY similarity DESC, item_a, item_b LIMIT ?""",
        [int(pairs.limit)],
        tables={"pairs": frame},
    )


@_half_the_cores
def near_duplicates(
    store: Store, item_ids: Sequence[str], vectors: np.ndarray, threshold: float = 0.95, limit: int = 500
) -> pd.DataFrame:
    """Pairs of items with cosine >= ``threshold``, most similar first, at most ``limit``.

    Columns item_a, title_a, source_a, item_b, title_b, source_b, similarity (rounded to 6
    decimals; ties by item_a, item_b). Each unordered pair appears once, catalog side first
    (then by id). Exact: every pair is compared, one block of rows at a time against the rows
    after it, keeping only the best ``limit`` pairs so far, so memory stays bounded even when
    many items are identical. Quadratic in items (about 20 s at 50k): above that use
    :func:`near_duplicates_indexed`. Ids unknown to the store are skipped.
    """
    vectors = _check_aligned(item_ids, vectors)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    ids = np.asarray([str(i) for i in item_ids], dtype=object)
    best = _BestPairs(threshold, limit)
    for start in range(0, len(vectors), _PAIR_BLOCK):
        stop = min(start + _PAIR_BLOCK, len(vectors))
        sims = vectors[start:stop] @ vectors[start:].T
        # Keep j > i only: each unordered pair once, never an item with itself.
        sims[np.tril_indices(stop - start, 0, sims.shape[1])] = -np.inf
        if np.count_nonzero(sims >= best.floor) > limit:
            # Too many candidates: a pair among the best `limit` overall is among its row's best `limit`.
            k = min(limit, sims.shape[1])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            keep = np.take_along_axis(sims, top, axis=1) >= best.floor
            rows, cols = np.nonzero(keep)[0], top[keep]
        else:
            rows, cols = np.nonzero(sims >= best.floor)
        best.add(rows + start, cols + start, sims[rows, cols])
    return _pairs_frame(store, ids, best)


@_half_the_cores
def near_duplicates_indexed(
    store: Store, index: VectorIndex, threshold: float = 0.95, limit: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """:func:`near_duplicates` over the live items of ``index``, from each item's nearest neighbours.

    Every item starts from its nearest neighbours kept by the index for the item graph
    (:meth:`~coldrec.neighbours.VectorIndex.neighbour_table`: searched once, by ``coldrec init``);
    an item whose last one still reaches the threshold asks again for twice as many (up to
    ``limit + 1``), so every
    pair above the threshold is found whenever the index finds the neighbours: on an exact
    index (up to :data:`~coldrec.neighbours.EXACT_MAX_ITEMS` items) the result equals
    :func:`near_duplicates`; on faiss HNSW it is as complete as the index's recall (measured by
    ``benchmarks/bench_scale.py``). Linear in items instead of quadratic; queries run in blocks,
    so memory stays bounded. ``progress(done, total)`` is called after each block of items.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    best = _BestPairs(threshold, limit)
    live = np.flatnonzero(index.alive)
    most = min(len(live), limit + 1)  # the item itself comes back too
    kept = GRAPH_CANDIDATES  # the neighbours the item graph already searched and kept (coldrec init)
    for start in range(0, len(live), _QUERY_BLOCK):
        todo = live[start : start + _QUERY_BLOCK]
        k = min(kept, most)
        while len(todo) and k > 1:
            if k == kept:
                rows, sims = index.neighbour_table(k, rows=todo)
            else:
                rows, sims = index.search_rows(index.vectors[todo], k)
            a = np.repeat(todo, rows.shape[1])
            b, s = rows.ravel(), sims.ravel().astype(np.float64)
            keep = (b >= 0) & (b != a) & (s >= best.floor)
            a, b, s = a[keep], b[keep], s[keep]
            best.add(np.minimum(a, b), np.maximum(a, b), s, distinct=False)
            if k >= most:
                break
            # Rows whose k-th neighbour still qualifies may have more pairs beyond it.
            todo = todo[sims[:, -1] >= best.floor]
            k = min(2 * k, most)
        if progress is not None:
            progress(min(start + _QUERY_BLOCK, len(live)), len(live))
    return _pairs_frame(store, np.asarray(index.ids, dtype=object), best)


# -- helpers ----------------------------------------------------------------------------------
def _check_aligned(item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(item_ids):
        raise ValueError(f"{len(item_ids)} item ids but vectors of shape {vectors.shape}")
    return vectors


def _id_table(item_ids: Sequence[str]) -> pa.Table:
    """item_id and its row in the caller's vectors (the first row when an id repeats)."""
    ids = pd.Series([str(i) for i in item_ids], dtype=object)
    first = ~ids.duplicated().to_numpy()
    return pa.table(
        {
            "item_id": pa.array(ids[first].tolist(), pa.string()),
            "row": pa.array(np.flatnonzero(first), pa.int64()),
        }
    )


def _group_sums(codes: np.ndarray, vectors: np.ndarray, groups: int) -> np.ndarray:
    """Sum of the rows of ``vectors`` per group code (one sparse product, no Python loop)."""
    onehot = sparse.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (np.asarray(codes), np.arange(len(codes)))), shape=(groups, len(codes))
    )
    return np.asarray(onehot @ vectors)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
