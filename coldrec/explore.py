"""What the embedding explorer shows: every item with its label, the current model's prediction
and a stored 2-D position; neighbours of a picked item; turning a cluster into a category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError, StoreError
from .labelling import bulk_label
from .neighbours import top_k_cosine
from .workspace import Workspace


def item_table(ws: Workspace) -> pd.DataFrame:
    """Every item: item_id, title, source, batch, category (label or None), labelled,
    predicted, confidence, unsure — predictions from the current model, computed once per version."""

    def build() -> pd.DataFrame:
        items = ws.store.items().reset_index(drop=True)
        current = ws.current_predictions()
        out = items[["item_id", "title", "source", "batch", "category"]].copy()
        out["labelled"] = out["category"].notna()
        out["predicted"] = current["predicted"].to_numpy() if len(items) else []
        out["confidence"] = current["confidence"].to_numpy() if len(items) else []
        out["unsure"] = current["unsure"].to_numpy() if len(items) else []
        return out

    return ws.memo("item_table", ws.version(), build)  # type: ignore[return-value]


def map_frame(ws: Workspace, method: str = "pca") -> pd.DataFrame:
    """:func:`item_table` with x, y from the stored projection (computed and stored on first use),
    and display columns: ``origin`` (catalog or the upload batch), ``label`` and ``status``."""
    from .projection import stored_projection

    def build() -> pd.DataFrame:
        items, vectors = ws.item_vectors()
        xy = stored_projection(ws.store, ws.encoder.name, method, items["item_id"].tolist(), vectors)
        frame = item_table(ws).merge(xy, on="item_id", how="inner")
        frame["origin"] = frame["batch"].where(frame["source"] == "upload", "catalog").fillna("upload")
        frame["label"] = frame["category"].fillna("(not labelled)")
        frame["status"] = frame["labelled"].map({True: "labelled", False: "not labelled"})
        return frame

    return ws.memo(f"map_frame:{method}", ws.version(), build)  # type: ignore[return-value]


def map_figure(
    ws: Workspace, method: str, colour: str, highlight: tuple[str, ...] = (), max_points: int = 20_000
) -> tuple[object, int, int]:
    """The map figure (sampled to ``max_points``, always keeping ``highlight``), the number of
    points drawn and the number of items. Kept until items, labels or the arguments change:
    building a 20,000-point figure takes about half a second."""
    from .charts import embedding_map
    from .projection import sample_for_display

    def build() -> tuple[object, int, int]:
        frame = map_frame(ws, method)
        shown, _ = sample_for_display(frame, max_points=max_points, keep=highlight)
        return embedding_map(shown, colour, highlight=highlight), len(shown), len(frame)

    key = (ws.version(), method, colour, highlight, max_points)
    return ws.memo("map_figure", key, build)  # type: ignore[return-value]


def category_health(ws: Workspace) -> pd.DataFrame:
    """:func:`coldrec.analytics.category_health` over the labelled items, kept until they change."""
    from .analytics import category_health as run

    def build() -> pd.DataFrame:
        items, vectors = ws.item_vectors()
        return run(ws.store, items["item_id"].tolist(), vectors)

    return ws.memo("category_health", ws.version(), build)  # type: ignore[return-value]


def neighbours_of(ws: Workspace, item_id: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` items most similar to ``item_id`` (any source): item_id, title, source, category, similarity."""
    items, vectors = ws.item_vectors()
    where = np.flatnonzero((items["item_id"] == item_id).to_numpy())
    if len(where) == 0:
        raise StoreError(f"unknown item {item_id!r}")
    idx, sim = top_k_cosine(vectors[where], vectors, min(k + 1, len(items)))
    keep = idx[0] != where[0]
    out = items.iloc[idx[0][keep][:k]][["item_id", "title", "source", "category"]].reset_index(drop=True)
    out["similarity"] = sim[0][keep][:k].astype(float)
    return out


def drift(ws: Workspace, batch: str, far_below: float = 0.5) -> object:
    """:func:`coldrec.analytics.drift` of an upload batch, kept until items or labels change."""
    from .analytics import drift as run

    def build() -> object:
        items, vectors = ws.item_vectors()
        return run(ws.store, ws.encoder.name, batch, items["item_id"].tolist(), vectors, far_below=far_below)

    return ws.memo(f"drift:{batch}:{far_below}", ws.version(), build)


def emerging_clusters(ws: Workspace, n_clusters: int | None = None) -> object:
    """:func:`coldrec.analytics.emerging_clusters` over the unlabelled uploads, kept until they change."""
    from .analytics import emerging_clusters as run

    def build() -> object:
        items, vectors = ws.item_vectors()
        rows = np.flatnonzero(((items["source"] == "upload") & items["category"].isna()).to_numpy())
        return run(items.iloc[rows][["item_id", "title"]], vectors[rows], n_clusters=n_clusters)

    return ws.memo(f"clusters:{n_clusters}", ws.version(), build)


#: The lowest similarity the Explore page asks near-duplicates for.
NEAR_DUPLICATE_FLOOR = 0.80


def near_duplicates(ws: Workspace, threshold: float = 0.95) -> pd.DataFrame:
    """:func:`coldrec.analytics.near_duplicates` over every item at ``threshold``.

    The exact search (about 20 s at 50k items) runs once per item set at
    :data:`NEAR_DUPLICATE_FLOOR`; a higher threshold filters that result, which holds the most
    similar pairs, so moving the slider costs nothing.
    """
    from .analytics import near_duplicates as run

    if threshold < NEAR_DUPLICATE_FLOOR:
        raise ConfigError(f"near-duplicates start at similarity {NEAR_DUPLICATE_FLOOR}")

    def build() -> pd.DataFrame:
        items, vectors = ws.item_vectors()
        return run(ws.store, items["item_id"].tolist(), vectors, threshold=NEAR_DUPLICATE_FLOOR)

    pairs = ws.memo("near_duplicates", ws.store.catalog_fingerprint(), build)
    return pairs[pairs["similarity"] >= threshold].reset_index(drop=True)  # type: ignore[index]


def cluster_to_category(ws: Workspace, name: str, item_ids: list[str], who: str, description: str = "") -> str:
    """Create a category from an emerging cluster and label its items with it (one undoable action)."""
    created = ws.add_category(name, description)
    bulk_label(ws, item_ids, created, who)
    return created
