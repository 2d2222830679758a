"""Label: few-shot examples by category or by upload batch, in an editable table; history,
undo, label files, and a review of likely mistakes."""

import streamlit as st

from coldrec.errors import ColdrecError
from coldrec import charts, labelling, ui
from coldrec.export import to_csv_bytes

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
            except ColdrecError as exc:
                ui.error(exc)

if st.button("Undo my last action", help="Reverts your newest labelling action (a save, an accept, a bulk label)."):
    ui.undo_last_action(ws)

with st.expander("Label history: who labelled what, and when (newest first)"):
    st.dataframe(ui.shorten(ws.store.label_history().head(500), ("item_id", "category", "who")), hide_index=True)

with st.expander("Export or import labels (CSV)"):
    st.download_button(
        "Download current labels",
        lambda: to_csv_bytes(labelling.export_labels(ws)),
        file_name="labels.csv",
        mime="text/csv",
        on_click="ignore",
    )
    labels_file = st.file_uploader("Labels file (item_id, category)", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"])
    if labels_file is not None and st.button("Import labels"):
        try:
            changed = labelling.import_labels(ws, labels_file.getvalue(), labels_file.name, who=ui.who())
            st.success(f"Imported: {changed} label(s) changed")
        except ColdrecError as exc:
            ui.error(exc)

with st.expander("Likely mistakes: labels that the model and the neighbours both dispute"):
    # Cross-validating every label takes seconds with tens of thousands of them: on request there.
    if st.toggle("Check the labels", value=ws.store.stats()["labelled_items"] <= 5_000, key="check-labels"):
        issues = labelling.label_issues(ws)
        dismissed: set[str] = st.session_state.setdefault("dismissed_issues", set())
        issues = issues[~issues["item_id"].isin(dismissed)]
        if issues.empty:
            st.caption("No label looks wrong right now.")
        for row in issues.head(10).itertuples(index=False):
            a, b, c = st.columns([4, 1, 1], vertical_alignment="center")
            a.markdown(
                f"**{ui.md_escape(row.title)}** — labelled {ui.md_escape(row.given)}, "
                f"looks like {ui.md_escape(row.suggested)}"
            )
            if b.button(f"Change to {ui.md_escape(row.suggested)}", key=f"fix-{row.item_id}"):
                ws.label(row.item_id, row.suggested, who=ui.who(), source="manual")
                st.rerun()
            if c.button("Keep", key=f"keep-{row.item_id}"):
                dismissed.add(row.item_id)
                st.rerun()

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
    if len(subset) > 1_000:  # an editable grid of tens of thousands of rows is unusable and slow
        st.caption(f"Showing the first 1,000 of {len(subset):,} items: label them (or use Label next) to see more.")
        subset = subset.head(1_000)
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
