"""What the embedding explorer shows: every item with its label, the current model's prediction
and a stored 2-D position; neighbours of a picked item; turning a cluster into a category."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from .errors import ConfigError, StoreError
from .labelling import bulk_label
from .errors import NotReadyError
from .services.state import Depends
from .sqlbox import SQLResult, run_readonly
from .workspace import Workspace


def item_table(ws: Workspace) -> pd.DataFrame:
    """Every item: item_id, title, source, batch, category (label or None), labelled,
    predicted, confidence, unsure, novel — predictions from the current model, computed once per
    version (no predictions without categories: predicted is then None)."""

    def build() -> pd.DataFrame:
        items = ws.catalog.items()
        out = items[["item_id", "title", "source", "batch", "category"]].copy()
        out["labelled"] = out["category"].notna()
        if len(items) and ws.store.category_names():
            current = ws.predictor.current_predictions()
            for column in ("predicted", "confidence", "unsure", "novel"):
                out[column] = current[column].to_numpy()
        else:
            out = out.assign(predicted=None, confidence=np.nan, unsure=False, novel=False)
        return out

    return ws.state.memo("item_table", Depends.PREDICTIONS, build)


def map_positions(ws: Workspace, method: str = "pca") -> pd.DataFrame:
    """item_id, x, y of every item in store order, from the stored projection (computed and
    stored on first use). Kept until the items change: labels do not move the map."""
    from .projection import stored_projection

    def build() -> pd.DataFrame:
        items, vectors = ws.vectors.item_vectors()
        if items.empty:
            return pd.DataFrame({"item_id": pd.Series(dtype=object), "x": pd.Series(dtype=float), "y": pd.Series(dtype=float)})
        return stored_projection(ws.store, ws.encoder.name, method, items["item_id"].tolist(), vectors)

    return ws.state.memo(f"map_positions:{method}", Depends.MODEL | Depends.ITEMS, build)


def map_frame(ws: Workspace, method: str = "pca") -> pd.DataFrame:
    """:func:`item_table` with x, y from :func:`map_positions`, and display columns: ``origin``
    (catalog or the upload batch), ``label`` and ``status``."""

    def build() -> pd.DataFrame:
        table = item_table(ws)
        xy = map_positions(ws, method)
        if table.empty:
            return pd.DataFrame(columns=[*table.columns, "x", "y", "origin", "label", "status"])
        if table["item_id"].tolist() == xy["item_id"].tolist():  # both in store order: no join needed
            frame = table.assign(x=xy["x"].to_numpy(), y=xy["y"].to_numpy())
        else:
            frame = table.merge(xy, on="item_id", how="inner")
        frame["origin"] = frame["batch"].where(frame["source"] == "upload", "catalog").fillna("upload")
        frame["label"] = frame["category"].fillna("(not labelled)")
        frame["status"] = np.where(frame["labelled"].to_numpy(), "labelled", "not labelled")
        return frame

    return ws.state.memo(f"map_frame:{method}", Depends.PREDICTIONS, build)


def map_density(ws: Workspace, method: str = "pca") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`coldrec.projection.density_grid` of every item's map position (kept until the items change)."""
    from .projection import density_grid

    def build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xy = map_positions(ws, method)
        return density_grid(xy["x"].to_numpy(), xy["y"].to_numpy())

    return ws.state.memo(f"map_density:{method}", Depends.MODEL | Depends.ITEMS, build)


def map_figure(
    ws: Workspace, method: str, colour: str, highlight: tuple[str, ...] = (), max_points: int = 20_000
) -> tuple[object, int, int]:
    """The map figure, the number of points drawn and the number of items. At most
    ``max_points`` are drawn as points (a sample, always keeping ``highlight``); when that is
    fewer than the items, every item is drawn beneath them as a density layer. Kept until
    items, labels or the arguments change (building a 20,000-point figure takes about half a
    second)."""
    from .charts import category_colours, embedding_map
    from .projection import sample_for_display

    def build() -> tuple[object, int, int]:
        frame = map_frame(ws, method)
        shown, sampled = sample_for_display(frame, max_points=max_points, keep=highlight)
        colours = category_colours(ws.store.category_names())
        density = map_density(ws, method) if sampled else None
        return embedding_map(shown, colour, highlight=highlight, colours=colours, density=density), len(shown), len(frame)

    return ws.state.memo("map_figure", Depends.PREDICTIONS, build, extra=(method, colour, highlight, max_points))


def selected_items(ws: Workspace, method: str, selection: object) -> list[str]:
    """The item ids a map selection covers, in map order: every item inside its boxes and
    lassos, whether drawn as a point or only in the density layer, plus points clicked.
    ``selection`` is Streamlit's plotly selection state, read defensively (it comes from the
    browser); ids not on the map are dropped."""
    from .projection import items_in_selection

    frame = map_positions(ws, method)
    inside = items_in_selection(frame["x"].to_numpy(), frame["y"].to_numpy(), selection)
    ids = frame["item_id"].to_numpy()[inside].tolist()
    points = selection.get("points") if isinstance(selection, dict) else None
    clicked = []
    for point in points if isinstance(points, list) else []:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], str):
            clicked.append(data[0])
    if clicked:
        known = ws.catalog.item_positions(clicked) >= 0
        ids = list(dict.fromkeys(ids + [i for i, ok in zip(clicked, known) if ok]))
    return ids


def selection_table(ws: Workspace, method: str, item_ids: list[str]) -> pd.DataFrame:
    """``item_ids`` as the map shows them (unknown ids dropped): item_id, title, source, label,
    predicted, confidence, unsure, novel."""
    frame = map_frame(ws, method)
    rows = ws.catalog.item_positions(item_ids) if len(frame) == len(ws.catalog.items()) else pd.Index(frame["item_id"]).get_indexer(item_ids)
    return frame.iloc[rows[rows >= 0]][
        ["item_id", "title", "source", "label", "predicted", "confidence", "unsure", "novel"]
    ].reset_index(drop=True)


def category_health(ws: Workspace) -> pd.DataFrame:
    """:func:`coldrec.analytics.category_health` over the labelled items, kept until they change."""
    from .analytics import category_health as run

    def build() -> pd.DataFrame:
        items, vectors = ws.vectors.item_vectors()
        return run(ws.store, items["item_id"].tolist(), vectors)

    return ws.state.memo("category_health", Depends.PREDICTIONS, build)


def neighbours_of(ws: Workspace, item_id: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` items most similar to ``item_id`` (any source): item_id, title, source, category, similarity."""
    index = ws.vectors.item_index()
    row = index.row_of(item_id)
    if row is None:
        raise StoreError(f"unknown item {item_id!r}")
    hits = index.search(index.vectors[row : row + 1], k, exclude=[item_id])[0]
    rows = ws.catalog.item_positions([i for i, _ in hits])
    out = ws.catalog.items().iloc[rows[rows >= 0]][["item_id", "title", "source", "category"]].reset_index(drop=True)
    out["similarity"] = [float(s) for (_, s), r in zip(hits, rows) if r >= 0]
    return out


def current_predictions(ws: Workspace) -> pd.DataFrame:
    """The current model's predictions in the shape analytics reads (item_id, category,
    probability, unsure): what every page shows as current. Empty without categories."""
    table = item_table(ws)
    if not ws.store.category_names():
        table = table.iloc[0:0]
    return pd.DataFrame({"item_id": table["item_id"], "category": table["predicted"],
                         "probability": table["confidence"], "unsure": table["unsure"]})


def category_summary(ws: Workspace) -> pd.DataFrame:
    """:func:`coldrec.analytics.category_summary` over the current model's predictions."""
    from .analytics import category_summary as run

    return ws.state.memo("category_summary", Depends.PREDICTIONS, lambda: run(ws.store, ws.encoder.name, current_predictions(ws)))


def confidence_histogram(ws: Workspace) -> pd.DataFrame:
    """:func:`coldrec.analytics.confidence_histogram` of the current model's predictions."""
    from .analytics import confidence_histogram as run

    return run(ws.store, ws.encoder.name, predictions=current_predictions(ws))


def unsure_by_batch(ws: Workspace) -> pd.DataFrame:
    """:func:`coldrec.analytics.unsure_by_batch` from the current model's predictions."""
    from .analytics import unsure_by_batch as run

    return run(ws.store, ws.encoder.name, predictions=current_predictions(ws))


def drift(ws: Workspace, batch: str, far_below: float = 0.5) -> object | None:
    """:func:`coldrec.analytics.drift` of an upload batch against the catalog, with the current
    model's predictions; kept until items or labels change. The batch's nearest catalog items
    (the costly part: seconds at 100k items) are kept until the items change, so a label costs
    only the regrouping. ``None`` without catalog items (there is nothing to drift from)."""
    from .analytics import drift as run
    from .analytics import nearest_catalog

    def build() -> object:
        items, vectors = ws.vectors.item_vectors()
        if not (items["source"] == "catalog").any():
            return None
        ids = items["item_id"].tolist()
        nearest = ws.state.memo(f"drift-nearest:{batch}", Depends.MODEL | Depends.ITEMS,
                          lambda: nearest_catalog(ws.store, batch, ids, vectors))
        return run(ws.store, ws.encoder.name, batch, ids, vectors, far_below=far_below,
                   predictions=current_predictions(ws), nearest=nearest)

    return ws.state.memo(f"drift:{batch}:{far_below}", Depends.PREDICTIONS, build)


#: Catalog items whose nearest other catalog item sets the drift page's default (a sample: at a
#: million items every one would be a million searches).
FAR_SAMPLE = 2_000


def far_from_catalog(ws: Workspace) -> float | None:
    """The drift page's default "far from the catalog" similarity, by rule rather than one
    constant for every model: :data:`~coldrec.estimator.NOVEL_QUANTILE` of the catalog's own items
    are less similar than this to their nearest other catalog item, so a batch item below it is
    farther from the catalog than 95% of the catalog's items are from each other (a fixed 0.5
    flagged 29 of the demo's 72 arrivals, confident ones among them; this rule flags 6). Measured on
    a seeded sample of at most :data:`FAR_SAMPLE` catalog items through the item index; kept until
    the items or the model change. ``None`` with fewer than two catalog items."""
    from .estimator import NOVEL_QUANTILE

    def build() -> float | None:
        items, vectors = ws.vectors.item_vectors()
        rows = np.flatnonzero((items["source"] == "catalog").to_numpy())
        if len(rows) < 2:
            return None
        if len(rows) > FAR_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(rows, FAR_SAMPLE, replace=False))
        ids = items["item_id"].to_numpy()
        hits = ws.vectors.similar_catalog_items(vectors[rows], k=1, exclude=[str(ids[r]) for r in rows])
        nearest = np.array([found[0][1] for found in hits if found], dtype=np.float64)
        return round(float(np.quantile(nearest, NOVEL_QUANTILE)), 2) if len(nearest) else None

    return ws.state.memo("far_from_catalog", Depends.MODEL | Depends.ITEMS, build)


def emerging_clusters(ws: Workspace, n_clusters: int | None = None) -> object:
    """:func:`coldrec.analytics.emerging_clusters` over the unlabelled uploads, kept until they change."""
    from .analytics import emerging_clusters as run

    def build() -> object:
        items, vectors = ws.vectors.item_vectors()
        rows = np.flatnonzero(((items["source"] == "upload") & items["category"].isna()).to_numpy())
        return run(items.iloc[rows][["item_id", "title"]], vectors[rows], n_clusters=n_clusters)

    return ws.state.memo(f"clusters:{n_clusters}", Depends.PREDICTIONS, build)


#: The lowest similarity the Explore page asks near-duplicates for.
NEAR_DUPLICATE_FLOOR = 0.80


class _Search:
    """One background near-duplicate search: its progress, then its pairs or its error."""

    def __init__(self) -> None:
        self.done, self.total = 0, 0
        self.started = False
        self.pairs: pd.DataFrame | None = None
        self.error: BaseException | None = None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def near_duplicates(ws: Workspace, threshold: float = 0.95, wait: bool = True) -> pd.DataFrame:
    """:func:`coldrec.analytics.near_duplicates_indexed` over every item at ``threshold``.

    Each item's nearest neighbours come from the workspace's item index (exact up to 20k items,
    so the pairs equal the all-pairs search there; faiss HNSW above, linear in items). The search
    runs once per item set at :data:`NEAR_DUPLICATE_FLOOR`; a higher threshold filters that
    result, which holds the most similar pairs, so moving the slider costs nothing.

    ``wait=False`` (for pages): above the exact-search size the search runs in a background
    thread, and until it is done this raises :class:`NotReadyError` saying how far it got
    (about a minute at 100k items on 2 cores); ask again on the next rerun.
    """
    from .analytics import near_duplicates_indexed as run
    from .neighbours import EXACT_MAX_ITEMS

    if threshold < NEAR_DUPLICATE_FLOOR:
        raise ConfigError(f"near-duplicates start at similarity {NEAR_DUPLICATE_FLOOR}")
    key = ws.store.catalog_fingerprint()

    def build(progress=None, index=None) -> pd.DataFrame:  # noqa: ANN001
        return run(ws.store, index or ws.vectors.item_index(), threshold=NEAR_DUPLICATE_FLOOR, progress=progress)

    if not wait and int(key[0]) > EXACT_MAX_ITEMS:
        with _SEARCH_LOCK:  # one search per item set, however many sessions ask
            search: _Search = ws.state.memo("near_duplicates_search", Depends.ITEMS, _Search)
            starting, search.started = not search.started, True
        if starting:
            search.total = int(key[0])
            index = ws.vectors.item_index()  # brought up to date here, as every page thread does; the search only reads it

        def work(cancelled: object) -> None:
            try:
                search.pairs = build(search.progress, index)
            except BaseException as exc:  # shown to the page; a bug keeps its traceback in the log
                search.error = exc
                raise

        if starting:
            ws.background.start("near-duplicates", work)
        if search.error is not None:
            raise search.error
        if search.pairs is None:
            raise NotReadyError(
                f"Finding near-duplicates in the background: {search.done:,} of {search.total:,} items searched "
                "(about a minute per 100,000 items). They appear here when done."
            )
        pairs = ws.state.memo("near_duplicates", Depends.ITEMS, lambda: search.pairs)
    else:
        pairs = ws.state.memo("near_duplicates", Depends.ITEMS, build)
    return pairs[pairs["similarity"] >= threshold].reset_index(drop=True)  # type: ignore[index]


_SEARCH_LOCK = threading.Lock()


def run_sql(ws: Workspace, sql: str) -> SQLResult:
    """The SQL box: one read-only SELECT over the views, with the current model's predictions
    (:func:`coldrec.sqlbox.run_readonly`; raises :class:`~coldrec.sqlbox.SQLRefused`)."""
    return run_readonly(ws.store, ws.encoder.name, sql)


def cluster_to_category(ws: Workspace, name: str, item_ids: list[str], who: str, description: str = "") -> str:
    """Create a category from an emerging cluster and label its items with it (one undoable action)."""
    ws.access.require(who, "label", count=len(item_ids))  # before the category exists: all or nothing
    created = ws.catalog.add_category(name, description, actor=who)
    bulk_label(ws, item_ids, created, who)
    return created


def category_overview(ws: Workspace) -> pd.DataFrame:
    """Per category: catalog items, and new arrivals labelled, predicted confidently and predicted
    but unsure by the current model (columns category, catalog, labelled, confident, unsure),
    most new arrivals first. Empty without items."""
    table = item_table(ws)
    columns = ["category", "catalog", "labelled", "confident", "unsure"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    uploads = table[table["source"] == "upload"]
    catalog = table[table["source"] == "catalog"]
    guessed = uploads[~uploads["labelled"]]
    out = pd.DataFrame({
        "catalog": catalog["category"].value_counts(),
        "labelled": uploads["category"].value_counts(),
        "confident": guessed.loc[~guessed["unsure"], "predicted"].value_counts(),
        "unsure": guessed.loc[guessed["unsure"], "predicted"].value_counts(),
    }).reindex(ws.store.category_names()).fillna(0).astype(int)
    out = out.rename_axis("category").reset_index()
    new = out["labelled"] + out["confident"] + out["unsure"]
    return out.assign(_new=new).sort_values(["_new", "catalog"], ascending=False).drop(columns="_new").reset_index(drop=True)[columns]


def cluster_names(report: object) -> pd.DataFrame:
    """The clusters of an :class:`~coldrec.analytics.ClusterReport` named by their keywords
    ("pool · float · inflatable"; the number only where keywords repeat): cluster, name, size,
    keywords, example_titles."""
    clusters = report.clusters.copy()  # type: ignore[attr-defined]
    names = [" · ".join(words[:3]) if len(words) else f"cluster {c + 1}" for c, words in zip(clusters["cluster"], clusters["keywords"])]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    clusters["name"] = [f"{n} ({c + 1})" if seen[n] > 1 else n for n, c in zip(names, clusters["cluster"])]
    return clusters[["cluster", "name", "size", "keywords", "example_titles"]]


def cluster_members(ws: Workspace, report: object, cluster: int) -> pd.DataFrame:
    """The members of one cluster, most central first: item_id, title, similarity (cosine to the centre)."""
    members = report.members[report.members["cluster"] == cluster]  # type: ignore[attr-defined]
    titles = ws.store.items_by_id(members["item_id"].tolist())["title"]
    out = members.assign(title=members["item_id"].map(titles), similarity=1.0 - members["distance"])
    return out.sort_values("similarity", ascending=False)[["item_id", "title", "similarity"]].reset_index(drop=True)


def item_details(ws: Workspace, item_id: str) -> dict[str, object]:
    """Everything stored about one item for display: title, description, brand, price, source,
    batch, category (its label or None). Raises ``NotReadyError`` for an unknown id."""
    row = ws.store.item_record(item_id)  # one lookup: this runs on every Label next click
    if row.empty:
        raise NotReadyError(f"unknown item {item_id!r}")
    record = row.iloc[0]
    return {
        key: (None if not isinstance(record[key], str) and pd.isna(record[key]) else record[key])
        for key in ("item_id", "title", "description", "brand", "price", "source", "batch", "category")
    }


def is_novel(ws: Workspace, item_id: str) -> bool:
    """Whether the current model finds one item like none of the categories (``Prediction.novel``),
    predicting that item alone (the whole item table costs seconds at 10k items after a label)."""
    row = ws.store.item_record(item_id)  # its one cached vector, not every item's
    if row.empty:
        raise NotReadyError(f"unknown item {item_id!r}")
    vector = ws.vectors.embed_items(row)
    prediction = ws.predictor.classifier().explain(vector, unsure_below=ws.settings.unsure_below, n_evidence=0, ids=[item_id])
    return bool(prediction[0].novel)
