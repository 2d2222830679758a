"""Labels people give: one label, a table's edits, undoing an action, and what has been labelled
(counts per category, the history)."""

from __future__ import annotations

import pandas as pd

from ..access import Access
from .state import State


class LabelService:
    """Label writes (each an undoable action) and label reads."""

    def __init__(self, state: State, access: Access) -> None:
        self.store = state.store
        self._access = access

    def label(self, item_id: str, category: str | None, who: str, source: str = "manual", since: int | None = None) -> None:
        """Record a label; the next prediction uses it. ``since``: the label version when the person
        saw the item; someone else's different label given after it raises
        :class:`~coldrec.errors.LabelConflict` instead of being overwritten."""
        self._access.require(who, "label")
        self.store.label(item_id, category, who=who, source=source, since=since)

    def save_label_edits(self, before: pd.Series, after: pd.Series, who: str, since: int | None = None) -> int:
        """Record the labels that differ between two item_id-indexed series (blank = no label).

        Returns how many labels changed. This is what a data-editor "Save" calls. ``since``: see
        :meth:`label`.
        """
        old = before.fillna("").astype(str)
        new = after.reindex(old.index).fillna("").astype(str)
        changed = old.index[old != new]
        if len(changed) == 0:
            return 0
        categories = [new[i] or None for i in changed]
        self._access.require(who, "label", count=len(changed))
        self.store.add_labels([str(i) for i in changed], categories, who=who, source="manual", since=since)
        return len(changed)

    def undo(self, who: str) -> dict[str, int]:
        """Undo ``who``'s last labelling action (see :meth:`coldrec.store.Store.undo_last`)."""
        self._access.require(who, "label")
        return self.store.undo_last(who)

    def current(self) -> pd.DataFrame:
        """Every current label with its item's text: item_id, title, description, category, who, source, labelled_at."""
        return self.store.labels()

    def counts(self) -> pd.DataFrame:
        """Labelled examples per category."""
        return self.store.label_counts()

    def history(self, limit: int = 500) -> pd.DataFrame:
        """The newest ``limit`` label events (who labelled what, and when), each with its item's title."""
        history = self.store.label_history().head(limit)
        titles = self.store.items_by_id(history["item_id"].tolist())["title"]
        history.insert(0, "title", history["item_id"].map(titles))
        return history

    def version(self) -> int:
        """Changes with every label event (widgets showing labels are keyed on it)."""
        return self.store.label_version()
