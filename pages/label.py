"""Label: few-shot examples by category or by upload batch, in an editable table; history,
undo, label files, and a review of likely mistakes."""

import streamlit as st

from coldrec import charts, labelling, ui
from coldrec.errors import ColdrecError, LabelConflict
from coldrec.export import to_csv_bytes

ws = ui.workspace()
st.title("Label")
st.caption("Every saved label is a few-shot example: predictions on the other pages use it right away.")

categories = ws.catalog.category_names()
if not categories:
    ui.start_here(ws, "Labels name categories, and there are none yet. Load the demo, import a catalog or a "
                  "list of categories, or add the first one here:", key="label-start")
    st.stop()
left, right = st.columns([3, 1])
with right:
    st.subheader("Examples per category", anchor=False)
    counts = ws.labels.counts()
    st.plotly_chart(charts.example_counts(counts), width="stretch", config={"displayModeBar": False})
    st.subheader("New category", anchor=False)
    ui.category_form(ws, key="new-category")

if st.button("Undo my last action", help="Reverts your newest labelling action (a save, an accept, a bulk label)."):
    ui.undo_last_action(ws)

with st.expander("Label history: who labelled what, and when (newest first)"):
    history = ws.labels.history(500)
    ui.table(history.rename(columns={"category": "label"}))

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



@st.fragment
def likely_mistakes() -> None:
    """Labels the model (cross-validated) and the neighbours both dispute, with one-click fix or keep.
    The check runs once and is kept: fixing one reruns this panel alone, without checking again."""
    ui.show_flash()
    # Cross-validating takes about 40 s with 100,000 items or tens of thousands of labels: on request there.
    if not st.toggle("Check the labels", value=labelling.review_runs_automatically(ws), key="check-labels",
                     help="Cross-validates every label: seconds in a small workspace, about 40 s at 100,000 items on 2 cores."):
        return
    again = st.button("Check again", help="The check ran once; run it again to include labels saved since.")
    if again or "label_issues" not in st.session_state:
        st.session_state["label_issues"] = labelling.label_issues(ws)
    issues = st.session_state["label_issues"]
    done: set[str] = st.session_state.setdefault("dismissed_issues", set())
    issues = issues[~issues["item_id"].isin(done)]
    if issues.empty:
        st.caption("No label looks wrong right now.")
    else:
        st.caption(f"{len(issues):,} label(s) disputed by both the model (without that label) and the nearest "
                   f"labelled items, most suspect first" + (": the first 10 are shown." if len(issues) > 10 else "."))
    for row in issues.head(10).itertuples(index=False):
        a, b, c = st.columns([3, 2, 1], vertical_alignment="center")
        a.markdown(f"**{ui.md_escape(row.title)}** — labelled {ui.md_escape(row.given)}")
        # Callbacks run before this panel reruns: the fixed row is gone in the same run.
        b.button(f"Change to {ui.md_escape(row.suggested)}", key=f"fix-{row.item_id}", width="stretch",
                 on_click=_fix, args=(row.item_id, row.suggested))
        c.button("Keep", key=f"keep-{row.item_id}", width="stretch", on_click=done.add, args=(row.item_id,))


def _fix(item_id: str, category: str) -> None:
    try:
        ws.labels.label(item_id, category, who=ui.who(), source="manual")
    except ColdrecError as exc:
        ui.flash_error(exc)
        return
    st.session_state.setdefault("dismissed_issues", set()).add(item_id)
    ui.flash(f"Changed to {ui.md_escape(category)}")


with st.expander("Likely mistakes: labels that the model and the neighbours both dispute"):
    likely_mistakes()

with left:
    mode = st.radio("Show", ["Upload batch", "Category"], horizontal=True)
    if mode == "Category":
        chosen = st.selectbox("Category", categories)
        subset = ws.catalog.find(category=chosen)
    else:
        batches = ws.catalog.batch_names()
        if not batches:
            st.info("No uploads yet: upload products on the Upload & predict page.")
            st.stop()
        chosen = st.selectbox("Batch", batches)
        only_unlabelled = st.toggle("Only unlabelled", value=True)
        subset = ws.catalog.find(source="upload", batch=chosen, unlabelled=only_unlabelled)
    if subset.empty:
        st.info("Nothing to label here.")
        st.stop()
    if len(subset) > 1_000:  # an editable grid of tens of thousands of rows is unusable and slow
        st.caption(f"Showing the first 1,000 of {len(subset):,} items: label them (or use Label next) to see more.")
        subset = subset.head(1_000)
    frame = ui.shorten(subset.set_index("item_id")[["title", "category", "description"]].fillna(""), limit=200)
    frame = frame.rename(columns={"category": "label"})
    frame["label"], options = ui.label_editor_values(frame["label"], categories)  # never a grey "None"
    seen = ws.labels.version()  # a label someone else saves after this is shown, not overwritten
    edited = st.data_editor(
        frame,
        # Edits are kept by row position: a new key after each save stops them landing on other rows.
        key=f"editor-{mode}-{chosen}-{seen}",
        disabled=["title", "description"],
        column_config={
            "_index": st.column_config.TextColumn("id", width="small"),
            "label": st.column_config.SelectboxColumn("your label", options=options, required=False, width="medium"),
            "title": st.column_config.TextColumn("title", width="large"),
            "description": st.column_config.TextColumn("description", width="medium"),
        },
        width="stretch",
    )
    if st.button("Save labels", type="primary"):
        try:
            changed = ws.labels.save_label_edits(ui.label_editor_result(frame["label"]), ui.label_editor_result(edited["label"]),
                                          who=ui.who(), since=seen if ws.access.sign_in else None)
        except LabelConflict as exc:
            ui.error(f"{exc}. Nothing was saved: the table now shows their labels; make your changes again.")
            st.stop()
        except ColdrecError as exc:
            ui.error(exc)
            st.stop()
        st.toast(f"Saved {changed} label(s)" if changed else "No changes to save")
        if changed:
            st.rerun()
