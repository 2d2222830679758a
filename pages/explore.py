"""Explore: a 2-D map of catalog and uploads, bulk labelling from a box or lasso selection,
neighbours of a picked item, and DuckDB analytics (health, drift, clusters, duplicates, SQL)."""

import streamlit as st

from coldrec.errors import ColdrecError
from coldrec import analytics, charts, explore, labelling, ui
from coldrec.projection import available_methods
from coldrec.sqlbox import SQLRefused, run_readonly

ws = ui.workspace()
st.title("Explore")
model_name = ws.encoder.name
PERCENT = {
    name: st.column_config.NumberColumn(label, format="percent")
    for name, label in [("confidence", "confidence"), ("far_share", "far from catalog"), ("probability", "probability"),
                        ("unsure_share", "unsure"), ("mean_confidence", "mean confidence")]
}

COLOURS = {
    "predicted category": "predicted",
    "label": "label",
    "confidence": "confidence",
    "labelled or not": "status",
    "source / batch": "origin",
}
a, b, c = st.columns(3)
method = a.selectbox("Map", available_methods(), format_func=str.upper, help="Computed once per model and item set, then stored.")
colour = b.selectbox("Colour by", list(COLOURS))
max_points = c.select_slider("Points drawn at most", [5_000, 10_000, 20_000, 50_000], value=20_000)

with st.spinner(f"Computing the {method.upper()} map (stored for next time)…"):
    try:
        frame = explore.map_frame(ws, method)
    except ColdrecError as exc:
        ui.error(exc)
        st.stop()
if frame.empty:
    st.info("No items yet: load a catalog (`python -m coldrec init`) or upload products.")
    st.stop()

picked = st.session_state.get("explore_picked")
neighbours = explore.neighbours_of(ws, picked) if picked in set(frame["item_id"]) else None
highlight = tuple([picked] + neighbours["item_id"].tolist()) if neighbours is not None else ()
figure, drawn, total = explore.map_figure(ws, method, COLOURS[colour], highlight, max_points)
if drawn < total:
    st.caption(f"Showing a sample of {drawn:,} of {total:,} items (raise the limit above to draw more).")
event = st.plotly_chart(figure, key="map", on_select="rerun", selection_mode=("points", "box", "lasso"), width="stretch")
points = ((event or {}).get("selection") or {}).get("points") or []
known = set(frame["item_id"])
selected_ids = [i for i in dict.fromkeys(str(p["customdata"][0]) for p in points if p.get("customdata")) if i in known]

st.subheader(f"Selection: {len(selected_ids):,} item(s)")
if not selected_ids:
    st.caption("Drag a box or lasso on the map (or click a point) to select items.")
else:
    chosen = frame.set_index("item_id").loc[selected_ids, ["title", "source", "label", "predicted", "confidence"]]
    st.dataframe(ui.shorten(chosen.reset_index()), hide_index=True, width="stretch", column_config=PERCENT)
    already = int((chosen["label"] != "(not labelled)").sum())
    left, mid, right = st.columns([2, 1, 2], vertical_alignment="bottom")
    category = left.selectbox("Label all selected as", ws.store.category_names(), index=None, placeholder="Choose a category")
    # Labels are people's work: a lasso over a crowded area must not overwrite them by default.
    relabel = left.checkbox(f"Also relabel the {already} already labelled", value=False, disabled=not already)
    targets = selected_ids if relabel else [i for i in selected_ids if chosen.loc[i, "label"] == "(not labelled)"]
    if mid.button(f"Label {len(targets)} item(s)", type="primary", disabled=category is None or not targets):
        count = labelling.bulk_label(ws, targets, category, who=ui.who())
        st.toast(f"Labelled {count} item(s) as {ui.md_escape(category)} — undo on Label or Label next")
        st.rerun()
    # Clicking one point shows its neighbours at once; with more, pick one.
    pick = right.selectbox("Show neighbours of", selected_ids, index=0 if len(selected_ids) == 1 else None, format_func=lambda i: f"{i} · {str(chosen.loc[i, 'title'])[:60]}")
    if pick and pick != picked:
        st.session_state["explore_picked"] = pick
        st.rerun()
if neighbours is not None:
    st.caption(f"Nearest neighbours of {ui.md_escape(picked)} (outlined on the map)")
    st.dataframe(ui.shorten(neighbours), hide_index=True, width="stretch")
    if st.button("Clear highlight"):
        st.session_state.pop("explore_picked", None)
        st.rerun()

st.divider()
st.header("Analytics", anchor=False)
summary, health, drift_tab, clusters_tab, dupes_tab, sql_tab = st.tabs(
    ["Per category", "Category health", "Drift", "Emerging clusters", "Near-duplicates", "SQL"]
)
items, vectors = ws.item_vectors()
ids = items["item_id"].tolist()

with summary:
    st.dataframe(analytics.category_summary(ws.store, model_name), hide_index=True, width="stretch", column_config=PERCENT)
    hist = analytics.confidence_histogram(ws.store, model_name)
    if not hist.empty:
        st.plotly_chart(charts.confidence_histogram_chart(hist), width="stretch")
    unsure = analytics.unsure_by_batch(ws.store, model_name)
    if not unsure.empty:
        st.plotly_chart(charts.unsure_share_chart(unsure), width="stretch")
    st.caption("Predictions counted here are the stored ones of each upload batch (made at upload time).")

with health:
    st.caption("Spread: how scattered a category's items are. Nearest category and centroid cosine: the pair most easily confused.")
    st.dataframe(explore.category_health(ws), hide_index=True, width="stretch")

with drift_tab:
    batches = ws.store.batches()["batch"].tolist()
    if not batches:
        st.info("Upload a batch to compare it with the catalog.")
    else:
        batch = st.selectbox("Upload batch", batches, key="drift-batch")
        far_below = st.slider("Far from the catalog: best similarity below", 0.2, 0.9, 0.5, 0.05)
        report = explore.drift(ws, batch, far_below)
        st.dataframe(
            report.by_category, hide_index=True, width="stretch",
            column_config={**PERCENT, "batch_items": "in batch", "catalog_items": "in catalog",
                           "centroid_distance": st.column_config.NumberColumn("centroid distance", format="%.3f")},
        )
        st.subheader(f"Looks like a new category: {len(report.new_category_candidates)} item(s)", anchor=False)
        st.caption("Items whose best match in the catalog is below the similarity above, most isolated first.")
        st.dataframe(ui.shorten(report.new_category_candidates), hide_index=True, width="stretch", column_config=PERCENT)

with clusters_tab:
    unlabelled_uploads = items[(items["source"] == "upload") & items["category"].isna()]
    if len(unlabelled_uploads) < 3:
        st.info("Clusters need at least 3 unlabelled uploaded items.")
    else:
        k = st.number_input("Clusters (0 = choose automatically)", 0, min(30, len(unlabelled_uploads)), 0)
        report = explore.emerging_clusters(ws, k or None)
        st.dataframe(report.clusters, hide_index=True, width="stretch")
        cluster = st.selectbox(
            "Make a category from cluster", report.clusters["cluster"].tolist(), index=None, placeholder="Choose a cluster"
        )
        if cluster is not None:
            members = report.members[report.members["cluster"] == cluster]
            titles = items.set_index("item_id")["title"]
            preview = members.assign(title=members["item_id"].map(titles))[["item_id", "title", "distance"]]
            st.caption("Untick the items that do not belong; the ticked ones get the new category.")
            picked_members = st.data_editor(
                ui.shorten(preview).assign(include=True), hide_index=True, width="stretch",
                disabled=["item_id", "title", "distance"], key=f"cluster-members-{cluster}-{ws.store.label_version()}",
            )
            with st.form("cluster-to-category", clear_on_submit=True):
                name = st.text_input("New category name", max_chars=100)
                description = st.text_input("Description (helps zero-shot)", max_chars=300)
                if st.form_submit_button("Create category and label the ticked items"):
                    chosen_members = picked_members.loc[picked_members["include"], "item_id"].tolist()
                    try:
                        created = explore.cluster_to_category(ws, name, chosen_members, who=ui.who(), description=description)
                        st.toast(f"Created {ui.md_escape(created)} with {len(chosen_members)} labelled item(s)")
                        st.rerun()
                    except ColdrecError as exc:
                        ui.error(exc)

with dupes_tab:
    threshold = st.slider("Similarity at least", explore.NEAR_DUPLICATE_FLOOR, 1.00, 0.95, 0.01)
    # Exact all-pairs search: seconds at 10k items, ~20 s at 50k, so it runs on request (then is kept).
    if st.toggle("Find near-duplicates", value=len(ids) <= 10_000):
        pairs = explore.near_duplicates(ws, threshold)
        st.caption(f"{len(pairs):,} pair(s) at similarity ≥ {threshold:.2f} (at most 500 shown)")
        st.dataframe(ui.shorten(pairs, ("title_a", "title_b")), hide_index=True, width="stretch")

with sql_tab:
    st.caption(
        "Read-only SQL over the views **items**, **labels**, **predictions** and **categories**: one SELECT, "
        "at most 1,000 rows, 5 seconds. No writes, files or extensions."
    )
    with st.form("sql"):
        sql = st.text_area("SQL", "SELECT category, count(*) AS items FROM labels GROUP BY category ORDER BY items DESC", height=120)
        if st.form_submit_button("Run"):
            try:
                result = run_readonly(ws.store, model_name, sql)
                st.dataframe(result.frame, hide_index=True, width="stretch")
                st.caption(f"{len(result.frame):,} row(s){' (truncated)' if result.truncated else ''} in {result.elapsed_s:.2f} s")
            except SQLRefused as exc:
                ui.error(exc)
