"""A workspace ties a store to an encoder: the operations the dashboard and CLI call.

The fitted classifier and the catalog's neighbour index are cached and rebuilt only when
labels, categories or the catalog change, so a new label shows in the next prediction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .access import Access
from .background import Background
from .audience import AudienceModel, build_audience, load_interactions, segment_table
from .classify import Prediction, category_prompt, predictions_frame
from .errors import NotReadyError
from .estimator import MIN_LABELS_TO_CALIBRATE, ColdStartClassifier
from .config import DEMO_DIR, Settings
from .encoder import ProgressFn, TextEncoder, bundled_source, embed_texts, load_encoder, text_hash
from .finetune import remove_stale_saves
from . import language
from .ingest import (
    OPERATOR_FILES, PURCHASE_UPLOADS, IngestError, Limits, clean_text, format_rows, item_text, load_items, prepare_items, read_table,
)
from .neighbours import EXACT_MAX_ITEMS, VectorIndex
from .errors import DataImportError, StoreError
from .store import Store, category_name
from .versions import models_dir, open_encoder


def _index_mismatch(index: VectorIndex, ids: list[str], hashes: list[str], vectors: np.ndarray) -> str:
    """Why a loaded index disagrees with the database's items ("" when it agrees): each live row
    of an item that is still stored with the same text must hold that item's stored vector."""
    if index.dim != vectors.shape[1]:
        return f"its vectors have {index.dim} dimensions, the model's {vectors.shape[1]}"
    rows, positions = [], []
    for position, (item_id, text) in enumerate(zip(ids, hashes)):
        row = index.row_of(item_id)
        if row is not None and index.hashes[row] == text:
            rows.append(row)
            positions.append(position)
    step = 50_000  # compared in chunks: at a million items both matrices are 1.5 GB already
    for start in range(0, len(rows), step):
        mine, theirs = rows[start : start + step], positions[start : start + step]
        if not np.allclose(index.vectors[mine], vectors[theirs], atol=1e-5):
            return "its vectors are not this database's"
    return ""


@dataclass
class PredictionBatch:
    """Predictions for a set of items, with their evidence and similar catalog items."""

    items: pd.DataFrame
    predictions: list[Prediction]
    #: Per item, the nearest catalog items as (item_id, cosine).
    neighbours: list[list[tuple[str, float]]]
    vectors: np.ndarray
    #: Per item and taxonomy level, the ancestor of its most likely category and that node's
    #: probability: item (row), level, node, probability.
    #: Empty when no category has a parent path.
    levels: pd.DataFrame = field(default_factory=pd.DataFrame)

    def levels_of(self, row: int) -> list[tuple[str, float]]:
        """(node, probability) from the top level down to the leaf for one item; a node repeated
        at deeper levels (a category with a shorter path) is listed once."""
        if self.levels.empty:
            return []
        mine = self.levels[self.levels["item"] == row].sort_values("level")
        out: list[tuple[str, float]] = []
        for node, probability in zip(mine["node"], mine["probability"].astype(float)):
            if not out or out[-1][0] != node:
                out.append((node, probability))
        return out

    def frame(self) -> pd.DataFrame:
        """One row per item: id, title, top-3 with probabilities, unsure flag, 5 nearest catalog ids."""
        preds = predictions_frame(self.items["item_id"].tolist(), self.predictions)
        preds.insert(1, "title", self.items["title"].tolist())
        preds["neighbour_ids"] = [" ".join(i for i, _ in hits[:5]) for hits in self.neighbours]
        if not self.levels.empty:  # taxonomy: the most likely node and its probability at each level
            wide = self.levels.pivot(index="item", columns="level", values=["node", "probability"])
            for level in sorted(self.levels["level"].unique()):
                preds[f"level{level}"] = wide[("node", level)].reindex(range(len(preds))).to_numpy()
                preds[f"level{level}_probability"] = wide[("probability", level)].reindex(range(len(preds))).astype(float).round(4).to_numpy()
        return preds


class Workspace:
    """The store, the encoder and the models built from them."""

    def __init__(self, store: Store, encoder: TextEncoder, settings: Settings | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings or Settings()
        #: Who may do what (coldrec.access): local mode unless the dashboard turns sign-in on.
        self.access = Access(store)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._classifier: _FittedState | None = None
        self._item_index: tuple[object, VectorIndex] | None = None
        self._refitting = False  # a background refit is running (see _refit_in_background)
        self._pending_state = False
        self._pending_calibration = False
        self._refit_epoch = 0  # bumped when a background refit lands (part of version())
        self._audience: tuple[object, AudienceModel] | None = None
        self._memo: dict[str, tuple[object, object]] = {}
        #: Every thread this workspace starts (the refit, the near-duplicate search).
        self.background = Background()
        self._fit_centre_items = 0  # items when the current graph's centre was computed (see _store_fit)
        #: Why the saved neighbour index was rebuilt at the last load (``None``: it was not).
        self.index_notice: str | None = None

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
        """Stop the background work, then close the database."""
        self.background.close()
        self.store.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading data -----------------------------------------------------------------------
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
        self.access.require(actor, "import")
        n_categories = self.import_categories(read_table(categories, limits=OPERATOR_FILES), Path(categories).name, actor)
        items = load_items(catalog, id_prefix="CAT", limits=OPERATOR_FILES)
        self.store.upsert_items(items, source="catalog")
        self.apply_language_rule()
        labelled = 0
        if "category" in items.columns:
            unknown = sorted(set(items["category"]) - set(self.store.category_names()) - {""})
            if unknown:
                raise DataImportError(
                    f"{Path(catalog).name}: categories not in {Path(categories).name}: "
                    + ", ".join(repr(c) for c in unknown[:5])
                )
            current = self.store.labels().set_index("item_id")
            by_person = set(current.index[current["source"] != "import"])
            todo = items[(items["category"] != "") & ~items["item_id"].isin(by_person)]
            todo = todo[[current["category"].get(i) != c for i, c in zip(todo["item_id"], todo["category"])]]
            if len(todo):
                self.store.add_labels(todo["item_id"].tolist(), todo["category"].tolist(), who=self.access.recorded_as(actor, "catalog"), source="import")
            labelled = len(todo)
        purchases = self.import_interactions(interactions, limits=OPERATOR_FILES, actor=actor) if interactions is not None else 0
        self.embed_items(items, progress=progress)
        self.store.set_meta("initialised", "1")
        self.store.record_audit(actor, "import", subject=f"catalog {Path(catalog).name}", after=f"{len(items):,} items, {labelled:,} labels")
        return {"categories": n_categories, "items": len(items), "labels": labelled, "interactions": purchases}

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
            raise IngestError(f"{filename}: empty name in row(s) {format_rows(blank)}")
        long = [r for r, n in enumerate(frame["name"], start=1) if len(n) > 100]
        if long:
            raise IngestError(f"{filename}: names over 100 characters in row(s) {format_rows(long)}")
        folded = frame["name"].str.casefold()
        repeated = folded[folded.duplicated(keep=False)]
        if len(repeated):
            names = list(dict.fromkeys(frame.loc[repeated.index, "name"]))
            raise IngestError(f"{filename}: repeated category name(s): " + ", ".join(repr(n) for n in names[:5]))
        self.access.require(actor, "categories")
        count = self.store.upsert_categories(frame)
        self.store.record_audit(actor, "category", subject=f"categories from {filename}", after=f"{count:,} categories")
        return count

    def add_upload(self, items: pd.DataFrame, batch: str) -> int:
        """Store validated upload rows (from :func:`coldrec.ingest.load_items`) as a batch."""
        count = self.store.upsert_items(items, source="upload", batch=batch)
        self.apply_language_rule()
        return count

    def upload_and_predict(
        self, items: pd.DataFrame, batch: str, who: str = "upload", progress: ProgressFn | None = None
    ) -> tuple[PredictionBatch, list[str]]:
        """Store an upload batch, import its mapped ``category`` column as labels, predict, and keep
        the predictions. Returns the predictions and warnings for the user (e.g. unknown categories).

        Checks that predicting is possible before anything is written.
        """
        self.access.require(who, "import")
        self.classifier()  # raises NotReadyError when there are no categories yet
        warnings: list[str] = []
        self.add_upload(items, batch=batch)
        if "category" in items.columns:
            known = set(self.store.category_names())
            given = items[items["category"] != ""]
            usable = given[given["category"].isin(known)]
            if len(usable):
                self.store.add_labels(usable["item_id"].tolist(), usable["category"].tolist(), who=who, source="import")
            unknown = sorted(set(given["category"]) - known)
            if unknown:
                warnings.append(
                    f"{len(given) - len(usable)} row(s) name categories that do not exist and were not used as labels: "
                    + ", ".join(repr(c) for c in unknown[:5])
                )
        result = self.predict(items, progress=progress)
        self.save_predictions(result)
        self.store.record_audit(who, "import", subject=f"upload batch {batch}", after=f"{len(items):,} items")
        return result, warnings

    def import_interactions(
        self, data: str | Path | bytes, filename: str | None = None, limits: Limits = PURCHASE_UPLOADS,
        actor: str | None = None,
    ) -> int:
        """Validate purchases against the stored items and append the new ones (nothing on error).

        Returns how many were added; purchases already stored are skipped. ``limits`` default to an
        upload's (the Audience page); ``init`` reads the operator's file with the wide ones.
        """
        self.access.require(actor, "import")
        frame = load_interactions(data, filename, known_items=self.store.items()["item_id"].tolist(), limits=limits)
        added = self.store.add_interactions(frame.rename(columns={"timestamp": "ts"}))
        self.store.record_audit(actor, "import", subject=f"purchases {filename or Path(str(data)).name}", after=f"{added:,} purchases")
        return added

    def memo(self, name: str, key: object, build: Callable[[], object]) -> object:
        """``build()``'s result, kept under ``name`` until ``key`` changes (e.g. the label version).

        Shared by every session of a dashboard process, so costly views are computed once.
        """
        with self._lock:
            hit = self._memo.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]
        value = build()
        with self._lock:
            self._memo[name] = (key, value)
        return value

    def version(self) -> tuple[object, ...]:
        """The one cache key of everything derived from the workspace: it changes whenever the
        model, items, labels or categories change. Every memoised view is keyed on it."""
        cats = self.store.categories()
        return (self.encoder.name, self.store.label_version(), self.store.catalog_fingerprint(),
                self.store.settings_version(), self._refit_epoch, tuple(map(tuple, cats.fillna("").values.tolist())))

    def items(self) -> pd.DataFrame:
        """Every stored item with its current label, in store order (kept until items or labels
        change: at a million items the query takes seconds). Read-only: pandas copies on write."""
        fingerprint = self.store.catalog_fingerprint()

        def build() -> pd.DataFrame:
            # The item text is read once per item set; a label only re-reads the labels.
            base = self._item_text(fingerprint)
            labels = self.store.current_labels()
            category = np.full(len(base), None, dtype=object)
            rows = self.item_positions(labels["item_id"].tolist())
            category[rows[rows >= 0]] = labels["category"].to_numpy()[rows >= 0]
            return base.assign(category=category)

        return self.memo("items", (fingerprint, self.store.label_version()), build)  # type: ignore[return-value]

    def item_positions(self, item_ids: list[str]) -> np.ndarray:
        """Each id's row in :meth:`items` (and :meth:`item_vectors`), ``-1`` for an unknown id."""
        fingerprint = self.store.catalog_fingerprint()
        where = self.memo("item_positions", fingerprint, lambda: pd.Index(self._item_text(fingerprint)["item_id"]))
        return where.get_indexer([str(i) for i in item_ids])  # type: ignore[attr-defined]

    def _item_text(self, fingerprint: object) -> pd.DataFrame:
        """Every item as stored (its label as read then), once per item set."""
        return self.memo("items_text", fingerprint, lambda: self.store.items().reset_index(drop=True))  # type: ignore[return-value]

    def item_vectors(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Every stored item (with its current label) and its unit vector, in store order."""

        items = self.items()

        def build() -> tuple[list[str], np.ndarray]:
            return items["item_id"].tolist(), self.embed_items(items)

        key = (self.encoder.name, self.store.catalog_fingerprint())
        ids, vectors = self.memo("item_vectors", key, build)  # type: ignore[misc]
        if ids != items["item_id"].tolist():  # the cached vectors belong to another item list
            ids, vectors = build()
            with self._lock:
                self._memo["item_vectors"] = (key, (ids, vectors))
        return items, vectors

    def current_predictions(self) -> pd.DataFrame:
        """The current model's prediction for every stored item, in store order (the one source of
        predictions pages show): item_id, predicted, confidence, unsure, novel. Computed once
        per :meth:`version`."""

        def build() -> pd.DataFrame:
            items, vectors = self.item_vectors()
            columns = ["item_id", "predicted", "confidence", "unsure", "novel"]
            if items.empty:
                return pd.DataFrame(columns=columns)
            model = self.classifier()
            fitted = model.fitted_predictions(unsure_below=self.settings.unsure_below).set_index("item_id")
            ids = items["item_id"].tolist()
            out = fitted.reindex(ids)
            missing = np.flatnonzero(out["predicted"].isna().to_numpy())
            if len(missing):  # not in the fitted index (should not happen: the index holds every item)
                extra = model.explain(vectors[missing], unsure_below=self.settings.unsure_below, n_evidence=0,
                                      ids=[ids[i] for i in missing])
                out.iloc[missing] = [[p.category, p.probability, p.unsure, p.novel] for p in extra]
            out = out.reset_index()
            return out.astype({"confidence": float, "unsure": bool, "novel": bool})[columns]

        return self.memo("current_predictions", self.version(), build)  # type: ignore[return-value]

    # -- embeddings and models --------------------------------------------------------------
    def embed_items(self, items: pd.DataFrame, progress: ProgressFn | None = None) -> np.ndarray:
        """Unit vectors for items (title + description), from the cache where possible."""
        descriptions = items["description"] if "description" in items else [""] * len(items)
        texts = [item_text(t, d) for t, d in zip(items["title"], descriptions)]
        return embed_texts(self.encoder, texts, cache=self.store, progress=progress)

    def classifier(self) -> ColdStartClassifier:
        """The classifier over every stored item for the current categories and labels.

        Refitted only after a change, and incrementally: a new label warm-starts the
        propagation and recomputes only the rows it reaches; new items extend the graph.
        Calibration (beta) is refitted when the label count has moved by a fifth since the
        last fit. One thread refits; the others wait and reuse the result.
        """
        with self._build_lock:
            return self._build_classifier()

    def _build_classifier(self) -> ColdStartClassifier:
        cats = self.store.categories()
        if cats.empty:
            raise NotReadyError(
                "there are no categories yet: add or import categories on Categories & model (or load the demo)"
            )
        categories_key = (self.encoder.name, tuple(map(tuple, cats.fillna("").values.tolist())))
        label_version = self.store.label_version()
        index = self.item_index()
        fitted = self._classifier
        if fitted is not None and fitted.categories_key == categories_key and fitted.label_version == label_version \
                and fitted.index_rows == len(index.ids) and fitted.index is index:
            return fitted.model
        stored = self._stored_fit(categories_key)
        centre_due = stored["centre"] is None or len(index.ids) >= _CENTRE_GROWTH * max(int(stored["centre_items"]), 1)
        names = cats["name"].tolist()
        position = {c: i for i, c in enumerate(names)}
        labels = self.store.labels()
        rows, classes = [], []
        for item_id, category in zip(labels["item_id"], labels["category"]):
            row = index.row_of(item_id)
            if row is not None and category in position:
                rows.append(row)
                classes.append(position[category])
        rows_a, classes_a = np.array(rows, dtype=np.int64), np.array(classes, dtype=np.int64)
        # New rows (an upload) extend the fitted graph incrementally only in a large workspace: in
        # a small one (exact search) the full refit costs a second or two and gives what a restart
        # gives, so predictions do not depend on the order items arrived in (issue 25, item 11).
        incremental = (
            fitted is not None and fitted.categories_key == categories_key and fitted.index is index
            and fitted.index_rows <= len(index.ids) and fitted.retired == int((~index.alive[: fitted.index_rows]).sum())
            and not centre_due  # the items grew by a fifth: a fresh graph on a fresh centre, as any new process builds
            # up to 20k items an upload refits in full (a second or two), so predictions equal a rebuild's
            and (fitted.index_rows == len(index.ids) or len(index.ids) > EXACT_MAX_ITEMS)
        )
        if incremental:
            assert fitted is not None
            model = fitted.model.snapshot()  # sessions reading the current model are not disturbed
            if len(index.ids) > fitted.index_rows:
                model.add_index_rows()
            recalibrate = _needs_recalibration(fitted.calibrated_labels, len(rows_a))
            # Small workspaces refit at once (a second or two). Large ones update the labelled
            # items' look-alikes at once and finish in the background (the prototype shift over
            # every item, and beta: ten propagations), keeping the current values until then.
            large = len(index.ids) > EXACT_MAX_ITEMS
            model.update_labels(rows_a, classes_a, recalibrate=recalibrate and not large, local=large)
            finish_later = (large, recalibrate and large)
            calibrated = len(rows_a) if recalibrate else fitted.calibrated_labels
        else:
            prompts = embed_texts(
                self.encoder,
                [category_prompt(n, d, p) for n, d, p in cats[["name", "description", "path"]].itertuples(index=False)],
                cache=self.store,
            )
            searched = index.neighbours_searched
            # One source of predictions: a fresh fit (a restart, the CLI) takes the stored graph
            # centre and calibration, so it equals the model a running dashboard updated in place,
            # and refits beta only where the in-place schedule would (labels moved by a fifth).
            centre = None if centre_due else np.asarray(stored["centre"], dtype=np.float32)
            reuse = (not centre_due and stored["calibration"] is not None
                     and not _needs_recalibration(int(stored["calibrated_labels"]), len(rows_a)))
            # As for a refit: beta from labels at once when small, in the background when large
            # (at a million items it is ten propagations, a minute or more).
            in_place = len(index.ids) <= EXACT_MAX_ITEMS
            model = ColdStartClassifier(encoder=self.encoder).fit_rows(
                index.vectors, index.ids, rows_a, classes_a, names, prompts, index=index, calibrate=in_place,
                centre=centre, calibration=stored["calibration"] if reuse else None,
            )
            finish_later = (False, not reuse and not in_place and len(rows_a) >= MIN_LABELS_TO_CALIBRATE)
            calibrated = int(stored["calibrated_labels"]) if reuse else len(rows_a)
            centre_items = len(index.ids) if centre_due else int(stored["centre_items"])
            self._fit_centre_items = centre_items
            if index.neighbours_searched > searched:  # keep the search for the next start
                self._save_index(index)
        with self._lock:
            self._classifier = _FittedState(
                categories_key, label_version, index, len(index.ids), int((~index.alive).sum()), calibrated, model
            )
        # beta still to come from the background: stored as "not calibrated", so a new process fits it.
        self._store_fit(categories_key, model, -1 if finish_later[1] else calibrated)
        if any(finish_later):  # after the model is current, so the result lands on it
            self._refit_in_background(*finish_later)
        return model

    # -- the fitted model's state beyond items and labels, kept in the database ----------------
    _FIT_META = "fit_state"

    def _stored_fit(self, categories_key: object) -> dict[str, object]:
        """The graph centre (for this encoder) and calibration (for this encoder and these
        categories) of the last fit any process stored: ``centre``/``calibration`` are ``None``
        when there is none that applies."""
        import json

        empty: dict[str, object] = {"centre": None, "centre_items": 0, "calibration": None, "calibrated_labels": 0}
        try:
            record = json.loads(self.store.get_meta(self._FIT_META) or "null")
        except ValueError:
            return empty
        if not isinstance(record, dict) or record.get("encoder") != self.encoder.name:
            return empty
        centre = record.get("centre")
        if not isinstance(centre, list) or len(centre) != self.encoder.dim:
            return empty
        out = {**empty, "centre": centre, "centre_items": int(record.get("centre_items") or 0)}
        if record.get("categories") == _digest(categories_key):
            out["calibration"] = {k: record[k] for k in ("beta", "beta_fitted", "novel_label_cut", "novel_prompt_cut")}
            out["calibrated_labels"] = int(record.get("calibrated_labels") or 0)
        return out

    def _store_fit(self, categories_key: object, model: ColdStartClassifier, calibrated: int) -> None:
        """Record the current model's centre and calibration, so the next fresh fit equals it."""
        import json

        if self.store.read_only:
            return
        record = {"encoder": self.encoder.name, "categories": _digest(categories_key),
                  "centre_items": int(self._fit_centre_items), "calibrated_labels": int(calibrated), **model.fit_state()}
        self.store.set_meta(self._FIT_META, json.dumps(record), bump=False)

    def _refit_in_background(self, state: bool, calibration: bool) -> None:
        """Finish a large workspace's refit in a thread: the full propagation that a local label
        update left out (``state``) and/or beta (``calibration``), computed on a snapshot and
        applied to the newest classifier if its labels still match; otherwise computed again
        for the newest (so while someone keeps labelling, the look-alikes of each new label
        are current at once and the rest catches up when they pause)."""
        with self._lock:
            self._pending_state |= state
            self._pending_calibration |= calibration
            if self._refitting:
                return
            self._refitting = True

        def run(cancelled: threading.Event) -> None:
            try:
                _lower_this_threads_priority()  # the dashboard's clicks come first
                while not cancelled.is_set():
                    with self._lock:
                        current = self._classifier.model if self._classifier is not None else None
                        do_state, do_calibration = self._pending_state, self._pending_calibration
                    if current is None:
                        break
                    twin = current.snapshot()
                    if do_state:
                        twin.set_state(twin.propagated_state())
                    beta = twin.calibration() if do_calibration else None
                    with self._lock:
                        newest = self._classifier.model if self._classifier is not None else None
                        if newest is not None and newest.same_labels(twin):
                            # Published as a new model, never written into the serving one: a
                            # session computing predictions from it must not see a new state with
                            # the old beta (or the reverse).
                            updated = newest.snapshot()
                            if do_state:
                                updated.set_state(twin._require_fit().state)
                            if beta is not None:
                                updated.set_calibration(beta[0], beta[1])
                                fitted_state = self._classifier
                                if fitted_state is not None:  # a new process starts from this beta
                                    self._store_fit(fitted_state.categories_key, updated, fitted_state.calibrated_labels)
                            self._classifier = replace(self._classifier, model=updated)
                            self._refit_epoch += 1
                            self._pending_state &= not do_state
                            self._pending_calibration &= not do_calibration
                            if not (self._pending_state or self._pending_calibration):
                                self._refitting = False
                                return
            except Exception:  # a bug: keep the traceback in the log, keep serving the last model
                logging.getLogger("coldrec").exception("background refit failed")
            with self._lock:
                self._refitting = False

        self.background.start("refit", run)

    def refitting(self) -> bool:
        """Whether a large workspace is still finishing its last refit in the background (the
        labelled items' look-alikes are current; the rest of the catalog is catching up)."""
        with self._lock:
            return self._refitting

    def item_index(self, progress: ProgressFn | None = None) -> VectorIndex:
        """The neighbour index over every stored item (catalog and uploads) for the current model.

        Kept up to date incrementally (new and re-embedded items) and saved beside the database,
        so a restart loads it instead of rebuilding it. ``progress`` follows a (re)build.
        """
        key = (self.encoder.name, self.store.catalog_fingerprint())
        with self._lock:
            if self._item_index is not None and self._item_index[0] == key:
                return self._item_index[1]
        items, vectors = self.item_vectors()
        hashes = [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])]
        ids = items["item_id"].tolist()
        # The in-memory index is updated in place only for the same model (items were added or
        # edited); another model's vectors must not survive in the rows whose text did not change.
        kept = self._item_index
        index = kept[1] if kept is not None and kept[0][0] == key[0] and kept[1].dim == vectors.shape[1] else None
        folder = self._index_folder()
        if index is None and folder is not None:
            index, why = VectorIndex.load_checked(folder, binding=self._index_binding())
            if index is not None:
                why = _index_mismatch(index, ids, hashes, vectors)
                index = None if why else index
            if why and why != "no saved index":
                self.index_notice = f"the saved neighbour index was not used ({why}); it was rebuilt"
                logging.getLogger("coldrec").warning("%s: %s", folder, self.index_notice)
        if index is None:
            index = VectorIndex.build(ids, vectors, hashes, progress=progress)
            changed = len(ids)
        else:
            changed = index.update(ids, vectors, hashes)
            gone = set(index.ids) - set(ids)
            changed += index.remove(sorted(gone)) if gone else 0
        if changed:
            self._save_index(index)
        with self._lock:
            self._item_index = (key, index)
        return index

    def _save_index(self, index: VectorIndex) -> None:
        folder = self._index_folder()
        if folder is None:
            return
        try:
            index.save(folder, binding=self._index_binding())
        except OSError:  # a read-only location: the index still works, it is rebuilt next start
            pass

    def _index_binding(self) -> str:
        """The id that binds a saved index to this database (made once, kept in ``meta``); an index
        saved for another database file is never loaded for this one."""
        binding = self.store.get_meta("index_binding")
        if binding is None and not self.store.read_only:
            import uuid

            binding = uuid.uuid4().hex
            self.store.set_meta("index_binding", binding, bump=False)  # a record, not a setting
        return binding or ""

    def prepare(self, progress: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
        """Do now what the first prediction would otherwise wait for: embed every item, build the
        item index and search each item's neighbours (the graph's edges), saved beside the
        database, and store Explore's PCA map. ``coldrec init`` runs it (at a million items it is the nightly job's longest
        step), so the dashboard opens on a prepared workspace. ``progress(step, done, total)``.
        Returns ``{"items", "searched"}`` (items whose neighbours were searched now)."""
        from .graph import GRAPH_K

        def step(name: str) -> ProgressFn | None:
            return None if progress is None else (lambda done, total: progress(name, done, total))

        from .projection import stored_projection

        items, vectors = self.item_vectors()
        index = self.item_index(progress=step("building the neighbour index"))
        before = index.neighbours_searched
        index.neighbour_table(GRAPH_K + 1, progress=step("finding each item's neighbours"))
        if index.neighbours_searched > before:
            self._save_index(index)
        if len(items):  # Explore's map (PCA), stored in the database
            stored_projection(self.store, self.encoder.name, "pca", items["item_id"].tolist(), vectors)
        return {"items": len(items), "searched": index.neighbours_searched - before}

    def _index_folder(self) -> Path | None:
        """Where the item index of the current model is saved: beside the database file."""
        path = str(self.store.path)
        if path == ":memory:" or not path:
            return None
        import hashlib

        model = hashlib.sha256(self.encoder.name.encode("utf-8")).hexdigest()[:16]
        return Path(path + ".index") / model

    def similar_catalog_items(
        self, vectors: np.ndarray, k: int = 5, exclude: list[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each vector the ``k`` most similar catalog items ``(item_id, cosine)``, skipping the
        query's own id in ``exclude``. Searches the item index (no second index over the catalog:
        at a million items that would be another 20-minute build) and keeps catalog rows."""
        index = self.item_index()
        key = (self.encoder.name, self.store.catalog_fingerprint(), len(index.alive))

        def catalog_rows() -> np.ndarray:
            mask = np.zeros(len(index.alive), dtype=bool)
            for item_id in self.store.items(source="catalog")["item_id"]:
                row = index.row_of(item_id)
                if row is not None:
                    mask[row] = True
            return mask

        is_catalog: np.ndarray = self.memo("catalog_rows", key, catalog_rows)  # type: ignore[assignment]
        wanted = np.arange(len(vectors))
        out: list[list[tuple[str, float]]] = [[] for _ in wanted]
        fetch = 4 * k + 1
        while len(wanted):
            rows, sims = index.search_rows(vectors[wanted], min(fetch, len(index)))
            short = []
            for q, found_rows, found_sims in zip(wanted, rows, sims):
                own = exclude[q] if exclude is not None else None
                hits = [(index.ids[r], float(s)) for r, s in zip(found_rows, found_sims)
                        if r >= 0 and is_catalog[r] and index.ids[r] != own]
                out[q] = hits[:k]
                if len(hits) < k and found_rows.shape[0] >= fetch and fetch < len(index):
                    short.append(q)  # uploads crowd its neighbourhood: look further
            wanted, fetch = np.array(short, dtype=np.int64), fetch * 4
        return out

    def embedding_coverage(self) -> dict[str, int]:
        """How many stored items already have a vector for the current model."""
        from .encoder import text_hash

        def build() -> dict[str, int]:
            items = self.items()
            hashes = [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])]
            found = self.store.get_embeddings(self.encoder.name, hashes)
            return {"items": len(items), "embedded": sum(h in found for h in hashes)}

        # Kept until the items, the model or the cache's size change (another process may embed;
        # hashing a million texts takes seconds).
        key = (self.encoder.name, self.store.catalog_fingerprint(), self.store.stats()["cached_vectors"])
        return dict(self.memo("embedding_coverage", key, build))  # type: ignore[arg-type]

    def embed_all(self, progress: ProgressFn | None = None) -> int:
        """Embed every stored item and category prompt with the current model (after a model change)."""
        items = self.items()
        self.embed_items(items, progress=progress)
        self.classifier()
        return len(items)

    def audience(self) -> AudienceModel | None:
        """The audience model over stored purchases (``None`` without any), with the blend
        fitted on them when there are enough; rebuilt when purchases, the catalog or the
        categories of purchased items change."""
        purchases = self.store.interactions()
        if purchases.empty:
            return None
        items = self.items()
        items = items[items["item_id"].isin(set(purchases["item_id"]))]
        categories = [c if isinstance(c, str) else None for c in items["category"]]
        key = (self.store.interactions_version(), self.store.catalog_fingerprint(), hash(tuple(categories)))
        with self._lock:
            if self._audience is not None and self._audience[0] == key:
                return self._audience[1]
        texts = [item_text(t, d) for t, d in zip(items["title"], items["description"])]
        model = build_audience(
            purchases, items["item_id"].tolist(), self.embed_items(items), item_categories=categories, item_texts=texts
        )
        with self._lock:
            self._audience = (key, model)
        return model

    def audience_segment(self, item_id: str, n: int = 20, include_weak: bool = False) -> tuple[pd.DataFrame, str]:
        """The audience of one stored item (:func:`coldrec.audience.segment_table`) and the
        verdict sentence ("no clear audience" when nobody reaches the measured threshold)."""
        check_audience_request(self.store, item_id)  # before the model: an unknown id is told at once
        model = self.audience()
        if model is None:
            raise NotReadyError("No purchases yet: import them first (python -m coldrec import-interactions FILE).")
        items = self.items()
        item = items[items["item_id"] == str(item_id)]
        vector = self.embed_items(item)[0]
        text = item_text(item["title"].iloc[0], item["description"].iloc[0])
        titles = dict(zip(items["item_id"], items["title"]))
        return segment_table(model, vector, titles, n, include_weak, text), model.verdict(vector, text)

    # -- predicting and labelling -----------------------------------------------------------
    def predict(
        self, items: pd.DataFrame, progress: ProgressFn | None = None, n_neighbours: int = 5
    ) -> PredictionBatch:
        """Predict categories and find similar catalog items for ``items`` (id, title, description)."""
        vectors = self.embed_items(items, progress=progress)
        model = self.classifier()
        predictions = model.explain(vectors, unsure_below=self.settings.unsure_below, ids=items["item_id"].tolist())
        neighbours = self.similar_catalog_items(vectors, k=n_neighbours, exclude=items["item_id"].tolist())
        return PredictionBatch(
            items.reset_index(drop=True), predictions, neighbours, vectors,
            self._levels(model, model.predict_proba(vectors, ids=items["item_id"].tolist())),
        )

    def _levels(self, model: ColdStartClassifier, proba: np.ndarray) -> pd.DataFrame:
        from .taxonomy import prediction_path

        paths = self.store.categories().set_index("name")["path"].reindex(model.categories)
        if not paths.fillna("").str.contains(">").any():
            return pd.DataFrame()
        return prediction_path(model.categories, [p if isinstance(p, str) else None for p in paths], proba)

    def predict_batch(self, batch: str, progress: ProgressFn | None = None) -> PredictionBatch:
        """Predictions for a stored upload batch, from the current labels (vectors come from the cache)."""
        items = self.store.items(source="upload", batch=batch)
        return self.predict(items, progress=progress)

    def predict_text(self, text: str, n_neighbours: int = 5) -> PredictionBatch:
        """Predict one typed product (first line = title, the rest = description)."""
        title, _, description = text.strip().partition("\n")
        items = pd.DataFrame({"item_id": ["(typed)"], "title": [title.strip()], "description": [description.strip()]})
        return self.predict(items, n_neighbours=n_neighbours)

    def save_predictions(self, batch: PredictionBatch) -> None:
        """Keep the latest prediction of each (stored) item for analytics and audit."""
        self.store.save_predictions(self.encoder.name, batch.frame())

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
        self.access.require(who, "label", count=len(changed))
        self.store.add_labels([str(i) for i in changed], categories, who=who, source="manual", since=since)
        return len(changed)

    def add_category(self, name: str, description: str = "", path: str = "", actor: str | None = None) -> str:
        """Create a category under an optional parent ``path`` ("Home > Kitchen"; the stored path ends
        with the name). Raises :class:`StoreError` for a blank, over-long or existing name."""
        name = category_name(name or "")
        self.access.require(actor, "categories")
        if not name:
            raise StoreError("a category needs a name")
        if len(name) > 100:
            raise StoreError("category names are limited to 100 characters")
        if name.casefold() in {n.casefold() for n in self.store.category_names()}:
            raise StoreError(f"category {name!r} already exists")
        parents = " > ".join(p.strip() for p in (path or "").split(">") if p.strip())
        full_path = f"{parents} > {name}" if parents and not parents.endswith(name) else parents or None
        self.store.upsert_categories(
            pd.DataFrame({"name": [name], "description": [description.strip() or None], "path": [full_path]})
        )
        self.store.record_audit(actor, "category", subject=name, after=full_path or name)
        return name

    def label(self, item_id: str, category: str | None, who: str, source: str = "manual", since: int | None = None) -> None:
        """Record a label; the next prediction uses it. ``since``: the label version when the person
        saw the item; someone else's different label given after it raises
        :class:`~coldrec.errors.LabelConflict` instead of being overwritten."""
        self.access.require(who, "label")
        self.store.label(item_id, category, who=who, source=source, since=since)

    # -- model versions (issue 13: coldrec/finetune.py switches versions through this) ----
    def use_encoder(self, encoder: TextEncoder, actor: str | None = None, record: bool = True) -> None:
        """Serve every session from ``encoder`` from now on (a fine-tuned version or the base).

        Every model-derived cache is dropped; vectors come from the embedding cache keyed by the
        encoder's name, so switching back to a model already used embeds nothing. The switch is
        in the audit trail (``actor`` ``None``: the language rule or the CLI) unless ``record`` is false.
        """
        if record and encoder.name != self.encoder.name:
            self.store.record_audit(actor or "automatic", "model", subject="model in use", before=self.encoder.name, after=encoder.name)
        with self._build_lock, self._lock:
            self.encoder = encoder
            self._classifier = None
            self._item_index = None
            self._audience = None
            self._memo.clear()


    # -- the bundled encoder chosen by the catalogue's language (issue 20) -------------------
    def base_source(self) -> str | None:
        """The base model: ``COLDREC_MODEL``, else the bundled model chosen (see :meth:`encoder_choice`)."""
        return base_source(self.store, self.settings)

    def encoder_choice(self) -> dict[str, str]:
        """Which model serves and why: ``choice`` (``minilm``, ``multilingual``, ``both`` or ``configured``),
        ``source`` (``configured`` = ``COLDREC_MODEL``, ``setting`` = ``COLDREC_ENCODER``,
        ``override`` = picked on Categories & model, ``auto`` = the language rule) and ``reason``."""
        return encoder_choice(self.store, self.settings)

    def apply_language_rule(self, extra_texts: list[str] | None = None, store: bool = True) -> str | None:
        """Re-run the language rule (:mod:`coldrec.language`) on a sample of the stored titles (plus
        ``extra_texts``) when the choice is automatic, and switch the bundled model if it changes
        (vectors come from the cache keyed by model, so switching back embeds nothing). ``store``
        false switches this process only (``predict`` of a file it does not keep). Returns the choice,
        or ``None`` when a configured or chosen model makes the rule moot or there are no texts."""
        if self.encoder_choice()["source"] != "auto":
            return None
        texts = self.store.sample_titles(language.SAMPLE) + list(extra_texts or [])
        if not texts:
            return None
        mix = language.script_mix(texts)
        if store:
            self.store.set_meta("encoder_choice_reason", mix.reason)
            self.store.set_meta("encoder_choice", mix.choice)
        if mix.choice != _choice_of(self.encoder):
            self._switch_base(mix.choice, store=store)
        return mix.choice

    def set_encoder_choice(self, choice: str, actor: str | None = None) -> None:
        """Pick the bundled model on the page: ``minilm``, ``multilingual`` or ``both`` (kept for this
        workspace whatever its language), or ``auto`` (back to the language rule)."""
        self.access.require(actor, "model")
        if choice not in (*language.CHOICES, "auto"):
            raise ValueError(f"choice must be auto, {' or '.join(language.CHOICES)}, got {choice!r}")
        self.store.record_audit(actor, "model", subject="model choice", before=self.encoder_choice()["choice"], after=choice)
        if choice == "auto":
            self.store.set_meta("encoder_choice_source", "auto")
            self.store.set_meta("encoder_choice", "")  # the rule decides afresh
            if self.apply_language_rule() is None and _choice_of(self.encoder) != language.MINILM:
                self._switch_base(language.MINILM, actor=actor)  # nothing stored yet: the default
            return
        self.store.set_meta("encoder_choice_source", "override")
        self.store.set_meta("encoder_choice_reason", "chosen on Categories & model")
        self.store.set_meta("encoder_choice", choice)
        if choice != _choice_of(self.encoder):
            self._switch_base(choice, actor=actor)

    def _switch_base(self, choice: str, store: bool = True, actor: str | None = None) -> None:
        encoder = load_encoder(bundled_source(choice), self.settings.device)
        self.use_encoder(encoder, actor=actor, record=store)
        if store:
            self.store.set_meta("model_version", "")  # a fine-tuned version belongs to the model left

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
        counts = self.init_catalog(
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
        self.upload_and_predict(items, self.DEMO_BATCH, who=self.access.recorded_as(actor, "demo"), progress=progress)
        return len(items)

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
        self.access.require(actor, "import")
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
        self.apply_language_rule()
        if new:
            created = self.import_categories(pd.DataFrame({"name": new}), filename, actor)
        if "category" in items.columns:
            current = self.store.labels().set_index("item_id")
            by_person = set(current.index[current["source"] != "import"])
            todo = items[(items["category"] != "") & ~items["item_id"].isin(by_person)]
            todo = todo[[current["category"].get(i) != c for i, c in zip(todo["item_id"], todo["category"])]]
            if len(todo):
                labelled = self.store.add_labels(
                    todo["item_id"].tolist(), todo["category"].tolist(), who=self.access.recorded_as(actor, "catalog"), source="import"
                )
        self.embed_items(items, progress=progress)
        self.store.set_meta("initialised", "1")
        self.store.record_audit(actor, "import", subject=f"catalog {filename}", after=f"{len(items):,} items, {labelled:,} labels")
        return {"items": len(items), "labels": labelled, "categories": created}

    #: A taxonomy imported without choosing branches may create at most this many categories.
    MAX_UNFILTERED_TAXONOMY = 2_000

    def import_category_file(self, data: bytes, filename: str, max_depth: int = 3, actor: str | None = None) -> int:
        """Categories from a file: a table with a ``name`` column (optional description, path),
        or a taxonomy (Google's text file, or a table of paths / level columns) cut at
        ``max_depth``. Returns how many categories were created or updated."""
        from .taxonomy import read_taxonomy, taxonomy_categories

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


def encoder_choice(store: Store, settings: Settings) -> dict[str, str]:
    """See :meth:`Workspace.encoder_choice`."""
    if settings.model:
        return {"choice": "configured", "source": "configured", "reason": f"COLDREC_MODEL={settings.model}"}
    if settings.encoder in language.CHOICES:
        return {"choice": settings.encoder, "source": "setting", "reason": f"COLDREC_ENCODER={settings.encoder}"}
    source = store.get_meta("encoder_choice_source") or "auto"
    choice = store.get_meta("encoder_choice") or language.MINILM
    reason = store.get_meta("encoder_choice_reason") or "no items yet: the default"
    return {"choice": choice, "source": source, "reason": reason}


def base_source(store: Store, settings: Settings) -> str | None:
    """What :func:`~coldrec.encoder.load_encoder` loads as the workspace's base model."""
    choice = encoder_choice(store, settings)
    return settings.model if choice["source"] == "configured" else bundled_source(choice["choice"])


def _choice_of(encoder: TextEncoder) -> str:
    """Which bundled model an encoder is (MiniLM for it, its fine-tuned versions and test doubles)."""
    backend = getattr(encoder, "backend", "")
    return {"numpy": language.MULTILINGUAL, "pair": language.BOTH}.get(backend, language.MINILM)


@dataclass
class _FittedState:
    """The cached classifier and what it was fitted on (to tell a full refit from an update)."""

    categories_key: object
    label_version: int
    index: VectorIndex
    index_rows: int
    retired: int
    calibrated_labels: int
    model: ColdStartClassifier


#: The graph's centre is recomputed (a fresh graph) once the items have grown by this factor.
_CENTRE_GROWTH = 1.2


def _digest(key: object) -> str:
    """A short stable digest of a cache key (the categories a calibration was fitted for)."""
    import hashlib

    return hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:16]


def _needs_recalibration(calibrated_at: int, labels_now: int) -> bool:
    """Refit beta when the labels crossed the calibration minimum or moved by a fifth."""
    if labels_now < MIN_LABELS_TO_CALIBRATE:
        return calibrated_at >= MIN_LABELS_TO_CALIBRATE
    return calibrated_at < MIN_LABELS_TO_CALIBRATE or abs(labels_now - calibrated_at) >= 0.2 * calibrated_at


def _lower_this_threads_priority() -> None:
    """Make the calling thread yield the CPU to the others (Linux schedules threads as tasks:
    ``setpriority`` on its native id renices it alone); a no-op where that is not allowed."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A progress callback that prints ``label: done/total`` every 10%."""
    last = [-1]

    def report(done: int, total: int) -> None:
        step = int(10 * done / total) if total else 10
        if step != last[0]:
            last[0] = step
            print(f"{label}: {done:,}/{total:,}", flush=True)

    return report
