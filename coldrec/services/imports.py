"""Files coming in: a catalog (with its categories and labels), upload batches and purchases.
Each import re-runs the language rule on what is now stored and embeds what it added."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..access import Access
from ..audience import load_interactions
from ..config import DEMO_DIR
from ..encoder import ProgressFn
from ..errors import DataImportError
from ..ingest import OPERATOR_FILES, PURCHASE_UPLOADS, IngestError, Limits, load_items, prepare_items, read_table
from .catalog import CatalogService
from .models import ModelService
from .state import State
from .vectors import VectorService


class ImportService:
    """Validated writes of items, catalog labels and purchases."""

    def __init__(self, state: State, catalog: CatalogService, models: ModelService, vectors: VectorService,
                 access: Access) -> None:
        self.store = state.store
        self._access = access
        self._catalog = catalog
        self._models = models
        self._vectors = vectors

    def init_catalog(
        self,
        catalog: str | Path = DEMO_DIR / "catalog.csv",
        categories: str | Path = DEMO_DIR / "categories.csv",
        progress: ProgressFn | None = None,
        interactions: str | Path | None = None,
        actor: str | None = None,
    ) -> dict[str, int]:
        """Load a catalog (with its ``category`` column as imported labels), its categories and,
        optionally, purchases.

        Safe to run again: items are updated; a catalog label is (re)applied only to items whose
        label did not come from a person; purchases already stored are skipped. Embeds the
        catalog so the first prediction is fast.
        """
        self._access.require(actor, "import")
        n_categories = self._catalog.import_categories(read_table(categories, limits=OPERATOR_FILES), Path(categories).name,
                                                       actor)
        items = load_items(catalog, id_prefix="CAT", limits=OPERATOR_FILES)
        self.store.upsert_items(items, source="catalog")
        self._models.apply_language_rule()
        labelled = 0
        if "category" in items.columns:
            unknown = sorted(set(items["category"]) - set(self.store.category_names()) - {""})
            if unknown:
                raise DataImportError(
                    f"{Path(catalog).name}: categories not in {Path(categories).name}: "
                    + ", ".join(repr(c) for c in unknown[:5])
                )
            labelled = self._label_from_catalog(items, actor)
        purchases = (self.import_interactions(interactions, limits=OPERATOR_FILES, actor=actor)
                     if interactions is not None else 0)
        self._vectors.embed_items(items, progress=progress)
        self.store.set_meta("initialised", "1")
        self.store.record_audit(actor, "import", subject=f"catalog {Path(catalog).name}",
                                after=f"{len(items):,} items, {labelled:,} labels")
        return {"categories": n_categories, "items": len(items), "labels": labelled, "interactions": purchases}

    def import_catalog(
        self, table: pd.DataFrame, filename: str = "catalog", progress: ProgressFn | None = None,
        actor: str | None = None,
    ) -> dict[str, int]:
        """Store a table of products already on sale as catalog items (columns as for an upload:
        title and/or description, optional id, brand, price, category).

        A ``category`` column becomes labels (never replacing a label a person gave), and the
        categories it names that do not exist yet are created (matching existing names
        ignoring case), so a catalog with categories is all a new workspace needs. Returns
        items, labels and categories created. Nothing is written when a row is rejected.
        """
        self._access.require(actor, "import")
        items = prepare_items(table, filename, id_prefix="CAT")
        created = labelled = 0
        new: list[str] = []
        if "category" in items.columns:
            spelling = {n.casefold(): n for n in self.store.category_names()}
            for name in items["category"]:  # a new name is spelled as it first appears
                if name and name.casefold() not in spelling:
                    spelling[name.casefold()] = name
                    new.append(name)
            items["category"] = items["category"].map(lambda c: spelling.get(c.casefold(), c))
            long = [c for c in new if len(c) > 100]
            if long:
                raise IngestError(f"{filename}: category names over 100 characters, e.g. {long[0][:40]!r}…")
        self.store.upsert_items(items, source="catalog")
        self._models.apply_language_rule()
        if new:
            created = self._catalog.import_categories(pd.DataFrame({"name": new}), filename, actor)
        if "category" in items.columns:
            labelled = self._label_from_catalog(items, actor)
        self._vectors.embed_items(items, progress=progress)
        self.store.set_meta("initialised", "1")
        self.store.record_audit(actor, "import", subject=f"catalog {filename}", after=f"{len(items):,} items, {labelled:,} labels")
        return {"items": len(items), "labels": labelled, "categories": created}

    def _label_from_catalog(self, items: pd.DataFrame, actor: str | None) -> int:
        """Apply a catalog's ``category`` column as imported labels, except where a person labelled
        the item or the label is already that category. Returns how many labels were written."""
        current = self.store.labels().set_index("item_id")
        by_person = set(current.index[current["source"] != "import"])
        todo = items[(items["category"] != "") & ~items["item_id"].isin(by_person)]
        todo = todo[[current["category"].get(i) != c for i, c in zip(todo["item_id"], todo["category"])]]
        if not len(todo):
            return 0
        return self.store.add_labels(todo["item_id"].tolist(), todo["category"].tolist(),
                                     who=self._access.recorded_as(actor, "catalog"), source="import")

    def add_upload(self, items: pd.DataFrame, batch: str) -> int:
        """Store validated upload rows (from :func:`coldrec.ingest.load_items`) as a batch."""
        count = self.store.upsert_items(items, source="upload", batch=batch)
        self._models.apply_language_rule()
        return count

    def import_interactions(
        self, data: str | Path | bytes, filename: str | None = None, limits: Limits = PURCHASE_UPLOADS,
        actor: str | None = None,
    ) -> int:
        """Validate purchases against the stored items and append the new ones (nothing on error).

        Returns how many were added; purchases already stored are skipped. ``limits`` default to an
        upload's (the Audience page); ``init`` reads the operator's file with the wide ones.
        """
        self._access.require(actor, "import")
        frame = load_interactions(data, filename, known_items=self.store.items()["item_id"].tolist(), limits=limits)
        added = self.store.add_interactions(frame.rename(columns={"timestamp": "ts"}))
        self.store.record_audit(actor, "import", subject=f"purchases {filename or Path(str(data)).name}",
                                after=f"{added:,} purchases")
        return added
