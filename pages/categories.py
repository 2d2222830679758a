"""Categories & model: edit categories, import them (CSV or a taxonomy), set target precisions,
see and refresh the model's cache."""

import pandas as pd
import streamlit as st

from coldrec import labelling, ui
from coldrec.errors import ColdrecError
from coldrec.ingest import read_table
from coldrec.taxonomy import branches, read_taxonomy, taxonomy_categories

ws = ui.workspace()
st.title("Categories & model")

st.subheader("Categories", anchor=False)
ready = ws.readiness()
if not ready["categories"]:
    ui.start_here(ws, "No categories yet. Load the demo, import a catalog (a category column brings its "
                  "categories), import a list of categories or a taxonomy, or add them one by one:", key="categories-start")
st.caption("The name and description are what zero-shot prediction reads: a clear description helps.")
cats = ws.catalog.categories().set_index("name")
edited = st.data_editor(
    cats.fillna(""), key="categories-editor", width="stretch", disabled=["name"],
    column_config={"description": st.column_config.TextColumn("description", width="large"),
                   "path": st.column_config.TextColumn("path (parents > name)", width="medium")},
)
if st.button("Save category descriptions", disabled=cats.empty):
    changed = edited[(edited.fillna("") != cats.fillna("")).any(axis=1)]
    try:
        if len(changed):
            ws.catalog.import_categories(changed.reset_index(), "category table", actor=ui.who())
        st.toast(f"Saved {len(changed)} categor{'y' if len(changed) == 1 else 'ies'}")
    except ColdrecError as exc:
        ui.error(exc)

with st.expander("Add a category"):
    ui.category_form(ws, key="categories-add")
with st.expander("Rename or merge categories"):
    ui.rename_merge_forms(ws, key="categories-edit")
with st.expander("Import a catalog (products you already sell, with or without a category column)"):
    ui.catalog_import(ws, key="categories-catalog")

with st.expander("Import categories from a CSV (name, description, optional path)"):
    uploaded = st.file_uploader("Categories file", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"])
    if uploaded is not None and st.button("Import"):
        try:
            count = ws.catalog.import_categories(read_table(uploaded.getvalue(), uploaded.name), uploaded.name, actor=ui.who())
            st.success(f"Imported {count} categories")
        except ColdrecError as exc:
            ui.error(exc)

with st.expander("Import a taxonomy (Google product taxonomy file, or a CSV with a path column)"):
    tax_file = st.file_uploader("Taxonomy file", type=["txt", "csv", "tsv", "xlsx"], key="taxonomy-file")
    if tax_file is not None:
        try:
            paths = read_taxonomy(tax_file.getvalue(), tax_file.name)
        except ColdrecError as exc:
            ui.error(exc)
            paths = []
        if paths:
            depth = st.number_input("Cut the tree at depth (leaves below become their ancestor)", 1, 10, 3)
            include = st.multiselect("Branches to import (none = all)", branches(paths, depth=2))
            preview = taxonomy_categories(paths, include=include, max_depth=int(depth))
            st.caption(f"{len(paths):,} paths in the file → {len(preview):,} categories")
            st.dataframe(preview.head(200)[["name", "path"]], hide_index=True, width="stretch")
            if st.button(f"Import {len(preview):,} categories", disabled=preview.empty or len(preview) > 2000):
                try:
                    count = labelling.import_taxonomy(ws, tax_file.getvalue(), tax_file.name, include, int(depth), actor=ui.who())
                    st.success(f"Imported {count} categories")
                except ColdrecError as exc:
                    ui.error(exc)

if not ready["categories"]:
    st.stop()  # targets, thresholds and the model's categories need categories

st.subheader("Auto-accept: target precision per category")
st.caption(
    "From your labels (cross-validated) coldrec estimates how precise each category's predictions are above "
    "each confidence. Set a target and predictions that reach it can be auto-accepted on the Label next page; "
    "the rest wait in the queue. Coverage: the share of the category's items accepted at that threshold."
)


def targets_editor() -> None:
    """The cross-validated thresholds per category, with an editable target precision."""
    table = labelling.abstain_thresholds(ws).set_index("category")
    numeric = ["target_precision", "threshold", "estimated_precision", "precision_lower_bound", "coverage"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")  # blanks, not "None"
    edited_targets = st.data_editor(
        table,
        key="targets-editor",
        disabled=[c for c in table.columns if c != "target_precision"],
        column_config={
            "target_precision": st.column_config.NumberColumn(
                "target precision", min_value=0.5, max_value=1.0, step=0.01, format="%.2f",
                help="Blank: no target, so this category is never auto-accepted. Type 0.50-1.00 to set one."),
            "threshold": st.column_config.NumberColumn(
                "confidence ≥", format="%.2f", help="Blank where there is no target or it is out of reach (see note)."),
            "estimated_precision": st.column_config.NumberColumn("est. precision", format="%.2f", help="Blank: see note."),
            "precision_lower_bound": st.column_config.NumberColumn("precision at least (90% sure)", format="%.2f",
                                                                   help="Blank: see note."),
            "coverage": st.column_config.ProgressColumn("coverage", min_value=0.0, max_value=1.0, format="%.2f"),
            "note": st.column_config.TextColumn("note", width="large"),
        },
        width="stretch",
    )
    if st.button("Save targets"):
        before = table["target_precision"]
        after = edited_targets["target_precision"]
        changed = [c for c in table.index if not (pd.isna(before[c]) and pd.isna(after[c])) and before[c] != after[c]]
        try:
            for category in changed:
                ws.catalog.set_category_target(category, None if pd.isna(after[category]) else float(after[category]), actor=ui.who())
            st.toast(f"Saved {len(changed)} target(s)")
            st.rerun()
        except ColdrecError as exc:
            ui.error(exc)


# Cross-validating every label takes about 40 s at 100,000 items: a large workspace asks first.
if labelling.review_runs_automatically(ws) or st.toggle(
    "Estimate the thresholds from your labels", key="estimate-targets",
    help="Cross-validates every label: about 40 s at 100,000 items on 2 cores, so it runs when you ask.",
):
    targets_editor()
else:
    st.caption("Switch on to see each category's confidence threshold and coverage and to set target precisions.")

st.subheader("Model")
stats = ws.catalog.stats()
coverage = ws.vectors.embedding_coverage()
enc = ws.encoder
a, b, c, d = st.columns(4)
a.metric("Device", enc.device)
b.metric("Dimension", enc.dim)
c.metric("Items embedded", f"{coverage['embedded']:,} / {coverage['items']:,}")
d.metric("Cached vectors", f"{stats['cached_vectors']:,}")
# Only what this backend has: USE and the pair have no pooling or token limit to show.
details = [f"pooling {enc.pooling}" if getattr(enc, "pooling", None) else "",
           f"max length {enc.max_length} tokens" if getattr(enc, "max_length", None) else ""]
st.caption(" · ".join([f"Model {ui.md_escape(enc.name)}", *filter(None, details)]))
ui.model_choice(ws)
st.dataframe(ws.vectors.embedding_counts(), hide_index=True)
missing = coverage["items"] - coverage["embedded"]
if missing:
    st.warning(f"{missing:,} items have no vector for this model yet (the model changed, or they were never embedded).")
if st.button("Embed all items with this model", disabled=not missing):
    with st.status("Embedding…", expanded=True) as status:
        ws.predictor.embed_all(progress=ui.progress_callback("Embedding"))
        status.update(label="All items embedded", state="complete")
    st.rerun()

# == Improve the model on your labels (issue 13: coldrec/finetune.py, coldrec/jobs.py) ========
from coldrec import finetune, versions  # noqa: E402 - this block is self-contained
from coldrec.errors import ColdrecError  # noqa: E402

st.subheader("Improve the model on your labels")
st.caption(
    "Fine-tunes the encoder on your labels in the background (you can leave this page): 20% of each "
    "category's labels are held out, the model trains on the rest, and the dashboard switches to the new "
    "version only if it predicts the held-out labels better by a paired test (exact McNemar on the labels "
    "only one of the two models gets right, one-sided p below 0.05). Earlier versions are kept; switch back any time. "
    "Measured so far (BENCHMARKS.md): it helped on the demo catalog (+2 points on 96 held-out labels) and on Flipkart "
    "titles at 16 labels per category (+1.5 macro-F1), not on Flipkart titles with descriptions, where a CPU fit of "
    "up to 4 minutes is too short. "
    "The held-out check decides for your data."
)
jobs = ui.background_jobs()
ready = finetune.readiness(ws)


def _start_finetune(method: str, minutes: float) -> None:
    who = ui.who()  # read here: the job runs on another thread, outside this session
    ws.access.require(who, "model")  # refused here, not minutes later in the job
    jobs.start(
        "Improve the model on your labels",
        lambda job: finetune.improve_model(ws, method=method, max_minutes=minutes, progress=job.progress, cancelled=job.cancelled,
                                           actor=who),
        cancelled_errors=(finetune.Cancelled,),
    )


def _job_panel() -> None:
    status = jobs.status()
    if status is None:
        return
    if status.running:
        fraction = status.done / status.total if status.total else 0.0
        eta = f" · about {status.eta_s / 60:.1f} min left in this step" if status.eta_s is not None else ""
        st.progress(min(fraction, 1.0), text=f"{ui.md_escape(status.phase)}: {status.done:,} / {status.total:,}")
        cap = " · training ends at the time cap if that comes first" if status.phase == "training" else ""
        st.caption(f"Elapsed {status.elapsed_s / 60:.1f} min{eta}{cap}" + (" · cancelling…" if status.cancel_requested else ""))
        if st.button("Cancel fine-tuning", key="finetune-cancel", disabled=status.cancel_requested):
            jobs.cancel()
            st.rerun()
        if st.session_state.get("_finetune_seen_running") is None:
            st.session_state["_finetune_seen_running"] = True
        return
    if st.session_state.pop("_finetune_seen_running", None):
        st.rerun(scope="app")  # the model may have changed: redraw the whole page
    if status.state == "done":
        card = status.result
        verdict = ("better: the dashboard now uses it" if card["better"]
                   else "not shown to be better: the dashboard kept the previous model")
        capped = " (stopped at the time cap)" if card.get("capped") else ""
        st.success(
            f"Version {ui.md_escape(card['name'])}: held-out accuracy {card['accuracy_before']:.1%} → "
            f"{card['accuracy_after']:.1%} on {card['held_out']} labels, {verdict} "
            f"({card['steps']} training steps in {card['train_seconds'] / 60:.1f} min{capped})."
        )
        test = finetune.comparison_text(card)
        if test:
            st.caption(ui.md_escape(test[0].upper() + test[1:] + "."))
    elif status.state == "cancelled":
        st.info("Fine-tuning was cancelled; the model in use did not change.")
    else:
        ui.error(f"Fine-tuning failed: {status.error}")


running = bool(jobs.status() and jobs.status().running)
st.fragment(run_every=2.0 if running else None)(_job_panel)()
if not ready["ready"]:
    st.info(f"Not offered yet: {ui.md_escape(ready['reason'])}.")
else:
    left, right = st.columns([3, 1])
    minutes = left.number_input(
        "Stop training after (minutes)", 1.0, 240.0, float(finetune.CPU_MAX_MINUTES), step=1.0,
        help=f"{ready['labels']:,} labels, {ready['held_out']} held out to check the result",
    )
    if right.button("Improve the model", type="primary", disabled=running):
        try:
            _start_finetune(finetune.DEFAULT_METHOD, float(minutes))
        except ColdrecError as exc:
            ui.error(exc)
        st.rerun()

versions = versions.list_versions(versions.models_dir(ws.settings.db_path))
if versions:
    active = ws.models.active_version()
    table = pd.DataFrame(versions).reindex(columns=[
        "name", "method", "labels_used", "accuracy_before", "accuracy_after", "gained", "lost", "p_value", "better", "date"])
    table.insert(1, "active", table["name"] == active)
    st.dataframe(table, hide_index=True, width="stretch")
    choices = ["base model"] + [v["name"] for v in versions]
    pick = st.selectbox("Use version", choices, index=choices.index(active) if active in choices else 0)
    if st.button("Switch model", disabled=running or pick == (active or "base model")):
        try:
            finetune.switch_version(ws, None if pick == "base model" else pick, actor=ui.who())
            st.toast(f"Now using {ui.md_escape(pick)}")
        except ColdrecError as exc:
            ui.error(exc)
        st.rerun()
# == end of "Improve the model on your labels" ===============================================
