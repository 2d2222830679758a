"""The labelling loop: what to label next, label propagation, auto-accept under a target
precision, likely label mistakes, guidance, label export/import and taxonomy import.

Functions take a :class:`~coldrec.workspace.Workspace`; costly views (cross-validated
probabilities, learning curves) are computed once per label version and shared by sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import StoreError
from .export import from_spreadsheet_safe
from .ingest import LABEL_UPLOADS, IngestError, Limits, clean_text, is_spreadsheet, read_table, row_numbers
from .services.state import Depends
from .workspace import Workspace

#: Look-alikes offered for propagation must be at least this similar (cosine) by default.
PROPAGATE_MIN_SIMILARITY = 0.8


@dataclass
class Candidates:
    """Unlabelled items with the current model's probabilities."""

    items: pd.DataFrame
    vectors: np.ndarray
    proba: np.ndarray
    categories: list[str]


def unlabelled(ws: Workspace, batch: str | None = None) -> Candidates:
    """Unlabelled items (of one upload batch, or all) with the current model's probabilities."""
    items, vectors = ws.vectors.item_vectors()
    model = ws.predictor.classifier()
    rows = _unlabelled_rows(items, batch)
    ids = items["item_id"].iloc[rows].tolist()
    proba = model.predict_proba(vectors[rows], ids=ids) if len(rows) else np.zeros((0, len(model.categories)))
    return Candidates(items.iloc[rows].reset_index(drop=True), vectors[rows], proba, list(model.categories))


def _prefiltered(ws: Workspace, strategy: str, batch: str | None, n: int) -> Candidates | None:
    """For margin, cluster-margin and least-confidence over many candidates: only the candidates
    that can reach the queue's pool (every item scoring at least the pool's last, ties kept, in
    store order, so the ranking equals the full one), with their full probabilities. ``None``
    when the shortcut does not apply."""
    from .active import CLUSTER_POOL_FACTOR

    if strategy not in ("margin", "cluster-margin", "least-confidence"):
        return None
    items, vectors = ws.vectors.item_vectors()
    rows = _unlabelled_rows(items, batch)
    if len(rows) <= PREFILTER_ABOVE:
        return None
    model = ws.predictor.classifier()
    index = ws.vectors.item_index()
    fitted = np.array([index.row_of(i) for i in items["item_id"].iloc[rows]], dtype=object)
    if any(r is None for r in fitted):
        return None
    fitted = fitted.astype(np.int64)
    top, second = model.fitted_top_two()
    top, second = top[fitted].astype(np.float64), second[fitted].astype(np.float64)
    score = 1.0 - top if strategy == "least-confidence" else 1.0 - (top - second)
    pool = min(len(rows), CLUSTER_POOL_FACTOR * n)
    cut = -np.partition(-score, pool - 1)[pool - 1]
    keep = rows[score >= cut]
    ids = items["item_id"].iloc[keep].tolist()
    proba = model.predict_proba(vectors[keep], ids=ids)
    return Candidates(items.iloc[keep].reset_index(drop=True), vectors[keep], proba, list(model.categories))


def _unlabelled_rows(items: pd.DataFrame, batch: str | None) -> np.ndarray:
    """Rows of ``items`` without a label (of one upload batch, when given)."""
    mask = items["category"].isna().to_numpy(copy=True)
    if batch is not None:
        mask &= (items["batch"] == batch).to_numpy()
    return np.flatnonzero(mask)


def queue(
    ws: Workspace, strategy: str = "margin", batch: str | None = None, n: int = 20, seed: int = 0
) -> pd.DataFrame:
    """The ``n`` unlabelled items to label next, most useful first, by a query strategy
    (:data:`coldrec.active.STRATEGIES`). Columns: item_id, title, description, batch,
    suggestion, probability, second, second_probability, third, third_probability.
    Ranking needs only the current model (no cross-validation), so it follows every label at once.
    """
    return ws.state.memo(f"queue:{strategy}:{batch}:{n}:{seed}", Depends.PREDICTIONS, lambda: _queue(ws, strategy, batch, n, seed))


#: Above this many candidates, margin-type queues first keep the most uncertain items from the
#: model's kept top-two probabilities, and score only those in full (same ranking, far less work).
PREFILTER_ABOVE = 20_000


def _queue(ws: Workspace, strategy: str, batch: str | None, n: int, seed: int) -> pd.DataFrame:
    from .active import rank_unlabelled

    cands = _prefiltered(ws, strategy, batch, n) or unlabelled(ws, batch)
    columns = ["item_id", "title", "description", "batch", "suggestion", "probability", "second",
               "second_probability", "third", "third_probability"]
    if cands.items.empty:
        return pd.DataFrame(columns=columns)
    order = rank_unlabelled(strategy, cands.proba, cands.vectors, min(n, len(cands.items)), seed=seed)
    proba = cands.proba[order]
    top = np.argsort(-proba, axis=1)
    out = cands.items.iloc[order][["item_id", "title", "description", "batch"]].reset_index(drop=True)
    for rank, name in enumerate(("suggestion", "second", "third")):
        prob_col = "probability" if rank == 0 else f"{name}_probability"
        has = rank < top.shape[1]  # fewer than three categories leave the lower ranks empty
        out[name] = [cands.categories[j] for j in top[:, rank]] if has else None
        out[prob_col] = proba[np.arange(len(top)), top[:, rank]].astype(float) if has else np.nan
    return out[columns]


def propagation_preview(
    ws: Workspace, item_id: str, min_similarity: float = PROPAGATE_MIN_SIMILARITY, limit: int = 100
) -> pd.DataFrame:
    """Unlabelled look-alikes of a labelled item, most similar first: item_id, title, source,
    batch, similarity. Empty when the item has no label."""
    from .neighbours import top_k_cosine

    items, vectors = ws.vectors.item_vectors()
    where = np.flatnonzero((items["item_id"] == item_id).to_numpy())
    if len(where) == 0:
        raise StoreError(f"unknown item {item_id!r}")
    if not isinstance(items.loc[where[0], "category"], str):
        return pd.DataFrame(columns=["item_id", "title", "source", "batch", "similarity"])
    free = np.flatnonzero(items["category"].isna().to_numpy())
    if len(free) == 0:
        return pd.DataFrame(columns=["item_id", "title", "source", "batch", "similarity"])
    idx, sim = top_k_cosine(vectors[where], vectors[free], min(limit, len(free)))
    keep = sim[0] >= min_similarity
    rows = free[idx[0][keep]]
    out = items.iloc[rows][["item_id", "title", "source", "batch"]].reset_index(drop=True)
    out["similarity"] = sim[0][keep].astype(float)
    return out


def propagate(ws: Workspace, item_id: str, targets: list[str], who: str) -> int:
    """Give ``targets`` the label of ``item_id`` in one undoable action (source ``propagated``)."""
    label = ws.store.items_by_id([item_id])["category"].get(item_id)
    if not isinstance(label, str):
        raise StoreError(f"item {item_id!r} has no label to propagate")
    targets = [t for t in dict.fromkeys(map(str, targets)) if t != item_id]
    if not targets:
        return 0
    ws.access.require(who, "label", count=len(targets))
    return ws.store.add_labels(targets, [label] * len(targets), who=who, source="propagated")


#: Most items one bulk action labels: a lasso over a million-item map can hold most of it, and
#: a label should stay a judgement on items someone has looked at, not a sweep.
BULK_LABEL_MAX = 10_000


def bulk_label(ws: Workspace, item_ids: list[str], category: str, who: str) -> int:
    """Label many items (at most :data:`BULK_LABEL_MAX`; a labeller at most
    :data:`coldrec.access.LABELLER_BULK_MAX`) with one category, as one undoable manual action
    (the audit trail calls a manual action on several items ``bulk``)."""
    if category not in ws.store.category_names():
        raise StoreError(f"unknown category {category!r}")
    ids = list(dict.fromkeys(map(str, item_ids)))
    if len(ids) > BULK_LABEL_MAX:
        raise StoreError(f"{len(ids):,} items at once is more than {BULK_LABEL_MAX:,}: select fewer and label again")
    ws.access.require(who, "label", count=len(ids))
    return ws.store.add_labels(ids, [category] * len(ids), who=who, source="manual") if ids else 0


# -- review: cross-validated view of the labels -------------------------------------------------
@dataclass
class Review:
    """Labelled items with out-of-fold probabilities (what a new item would get)."""

    items: pd.DataFrame
    vectors: np.ndarray
    labels: list[str]
    categories: list[str]
    prompts: np.ndarray
    proba: np.ndarray


def labelled(ws: Workspace) -> Review:
    """The labelled items, their vectors and the category prompts (``proba`` left empty)."""

    def build() -> Review:
        items, vectors = ws.vectors.item_vectors()
        mask = items["category"].notna().to_numpy()
        model = ws.predictor.classifier()
        rows = items[mask].reset_index(drop=True)
        empty = np.zeros((0, len(model.categories)))
        return Review(rows, vectors[mask], rows["category"].tolist(), list(model.categories), model.prompt_vectors, empty)

    return ws.state.memo("labelled", Depends.PREDICTIONS, build)


#: Cross-validating the labels (:func:`review`) refits once per fold, propagating over every
#: item: 3.4-4.5 s at 30,000 items, 41-44 s at 100,000 on the 2-core machine (BENCHMARKS.md,
#: "Scale"), and it grows with the labels too (30 s for 30,000 labels at 50k items). Pages run it
#: by themselves only below both limits (20,000 items: where the item index is still exact).
REVIEW_AUTOMATICALLY_MAX_ITEMS = 20_000
REVIEW_AUTOMATICALLY_MAX_LABELS = 5_000


def review_runs_automatically(ws: Workspace) -> bool:
    """Whether a page may cross-validate the labels without being asked (a small workspace)."""
    stats = ws.store.stats()
    items = stats["catalog_items"] + stats["uploaded_items"]
    return items <= REVIEW_AUTOMATICALLY_MAX_ITEMS and stats["labelled_items"] <= REVIEW_AUTOMATICALLY_MAX_LABELS


def review(ws: Workspace) -> Review:
    """:func:`labelled` with cross-validated probabilities (computed once per label version;
    seconds with tens of thousands of labels, so pages ask for it only when it is shown)."""

    def build() -> Review:
        base = labelled(ws)
        proba = np.zeros((len(base.labels), len(base.categories)))
        if len(base.labels) >= 2:
            # The classifier's own out-of-fold probabilities (the graph included), row-matched by item.
            model = ws.predictor.classifier()
            oof = model.out_of_fold_proba()
            index = ws.vectors.item_index()
            where = {int(r): i for i, r in enumerate(model.labelled_rows_)}
            for i, item_id in enumerate(base.items["item_id"]):
                j = where.get(index.row_of(item_id))  # type: ignore[arg-type]
                if j is not None:
                    proba[i] = oof[j]
        return Review(base.items, base.vectors, base.labels, base.categories, base.prompts, proba)

    return ws.state.memo("review", Depends.PREDICTIONS, build)


def abstain_thresholds(ws: Workspace) -> pd.DataFrame:
    """Per category: labelled count, target precision, the confidence threshold reaching it
    (cross-validated), the estimated precision and coverage there."""
    from .quality import abstain_table

    rev = review(ws)
    return abstain_table(rev.categories, rev.labels, rev.proba, ws.store.category_targets())


def _thresholds(ws: Workspace) -> dict[str, float]:
    """Confidence threshold per category with a target (infinite where the target is out of reach)."""
    from .quality import thresholds_from_table

    if not ws.store.category_targets():  # no targets: nothing auto-accepts, and no cross-validation to run
        return {}
    return thresholds_from_table(abstain_thresholds(ws))


def _routes(ws: Workspace, predicted: list[str], confidence: np.ndarray) -> np.ndarray:
    """True where a prediction clears its category's threshold. Categories without a target
    never auto-accept: a person decides until a target is set."""
    thresholds = _thresholds(ws)
    return np.array(
        [c in thresholds and p >= thresholds[c] for c, p in zip(predicted, confidence)], dtype=bool
    )


def auto_accept(ws: Workspace, who: str, batch: str | None = None) -> dict[str, int]:
    """Label the unlabelled items (of ``batch``, or all) whose prediction clears its category's
    target precision, as one undoable action (source ``accepted``); the rest stay in the queue."""
    cands = unlabelled(ws, batch)
    if cands.items.empty:
        return {"accepted": 0, "queued": 0}
    best = cands.proba.argmax(axis=1)
    predicted = [cands.categories[j] for j in best]
    ok = _routes(ws, predicted, cands.proba.max(axis=1))
    ids = cands.items["item_id"][ok].tolist()
    ws.access.require(who, "label", count=len(ids))
    if ids:
        ws.store.add_labels(ids, [p for p, keep in zip(predicted, ok) if keep], who=who, source="accepted")
    return {"accepted": len(ids), "queued": int((~ok).sum())}


def label_issues(ws: Workspace, max_issues: int = 50) -> pd.DataFrame:
    """Labelled items whose label both the model (out-of-fold) and their neighbours dispute,
    with titles: item_id, title, given, suggested, ... (see :func:`coldrec.quality.label_issues`)."""
    from .quality import label_issues as find

    rev = review(ws)
    if len(rev.labels) < 3:
        return pd.DataFrame(columns=["item_id", "title", "given", "suggested"])
    found = find(rev.items["item_id"].tolist(), rev.labels, rev.categories, rev.proba, rev.vectors, max_issues=max_issues)
    titles = rev.items.set_index("item_id")["title"]
    found.insert(1, "title", found["item_id"].map(titles))
    return found


def guidance(ws: Workspace) -> tuple[pd.DataFrame, list]:
    """Per-category learning curves from the labels so far, and plain hints on where labels help most."""
    from .quality import guidance as hints
    from .quality import learning_curves

    def build() -> tuple[pd.DataFrame, list]:
        rev = labelled(ws)
        if len(rev.labels) < 2:
            return pd.DataFrame(columns=["category", "examples", "f1"]), []
        curves = learning_curves(rev.categories, rev.prompts, rev.vectors, rev.labels)
        counts = pd.Series(rev.labels).value_counts().to_dict()
        return curves, hints(curves, {c: int(counts.get(c, 0)) for c in rev.categories})

    return ws.state.memo("guidance", Depends.PREDICTIONS, build)


# -- label files --------------------------------------------------------------------------------
LABEL_EXPORT_COLUMNS = ["item_id", "title", "category", "who", "source", "labelled_at"]


def export_labels(ws: Workspace) -> pd.DataFrame:
    """Current labels (item_id, title, category, who, source, labelled_at) for a CSV download."""
    return ws.store.labels()[LABEL_EXPORT_COLUMNS]


def import_labels(ws: Workspace, data: bytes | str | Path, filename: str, who: str, limits: Limits = LABEL_UPLOADS) -> int:
    """Apply a labels file (``item_id``, ``category``; other columns ignored) as one undoable action.

    Cells escaped by coldrec's own export are restored. Nothing is written when any row names an
    unknown item or category; the error names the rows. Returns how many labels changed.
    """
    ws.access.require(who, "import")
    table = read_table(data, filename, limits=limits)
    missing = [c for c in ("item_id", "category") if c not in table.columns]
    if missing:
        raise IngestError(f"{filename}: needs columns item_id and category; missing {', '.join(missing)}")
    # Only CSV and Excel exports escape cells; a JSON export holds the values as they are.
    restore = from_spreadsheet_safe if is_spreadsheet(filename) else (lambda v: v)
    ids = table["item_id"].map(restore).map(clean_text)
    cats = table["category"].map(restore).map(clean_text)
    known_items = set(ws.store.items()["item_id"])
    known_cats = set(ws.store.category_names())
    for column, values, known in (("item_id", ids, known_items), ("category", cats, known_cats)):
        bad = [r for r, v in enumerate(values, start=1) if v and v not in known or (column == "item_id" and not v)]
        if bad:
            raise IngestError(
                f"{filename}: unknown {column} in row(s) {row_numbers(bad, filename)}, e.g. {values.iloc[bad[0] - 1]!r}"
            )
    current = ws.store.labels().set_index("item_id")["category"]
    changed = [(i, c or None) for i, c in zip(ids, cats) if current.get(i) != (c or None)]
    if changed:
        ws.store.add_labels([i for i, _ in changed], [c for _, c in changed], who=who, source="import")
    ws.store.record_audit(who, "import", subject=f"labels {filename}", after=f"{len(changed):,} labels changed")
    return len(changed)


def import_taxonomy(
    ws: Workspace, data: bytes | str | Path, filename: str, include: list[str], max_depth: int | None = None,
    actor: str | None = None,
) -> int:
    """Create categories from a taxonomy file (Google's format or a CSV of paths), keeping the
    branches in ``include`` (all when empty). Existing categories of the same name are updated."""
    from .taxonomy import read_taxonomy, taxonomy_categories

    frame = taxonomy_categories(read_taxonomy(data, filename), include=include, max_depth=max_depth)
    if frame.empty:
        raise IngestError(f"{filename}: no categories under the chosen branches")
    return ws.catalog.import_categories(frame, filename, actor)
