"""Label: few-shot examples by category or by upload batch, in an editable table."""

import streamlit as st

from coldrec import charts, ui

ws = ui.workspace()
st.title("Label")
st.caption("Every saved label is a few-shot example: predictions on the other pages use it right away.")

categories = ws.store.category_names()
items = ws.store.items()
left, right = st.columns([3, 1])
with right:
    st.subheader("Examples per category")
    counts = ws.store.label_counts()
    st.plotly_chart(charts.example_counts(counts), width="stretch", config={"displayModeBar": False})
    with st.form("new-category", clear_on_submit=True):
        st.subheader("New category")
        name = st.text_input("Name", max_chars=100)
        description = st.text_input("One-line description", max_chars=300)
        path = st.text_input("Parent path (optional)", placeholder="Home & Kitchen > Kitchen", max_chars=300)
        if st.form_submit_button("Add category"):
            try:
                st.toast(f"Added category {ui.md_escape(ws.add_category(name, description, path))}")
                st.rerun()
            except ValueError as exc:
                ui.error(exc)

with st.expander("Label history (newest first)"):
    st.dataframe(ui.shorten(ws.store.label_history().head(500), ("item_id", "category", "who")), hide_index=True)

with left:
    mode = st.radio("Show", ["Upload batch", "Category"], horizontal=True)
    if mode == "Category":
        chosen = st.selectbox("Category", categories)
        subset = items[items["category"] == chosen]
    else:
        batches = ws.store.batches()["batch"].tolist()
        if not batches:
            st.info("No uploads yet: upload products on the Upload & predict page.")
            st.stop()
        chosen = st.selectbox("Batch", batches)
        only_unlabelled = st.toggle("Only unlabelled", value=True)
        subset = items[items["batch"] == chosen]
        if only_unlabelled:
            subset = subset[subset["category"].isna()]
    if subset.empty:
        st.info("Nothing to label here.")
        st.stop()
    frame = ui.shorten(subset.set_index("item_id")[["category", "title", "description"]].fillna(""), limit=90)
    frame = frame.rename(columns={"category": "label"})
    edited = st.data_editor(
        frame,
        # Edits are kept by row position: a new key after each save stops them landing on other rows.
        key=f"editor-{mode}-{chosen}-{ws.store.label_version()}",
        disabled=["title", "description"],
        column_config={
            "label": st.column_config.SelectboxColumn("label", options=categories, required=False, width="medium"),
            "title": st.column_config.TextColumn("title", width="large"),
            "description": st.column_config.TextColumn("description", width="medium"),
        },
        width="stretch",
    )
    if st.button("Save labels", type="primary"):
        changed = ws.save_label_edits(frame["label"], edited["label"], who=ui.who())
        st.toast(f"Saved {changed} label(s)" if changed else "No changes to save")
        if changed:
            st.rerun()
