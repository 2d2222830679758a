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
cats = ws.store.categories().set_index("name")
edited = st.data_editor(
    cats.fillna(""), key="categories-editor", width="stretch", disabled=["name"],
    column_config={"description": st.column_config.TextColumn("description", width="large"),
                   "path": st.column_config.TextColumn("path (parents > name)", width="medium")},
)
with st.expander("Add a category"):
    ui.category_form(ws, key="categories-add")
with st.expander("Import a catalog (products you already sell, with or without a category column)"):
    ui.catalog_import(ws, key="categories-catalog")
if st.button("Save category descriptions", disabled=cats.empty):
    changed = edited[(edited.fillna("") != cats.fillna("")).any(axis=1)]
    try:
        if len(changed):
            ws.import_categories(changed.reset_index(), "category table")
        st.toast(f"Saved {len(changed)} categor{'y' if len(changed) == 1 else 'ies'}")
    except ColdrecError as exc:
        ui.error(exc)

with st.expander("Import categories from a CSV (name, description, optional path)"):
    uploaded = st.file_uploader("Categories file", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"])
    if uploaded is not None and st.button("Import"):
        try:
            count = ws.import_categories(read_table(uploaded.getvalue(), uploaded.name), uploaded.name)
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
                    count = labelling.import_taxonomy(ws, tax_file.getvalue(), tax_file.name, include, int(depth))
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
table = labelling.abstain_thresholds(ws).set_index("category")
numeric = ["target_precision", "threshold", "estimated_precision", "precision_lower_bound", "coverage"]
table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")  # blanks, not "None"
edited_targets = st.data_editor(
    table,
    key="targets-editor",
    disabled=[c for c in table.columns if c != "target_precision"],
    column_config={
        "target_precision": st.column_config.NumberColumn("target precision", min_value=0.5, max_value=1.0, step=0.01, format="%.2f"),
        "threshold": st.column_config.NumberColumn("confidence ≥", format="%.2f"),
        "estimated_precision": st.column_config.NumberColumn("est. precision", format="%.2f"),
        "precision_lower_bound": st.column_config.NumberColumn("precision at least (90% sure)", format="%.2f"),
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
            ws.store.set_category_target(category, None if pd.isna(after[category]) else float(after[category]))
        st.toast(f"Saved {len(changed)} target(s)")
        st.rerun()
    except ColdrecError as exc:
        ui.error(exc)

st.subheader("Model")
coverage = ws.embedding_coverage()
enc = ws.encoder
a, b, c, d = st.columns(4)
a.metric("Device", enc.device)
b.metric("Dimension", enc.dim)
c.metric("Items embedded", f"{coverage['embedded']:,} / {coverage['items']:,}")
d.metric("Cached vectors", f"{ws.store.stats()['cached_vectors']:,}")
st.caption(f"Model {ui.md_escape(enc.name)} · pooling {getattr(enc, 'pooling', '?')} · max length {getattr(enc, 'max_length', '?')} tokens")
st.dataframe(ws.store.embedding_counts(), hide_index=True)
missing = coverage["items"] - coverage["embedded"]
if missing:
    st.warning(f"{missing:,} items have no vector for this model yet (the model changed, or they were never embedded).")
if st.button("Embed all items with this model", disabled=not missing):
    with st.status("Embedding…", expanded=True) as status:
        ws.embed_all(progress=ui.progress_callback("Embedding"))
        status.update(label="All items embedded", state="complete")
    st.rerun()
