"""The classifier over every stored item and what it predicts: its lifecycle (built after a
change, updated incrementally, finished in the background at scale), the current prediction of
every item, and predicting new items (an upload keeps the batch it computed)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..access import Access
from ..background import Background
from ..classify import Prediction, category_prompt, predictions_frame
from ..config import Settings
from ..encoder import ProgressFn, TextEncoder, embed_texts
from ..errors import NotReadyError
from ..estimator import MIN_LABELS_TO_CALIBRATE, ColdStartClassifier
from ..neighbours import EXACT_MAX_ITEMS, VectorIndex
from .. import predictor_state
from .catalog import CatalogService
from .imports import ImportService
from .state import Depends, State
from .vectors import VectorService


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



class PredictorService:
    """The fitted classifier (one per model, categories and labels) and its predictions."""

    def __init__(self, state: State, settings: Settings, background: Background, catalog: CatalogService,
                 vectors: VectorService, imports: ImportService, access: Access) -> None:
        self._state = state
        self.store = state.store
        self.settings = settings
        self._background = background
        self._catalog = catalog
        self._vectors = vectors
        self._imports = imports
        self._access = access
        self._lock = state.lock  # the fitted state and the refit hand-off change under the cache's lock
        self._refitting = False  # a background refit is running (see _refit_in_background)
        self._pending_state = False
        self._pending_calibration = False
        self._fit_centre_items = 0  # items when the current graph's centre was computed (see _store_fit)
        self._saved: "_FittedState | None" = None  # the fitted state last saved beside the index

    @property
    def encoder(self) -> TextEncoder:
        return self._state.encoder

    @property
    def _classifier(self) -> "_FittedState | None":
        """The fitted state, held in :class:`State` so a model switch drops it with everything else."""
        return self._state.held("classifier")  # type: ignore[return-value]

    @_classifier.setter
    def _classifier(self, fitted: "_FittedState | None") -> None:
        self._state.hold("classifier", fitted)

    def current_predictions(self) -> pd.DataFrame:
        """The current model's prediction for every stored item, in store order (the one source of
        predictions pages show): item_id, predicted, confidence, unsure, novel. Computed once
        per :meth:`State.version`."""

        def build() -> pd.DataFrame:
            items, vectors = self._vectors.item_vectors()
            columns = ["item_id", "predicted", "confidence", "unsure", "novel"]
            if items.empty:
                return pd.DataFrame(columns=columns)
            model = self.classifier()
            fitted = model.fitted_predictions(unsure_below=self.settings.unsure_below)
            ids = items["item_id"].array
            found = fitted["item_id"].array
            # Each item's row in the fitted frame, kept while the items and fitted rows stay (a
            # lookup by id took 0.3 s at 1M items; checking the kept one costs one comparison).
            where = self._state.memo("fitted_rows", Depends.ITEMS, lambda: pd.Index(found).get_indexer(ids),
                                     extra=(len(found),))
            kept = where >= 0
            if not bool(np.asarray(found.take(where[kept]) == ids[kept]).all()):
                where = pd.Index(found).get_indexer(ids)
                self._state.put("fitted_rows", Depends.ITEMS, where, extra=(len(found),))
            in_order = len(where) == len(found) and bool((where == np.arange(len(where))).all())
            out = fitted if in_order else fitted.iloc[np.maximum(where, 0)].reset_index(drop=True)
            out["item_id"] = ids
            missing = np.flatnonzero(where < 0)
            if len(missing):  # not in the fitted index (should not happen: the index holds every item)
                extra = model.explain(vectors[missing], unsure_below=self.settings.unsure_below, n_evidence=0,
                                      ids=[str(ids[i]) for i in missing])
                out = out.astype({"predicted": object})
                out.iloc[missing, 1:] = [[p.category, p.probability, p.unsure, p.novel] for p in extra]
            return out.astype({"confidence": float, "unsure": bool, "novel": bool})[columns]

        with self._background.foreground():  # a background refit waits meanwhile
            return self._state.memo("current_predictions", Depends.PREDICTIONS, build)

    def classifier(self) -> ColdStartClassifier:
        """The classifier over every stored item for the current categories and labels.

        Refitted only after a change, and incrementally: a new label warm-starts the
        propagation and recomputes only the rows it reaches; new items extend the graph.
        Calibration (beta) is refitted when the label count has moved by a fifth since the
        last fit. One thread refits; the others wait and reuse the result.
        """
        with self._background.foreground(), self._state.model_lock:  # a background refit waits meanwhile
            return self._build_classifier()


    def _build_classifier(self) -> ColdStartClassifier:
        cats = self.store.categories()
        if cats.empty:
            raise NotReadyError(
                "there are no categories yet: add or import categories on Categories & model (or load the demo)"
            )
        categories_key = (self.encoder.name, tuple(map(tuple, cats.fillna("").values.tolist())))
        label_version = self.store.label_version()
        index = self._vectors.item_index()
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
        # A start (nothing fitted in this process): the state the last process saved, if it was
        # fitted on exactly these items, labels, categories and model (coldrec/predictor_state.py).
        restored = None if fitted is not None else self._restore_predictor(index, categories_key, label_version, rows_a, classes_a)
        if restored is not None:
            model, calibrated, finish_later = restored.model, restored.calibrated_labels, restored.pending
            self._fit_centre_items = restored.centre_items
        elif incremental:
            assert fitted is not None
            model = fitted.model.snapshot()  # sessions reading the current model are not disturbed
            if len(index.ids) > fitted.index_rows:
                model.add_index_rows(self._row_texts(index))
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
                centre=centre, calibration=stored["calibration"] if reuse else None, texts=self._row_texts(index),
            )
            finish_later = (False, not reuse and not in_place and len(rows_a) >= MIN_LABELS_TO_CALIBRATE)
            calibrated = int(stored["calibrated_labels"]) if reuse else len(rows_a)
            centre_items = len(index.ids) if centre_due else int(stored["centre_items"])
            self._fit_centre_items = centre_items
            if index.neighbours_searched > searched:  # keep the search for the next start
                self._vectors.save_index(index)
        with self._lock:
            self._classifier = _FittedState(
                categories_key, label_version, index, len(index.ids), int((~index.alive).sum()), calibrated, model
            )
            if restored is not None:  # the file holds it already
                self._saved = self._classifier
        # beta still to come from the background: stored as "not calibrated", so a new process fits it.
        self._store_fit(categories_key, model, -1 if finish_later[1] else calibrated)
        if restored is None and not incremental:  # a fresh fit: the next start loads it instead
            # With its predictions (computed now rather than on the first page's call, which
            # follows at once): a restart then shows them without four seconds of products at 1M.
            model.fitted_predictions()
            self._save_predictor(self._classifier, finish_later)
        if any(finish_later):  # after the model is current, so the result lands on it
            self._refit_in_background(*finish_later)
        return model

    def _row_texts(self, index: VectorIndex) -> list[str]:
        """The text (title + description) of each row of ``index``, "" for a retired row: what the
        graph's text view is fitted on (:mod:`coldrec.text_features`)."""
        from ..ingest import item_text

        items = self._catalog.items()
        text_of = dict(zip(items["item_id"].astype(str), map(item_text, items["title"], items["description"])))
        return [text_of.get(item_id, "") if alive else "" for item_id, alive in zip(index.ids, index.alive)]

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
                while not cancelled.is_set():
                    with self._lock:
                        current = self._classifier.model if self._classifier is not None else None
                        do_state, do_calibration = self._pending_state, self._pending_calibration
                    if current is None:
                        break
                    twin = current.snapshot()

                    def pause() -> None:  # clicks first: OpenBLAS serialises products (coldrec/background.py)
                        self._background.yield_to_foreground(cancelled)
                        if cancelled.is_set():  # the workspace is closing: stop mid-propagation
                            raise _Cancelled

                    if do_state:
                        twin.set_state(*twin.propagated_state(pause))
                    beta = twin.calibration(pause) if do_calibration else None
                    if beta is not None:
                        twin.set_calibration(beta[0], beta[1])
                    # Here, not on the first page after it lands: every row's probability moved
                    # (1.4 s of a label's refresh at a million items).
                    pause()
                    twin.fitted_predictions()
                    landed = None
                    with self._lock:
                        newest = self._classifier.model if self._classifier is not None else None
                        if newest is not None and newest.same_labels(twin):
                            # Published as a new model, never written into the serving one: a
                            # session computing predictions from it must not see a new state with
                            # the old beta (or the reverse).
                            updated = newest.snapshot()
                            if do_state:
                                updated.set_state(twin._require_fit().state, twin._require_fit().prior,
                                                  twin._require_fit().logits)
                            if beta is not None:
                                updated.set_calibration(beta[0], beta[1])
                                fitted_state = self._classifier
                                if fitted_state is not None:  # a new process starts from this beta
                                    self._store_fit(fitted_state.categories_key, updated, fitted_state.calibrated_labels)
                            updated.reuse_predictions(twin)
                            self._classifier = replace(self._classifier, model=updated)
                            self._state.refit_landed()
                            self._pending_state &= not do_state
                            self._pending_calibration &= not do_calibration
                            landed, still = self._classifier, (self._pending_state, self._pending_calibration)
                    if landed is not None:  # the next start loads this (written outside the lock: seconds at 1M)
                        pause()
                        self._save_predictor(landed, still)
                    with self._lock:
                        if not (self._pending_state or self._pending_calibration):
                            self._refitting = False
                            return
            except _Cancelled:
                pass
            except Exception:  # a bug: keep the traceback in the log, keep serving the last model
                logging.getLogger("coldrec").exception("background refit failed")
            with self._lock:
                self._refitting = False

        self._background.start("refit", run)

    def _predictor_key(self, fitted_index: VectorIndex, rows: int, label_version: int,
                       categories_key: object) -> "predictor_state.StateKey":
        return predictor_state.StateKey.of(self._vectors.index_binding(), self.encoder.name, self.encoder.dim,
                                           fitted_index, rows, label_version, categories_key)

    def _restore_predictor(self, index: VectorIndex, categories_key: object, label_version: int,
                           rows: np.ndarray, classes: np.ndarray) -> "predictor_state.Restored | None":
        """The saved predictor state for exactly these inputs (``None``: fit)."""
        folder = self._vectors.index_folder()
        if folder is None:
            return None
        key = self._predictor_key(index, len(index.ids), label_version, categories_key)
        return predictor_state.load(folder, key, index, rows, classes, encoder=self.encoder)

    def _save_predictor(self, fitted: "_FittedState | None", pending: tuple[bool, bool]) -> None:
        """Keep ``fitted``'s model beside the index for the next start (with the work still pending)."""
        folder = self._vectors.index_folder()
        if folder is None or fitted is None or self.store.read_only:
            return
        key = self._predictor_key(fitted.index, fitted.index_rows, fitted.label_version, fitted.categories_key)
        if predictor_state.save(folder, key, fitted.model, fitted.calibrated_labels, self._fit_centre_items, pending):
            self._saved = fitted

    def close(self) -> None:
        """Save the serving model when labels changed it since it was saved (after the background
        work stopped): the next start then loads it and resumes the refit that was pending,
        instead of fitting a million items again (two minutes)."""
        with self._lock:
            fitted, pending = self._classifier, (self._pending_state, self._pending_calibration)
        if fitted is not None and fitted is not self._saved:
            self._save_predictor(fitted, pending)

    def refitting(self) -> bool:
        """Whether a large workspace is still finishing its last refit in the background (the
        labelled items' look-alikes are current; the rest of the catalog is catching up)."""
        with self._lock:
            return self._refitting

    def embed_all(self, progress: ProgressFn | None = None) -> int:
        """Embed every stored item and category prompt with the current model (after a model change)."""
        items = self._catalog.items()
        self._vectors.embed_items(items, progress=progress)
        self.classifier()
        return len(items)

    # -- predicting and labelling -----------------------------------------------------------
    def predict(
        self, items: pd.DataFrame, progress: ProgressFn | None = None, n_neighbours: int = 5
    ) -> PredictionBatch:
        """Predict categories and find similar catalog items for ``items`` (id, title, description)."""
        vectors = self._vectors.embed_items(items, progress=progress)
        model = self.classifier()
        predictions = model.explain(vectors, unsure_below=self.settings.unsure_below, ids=items["item_id"].tolist())
        neighbours = self._vectors.similar_catalog_items(vectors, k=n_neighbours, exclude=items["item_id"].tolist())
        return PredictionBatch(
            items.reset_index(drop=True), predictions, neighbours, vectors,
            self._levels(model, model.predict_proba(vectors, ids=items["item_id"].tolist())),
        )

    def _levels(self, model: ColdStartClassifier, proba: np.ndarray) -> pd.DataFrame:
        from ..taxonomy import prediction_path

        paths = self.store.categories().set_index("name")["path"].reindex(model.categories)
        if not paths.fillna("").str.contains(">").any():
            return pd.DataFrame()
        return prediction_path(model.categories, [p if isinstance(p, str) else None for p in paths], proba)

    def predict_batch(self, batch: str, progress: ProgressFn | None = None) -> PredictionBatch:
        """Predictions for a stored upload batch, from the current labels (vectors come from the cache)."""
        items = self.store.items(source="upload", batch=batch)
        return self.predict(items, progress=progress)

    def batch_predictions(self, batch: str) -> PredictionBatch:
        """:meth:`predict_batch`, kept until the model, labels, categories or items change (selecting
        a row or downloading must not re-run the whole batch; an upload leaves the batch it computed)."""
        return self._state.memo(f"batch_predictions:{batch}", Depends.PREDICTIONS, lambda: self.predict_batch(batch))

    def predict_text(self, text: str, n_neighbours: int = 5) -> PredictionBatch:
        """Predict one typed product (first line = title, the rest = description)."""
        title, _, description = text.strip().partition("\n")
        items = pd.DataFrame({"item_id": ["(typed)"], "title": [title.strip()], "description": [description.strip()]})
        return self.predict(items, n_neighbours=n_neighbours)

    def save_predictions(self, batch: PredictionBatch) -> None:
        """Keep the latest prediction of each (stored) item for analytics and audit."""
        self.store.save_predictions(self.encoder.name, batch.frame())

    def upload_and_predict(
        self, items: pd.DataFrame, batch: str, who: str = "upload", progress: ProgressFn | None = None
    ) -> tuple[PredictionBatch, list[str]]:
        """Store an upload batch, import its mapped ``category`` column as labels, predict, and keep
        the predictions. Returns the predictions and warnings for the user (e.g. unknown categories).

        Checks that predicting is possible before anything is written.
        """
        self._access.require(who, "import")
        self.classifier()  # raises NotReadyError when there are no categories yet
        warnings: list[str] = []
        earlier = {i: b for i, b in self.store.upload_batches_of(items["item_id"].tolist()).items() if b != batch}
        self._imports.add_upload(items, batch=batch)
        if earlier:  # the same product uploaded again: it moves to this batch, and the user is told
            shown = ", ".join(f"{i!r} (was in {b!r})" for i, b in list(earlier.items())[:5])
            warnings.append(
                f"{len(earlier)} product(s) had been uploaded before with the same id and text and now "
                f"belong to batch {batch!r}: {shown}"
            )
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
        if len(result.items) == self._catalog.batches().set_index("batch")["items"].get(batch, -1):
            # the whole batch (not rows added to an existing one): the page shows it without predicting again
            self._state.put(f"batch_predictions:{batch}", Depends.PREDICTIONS, result)
        self.store.record_audit(who, "import", subject=f"upload batch {batch}", after=f"{len(items):,} items")
        return result, warnings


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


class _Cancelled(Exception):
    """Raised inside a background refit when its workspace closes."""


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

