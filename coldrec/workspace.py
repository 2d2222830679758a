"""A workspace opens a database and its model and wires the services every page and command
calls (see the README's architecture section):

    ws.catalog    items, batches, categories and their edits        (services/catalog.py)
    ws.imports    catalog files, upload batches, purchases           (services/imports.py)
    ws.models     the serving model: language rule, versions, switch (services/models.py)
    ws.vectors    embeddings, the item index, similar catalog items  (services/vectors.py)
    ws.predictor  the classifier, current and new predictions        (services/predictor.py)
    ws.labels     labels, edits, undo, counts, history               (services/labels.py)
    ws.audience   audiences from purchases                           (services/audience.py)
    ws.state      the one cache of derived values, keyed in one place (services/state.py)

The workspace itself only opens and closes them and onboards a new database (the demo).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .access import Access
from .background import Background
from .config import DEMO_DIR, Settings
from .encoder import ProgressFn, TextEncoder
from .finetune import remove_stale_saves
from .ingest import OPERATOR_FILES, load_items
from .services.audience import AudienceService
from .services.catalog import CatalogService
from .services.imports import ImportService
from .services.labels import LabelService
from .services.models import ModelService, base_source
from .services.predictor import PredictorService
from .services.state import State
from .services.vectors import VectorService
from .store import Store
from .versions import models_dir, open_encoder


class Workspace:
    """The store, the serving model and the services built on them."""

    def __init__(self, store: Store, encoder: TextEncoder, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        #: Every thread this workspace starts (the refit, the near-duplicate search, the CLI server).
        self.background = Background()
        self.state = State(store, encoder)
        #: Who may do what (coldrec.access): local mode unless the dashboard turns sign-in on. Every
        #: service that writes checks it, so a page that forgets to hide a button still cannot write.
        self.access = Access(store)
        self.models = ModelService(self.state, self.settings, self.access)
        self.catalog = CatalogService(self.state, self.access)
        self.vectors = VectorService(self.state, self.catalog, self.background)
        self.imports = ImportService(self.state, self.catalog, self.models, self.vectors, self.access)
        self.predictor = PredictorService(self.state, self.settings, self.background, self.catalog, self.vectors,
                                          self.imports, self.access)
        self.labels = LabelService(self.state, self.access)
        self.audience = AudienceService(self.state, self.catalog, self.vectors)

    @property
    def database_path(self) -> str:
        """The database file (shown in the sidebar)."""
        return str(self.store.path)

    @property
    def encoder(self) -> TextEncoder:
        """The model every session is served from (switched through :attr:`models`)."""
        return self.state.encoder

    @classmethod
    def open(cls, settings: Settings | None = None, encoder: TextEncoder | None = None) -> "Workspace":
        """Open the configured database and load the configured model."""
        settings = settings or Settings.from_env()
        store = Store(settings.db_path)
        try:
            if not store.read_only and str(settings.db_path) != ":memory:":
                for name in remove_stale_saves(models_dir(settings.db_path)):
                    logging.getLogger("coldrec").warning("removed %s, left by an interrupted fine-tuning save", name)
            # The active fine-tuned version, if any, of the base model (configured or chosen by
            # language), loaded on first use.
            encoder = encoder or open_encoder(store, settings, model=base_source(store, settings))
        except Exception:
            store.close()
            raise
        return cls(store, encoder, settings)

    def close(self) -> None:
        """Stop the background work, keep the serving model for the next start, close the database."""
        self.background.close()
        if not self.store.read_only:
            self.predictor.close()
        self.store.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- onboarding -------------------------------------------------------------------------
    #: The upload batch the demo starts with, so every page has new arrivals to show.
    DEMO_BATCH = "demo new arrivals"

    def readiness(self) -> dict[str, int]:
        """What the workspace holds so far (what the empty states of the pages read):
        categories, catalog items, uploaded items, labelled items, unlabelled items."""
        stats = self.store.stats()
        return {
            "categories": int(stats["categories"]),
            "catalog_items": int(stats["catalog_items"]),
            "uploaded_items": int(stats["uploaded_items"]),
            "labelled_items": int(stats["labelled_items"]),
            "unlabelled_items": int(stats["catalog_items"] + stats["uploaded_items"] - stats["labelled_items"]),
        }

    def load_demo(self, progress: ProgressFn | None = None, actor: str | None = None) -> dict[str, int]:
        """Load the bundled demo (catalog, categories, purchases) and its new arrivals as the upload
        batch :attr:`DEMO_BATCH`, predicted. Safe to run again: nothing is duplicated."""
        counts = self.imports.init_catalog(
            DEMO_DIR / "catalog.csv", DEMO_DIR / "categories.csv", progress=progress,
            interactions=DEMO_DIR / "interactions.csv", actor=actor,
        )
        counts["arrivals"] = self.add_demo_arrivals(progress=progress, actor=actor)
        return counts

    def add_demo_arrivals(self, progress: ProgressFn | None = None, actor: str | None = None) -> int:
        """Upload ``data/demo/new_arrivals.csv`` as :attr:`DEMO_BATCH` and predict it; 0 when the
        batch is already there with every item predicted (a batch cut short by a kill is finished)."""
        items = load_items(DEMO_DIR / "new_arrivals.csv", limits=OPERATOR_FILES)
        if self.DEMO_BATCH in set(self.store.batches()["batch"]):
            predicted = self.store.query_df(
                "SELECT count(DISTINCT item_id) AS n FROM predictions WHERE model = ? AND item_id IN "
                "(SELECT item_id FROM items WHERE batch = ?)", [self.encoder.name, self.DEMO_BATCH],
            )["n"].iloc[0]
            if int(predicted) >= len(items):
                return 0
        self.predictor.upload_and_predict(items, self.DEMO_BATCH, who=self.access.recorded_as(actor, "demo"),
                                          progress=progress)
        return len(items)



def progress_printer(label: str) -> Callable[[int, int], None]:
    """A progress callback that prints ``label: done/total`` every 10%."""
    last = [-1]

    def report(done: int, total: int) -> None:
        step = int(10 * done / total) if total else 10
        if step != last[0]:
            last[0] = step
            print(f"{label}: {done:,}/{total:,}", flush=True)

    return report
