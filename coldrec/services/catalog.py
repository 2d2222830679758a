"""What the database holds about products: items with their current labels, upload batches,
categories (and their edits), and the counts the pages show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..access import Access
from ..errors import IngestError, StoreError
from ..ingest import clean_text, read_table, row_numbers
from ..store import category_name
from .state import Depends, State


class CatalogService:
    """Items, batches and categories: reads (cached where costly) and category edits."""

    #: A taxonomy imported without choosing branches may create at most this many categories.
    MAX_UNFILTERED_TAXONOMY = 2_000

    def __init__(self, state: State, access: Access) -> None:
        self._state = state
        self.store = state.store
        self._access = access

    # -- items ------------------------------------------------------------------------------
    def items(self) -> pd.DataFrame:
        """Every stored item with its current label, in store order (kept until items or labels
        change: at a million items the query takes seconds). Read-only: pandas copies on write."""

        def build() -> pd.DataFrame:
            # The item text is read once per item set; a label only re-reads the labels.
            base = self._item_text()
            labels = self.store.current_labels()
            category = np.full(len(base), None, dtype=object)
            rows = self.item_positions(labels["item_id"].tolist())
            category[rows[rows >= 0]] = labels["category"].to_numpy()[rows >= 0]
            return base.assign(category=category)

        return self._state.memo("items", Depends.ITEMS | Depends.LABELS, build)

    def item_positions(self, item_ids: list[str]) -> np.ndarray:
        """Each id's row in :meth:`items` (and the item vectors), ``-1`` for an unknown id."""
        where = self._state.memo("item_positions", Depends.ITEMS, lambda: pd.Index(self._item_text()["item_id"]))
        return where.get_indexer([str(i) for i in item_ids])

    def _item_text(self) -> pd.DataFrame:
        """Every item as stored (its label as read then), once per item set."""
        return self._state.memo("items_text", Depends.ITEMS, lambda: self.store.items().reset_index(drop=True))

    def find(self, source: str | None = None, batch: str | None = None, category: str | None = None,
             unlabelled: bool = False) -> pd.DataFrame:
        """Stored items (with their label) of one source, upload batch or category."""
        return self.store.items(source=source, batch=batch, category=category, unlabelled=unlabelled)

    def items_by_id(self, item_ids: list[str]) -> pd.DataFrame:
        """The stored items with these ids (title, category, ...), indexed by item_id."""
        return self.store.items_by_id(item_ids)

    def batches(self) -> pd.DataFrame:
        """The upload batches: batch, items, and when each arrived."""
        return self.store.batches()

    def batch_names(self) -> list[str]:
        """The upload batches' names."""
        return self.batches()["batch"].tolist()

    def stats(self) -> dict[str, int]:
        """Counts of categories, catalog, uploaded and labelled items, purchases and stored vectors."""
        return self.store.stats()

    # -- categories -------------------------------------------------------------------------
    def categories(self) -> pd.DataFrame:
        """Every category: name, description, path, target precision."""
        return self.store.categories()

    def category_names(self) -> list[str]:
        """The categories' names, in store order."""
        return self.store.category_names()

    def category_targets(self) -> dict[str, float]:
        """The precision each category's auto-accept must reach, where one is set."""
        return self.store.category_targets()

    def set_category_target(self, name: str, target_precision: float | None, actor: str | None = None) -> None:
        """Set (or with ``None`` clear) a category's auto-accept precision target (admins; in the audit trail)."""
        self._access.require(actor, "categories")
        before = self.store.category_targets().get(name)
        self.store.set_category_target(name, target_precision)
        self.store.record_audit(actor, "target", subject=name, before=before, after=target_precision)

    def add_category(self, name: str, description: str = "", path: str = "", actor: str | None = None) -> str:
        """Create a category under an optional parent ``path`` ("Home > Kitchen"; the stored path ends
        with the name). Raises :class:`StoreError` for a blank, over-long or existing name."""
        name = category_name(name or "")
        self._access.require(actor, "categories")
        if not name:
            raise StoreError("a category needs a name")
        if len(name) > 100:
            raise StoreError("category names are limited to 100 characters")
        taken = self._taken(name)
        if taken:
            raise StoreError(taken)
        parents = " > ".join(p.strip() for p in (path or "").split(">") if p.strip())
        full_path = f"{parents} > {name}" if parents and not parents.endswith(name) else parents or None
        self.store.upsert_categories(
            pd.DataFrame({"name": [name], "description": [description.strip() or None], "path": [full_path]})
        )
        self.store.record_audit(actor, "category", subject=name, after=full_path or name)
        return name

    def _taken(self, name: str, besides: str | None = None) -> str | None:
        """The message when another category (``besides`` aside) has ``name``: names ignore case,
        so it names the one that exists ("'Cookware' already exists", not "'cookware'")."""
        existing = {n.casefold(): n for n in self.store.category_names() if n != besides}.get(name.casefold())
        if existing is None:
            return None
        return f"category {existing!r} already exists" + ("" if existing == name else " (names ignore case)")

    def rename_category(self, old: str, new: str, actor: str | None = None) -> int:
        """Rename a category (admins): its labels, target, stored predictions and the paths below it
        follow. Returns how many labels moved. Raises :class:`StoreError` for an unknown category
        or a blank, over-long or taken new name (a change of case only is allowed)."""
        self._access.require(actor, "categories")
        name = category_name(new or "")
        if old not in self.store.category_names():
            raise StoreError(f"unknown category {old!r}")
        if not name:
            raise StoreError("a category needs a name")
        if len(name) > 100:
            raise StoreError("category names are limited to 100 characters")
        if name == old:
            return 0
        taken = self._taken(name, besides=old)
        if taken:
            raise StoreError(taken + ": merge into it instead")
        moved = self.store.rename_category(old, name, who=self._access.recorded_as(actor, "local"))
        self.store.record_audit(actor, "category", subject=f"renamed {old}", before=old, after=f"{name} ({moved:,} labels)")
        return moved

    def merge_categories(self, sources: list[str], into: str, actor: str | None = None) -> int:
        """Merge categories into another (admins): their items are labelled ``into`` and they are
        deleted. Returns how many labels moved."""
        self._access.require(actor, "categories")
        sources = [s for s in dict.fromkeys(sources) if s != into]
        if not sources:
            raise StoreError("choose at least one category to merge other than the one kept")
        moved = self.store.merge_categories(sources, into, who=self._access.recorded_as(actor, "local"))
        self.store.record_audit(actor, "category", subject=f"merged into {into}", before=", ".join(sources),
                                after=f"{into} ({moved:,} labels)")
        return moved

    def import_categories(self, table: pd.DataFrame, filename: str = "categories", actor: str | None = None) -> int:
        """Validate and upsert categories (``name``, optional ``description``, ``path``).

        Rejects, naming rows: no ``name`` column, blank or over-long names, and names repeated
        in the file (ignoring case).
        """
        if "name" not in table.columns:
            raise IngestError(f"{filename}: needs a 'name' column (and optionally description, path); "
                              f"columns are {', '.join(map(str, table.columns))}")
        frame = table.copy()
        for column in ("name", "description", "path"):
            if column in frame:
                frame[column] = frame[column].map(lambda v: clean_text(v, 1_000))
        blank = [r for r, n in enumerate(frame["name"], start=1) if not n]
        if blank:
            raise IngestError(f"{filename}: empty name in row(s) {row_numbers(blank, filename)}")
        long = [r for r, n in enumerate(frame["name"], start=1) if len(n) > 100]
        if long:
            raise IngestError(f"{filename}: names over 100 characters in row(s) {row_numbers(long, filename)}")
        folded = frame["name"].str.casefold()
        repeated = folded[folded.duplicated(keep=False)]
        if len(repeated):
            names = list(dict.fromkeys(frame.loc[repeated.index, "name"]))
            raise IngestError(f"{filename}: repeated category name(s): " + ", ".join(repr(n) for n in names[:5]))
        self._access.require(actor, "categories")
        count = self.store.upsert_categories(frame)
        self.store.record_audit(actor, "category", subject=f"categories from {filename}", after=f"{count:,} categories")
        return count

    def import_category_file(self, data: bytes, filename: str, max_depth: int = 3, actor: str | None = None) -> int:
        """Categories from a file: a table with a ``name`` column (optional description, path),
        or a taxonomy (Google's text file, or a table of paths / level columns) cut at
        ``max_depth``. Returns how many categories were created or updated."""
        from ..taxonomy import read_taxonomy, taxonomy_categories

        if not filename.lower().endswith(".txt"):
            table = read_table(data, filename)
            if "name" in table.columns:
                return self.import_categories(table, filename, actor)
        frame = taxonomy_categories(read_taxonomy(data, filename), include=[], max_depth=max_depth)
        if frame.empty:
            raise IngestError(f"{filename}: no categories found (expected a 'name' column or category paths)")
        if len(frame) > self.MAX_UNFILTERED_TAXONOMY:
            raise IngestError(
                f"{filename}: {len(frame):,} categories at depth {max_depth}; pick the branches you need "
                "under 'Import a taxonomy' on the Categories & model page"
            )
        return self.import_categories(frame, filename, actor)
