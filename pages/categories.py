"""Categories & model: edit categories, import them from a CSV, see and refresh the model's cache."""

import streamlit as st

from coldrec import ui
from coldrec.ingest import IngestError, read_table

ws = ui.workspace()
st.title("Categories & model")

st.subheader("Categories")
st.caption("The name and description are what zero-shot prediction reads: a clear description helps.")
cats = ws.store.categories().set_index("name")
edited = st.data_editor(cats, key="categories-editor", width="stretch", disabled=["name"])
if st.button("Save category descriptions"):
    changed = edited[(edited.fillna("") != cats.fillna("")).any(axis=1)]
    try:
        if len(changed):
            ws.import_categories(changed.reset_index(), "category table")
        st.toast(f"Saved {len(changed)} categor{'y' if len(changed) == 1 else 'ies'}")
    except IngestError as exc:
        ui.error(exc)

with st.expander("Import categories from a CSV (name, description, optional path)"):
    uploaded = st.file_uploader("Categories file", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"])
    if uploaded is not None and st.button("Import"):
        try:
            count = ws.import_categories(read_table(uploaded.getvalue(), uploaded.name), uploaded.name)
            st.success(f"Imported {count} categories")
        except IngestError as exc:
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
