"""Audiences from purchase history: the audience model over stored purchases, one item's
audience, and one shopper's purchases and category affinity."""

from __future__ import annotations

import pandas as pd

from ..audience import AudienceModel, build_audience, segment_table
from ..errors import NotReadyError
from ..ingest import item_text
from ..store import Store
from .catalog import CatalogService
from .state import Depends, State
from .vectors import VectorService


class AudienceService:
    """The audience model (fitted once per purchases, catalog and purchased items' categories)."""

    def __init__(self, state: State, catalog: CatalogService, vectors: VectorService) -> None:
        self._state = state
        self.store = state.store
        self._catalog = catalog
        self._vectors = vectors

    def model(self) -> AudienceModel | None:
        """The audience model over stored purchases (``None`` without any), with the blend
        fitted on them when there are enough; rebuilt when purchases, the catalog or the
        categories of purchased items change."""
        purchases = self.store.interactions()
        if purchases.empty:
            return None
        items = self._catalog.items()
        items = items[items["item_id"].isin(set(purchases["item_id"]))]
        categories = [c if isinstance(c, str) else None for c in items["category"]]

        def build() -> AudienceModel:
            texts = [item_text(t, d) for t, d in zip(items["title"], items["description"])]
            return build_audience(purchases, items["item_id"].tolist(), self._vectors.embed_items(items),
                                  item_categories=categories, item_texts=texts)

        # Keyed on the purchased items' categories, not the label version: a label elsewhere
        # must not refit it (49 s on the demo).
        return self._state.memo("audience", Depends.MODEL | Depends.PURCHASES | Depends.ITEMS, build,
                                extra=(hash(tuple(categories)),))

    def segment(self, item_id: str, n: int = 20, include_weak: bool = False) -> tuple[pd.DataFrame, str]:
        """The audience of one stored item (:func:`coldrec.audience.segment_table`) and the
        verdict sentence ("no clear audience" when nobody reaches the measured threshold)."""
        check_audience_request(self.store, item_id)  # before the model: an unknown id is told at once
        model = self.model()
        if model is None:
            raise NotReadyError("No purchases yet: import them first (python -m coldrec import-interactions FILE).")
        items = self._catalog.items()
        item = items[items["item_id"] == str(item_id)]
        vector = self._vectors.embed_items(item)[0]
        text = item_text(item["title"].iloc[0], item["description"].iloc[0])
        titles = dict(zip(items["item_id"], items["title"]))
        return segment_table(model, vector, titles, n, include_weak, text), model.verdict(vector, text)

    def purchases_of(self, user_id: str) -> pd.DataFrame:
        """One shopper's purchases with the items' titles and categories."""
        return self.store.purchases_of(user_id)

    def category_affinity(self, user_id: str) -> pd.DataFrame:
        """One shopper's share of purchases per category."""
        return self.store.category_affinity(user_id)


def check_audience_request(store: Store, item_id: str) -> None:
    """Raise :class:`NotReadyError` for an item id the database does not hold, or when it holds no
    purchases: two indexed lookups, so the CLI says so in a second instead of after fitting the
    audience model (49 s on the demo)."""
    if not store.interactions_version():
        raise NotReadyError("No purchases yet: import them first (python -m coldrec import-interactions FILE).")
    if store.item_record(str(item_id)).empty:
        raise NotReadyError(
            f"No item with id {str(item_id)[:80]!r} in the database: store it first "
            "(python -m coldrec predict FILE --save-batch NAME) or use a stored id."
        )
