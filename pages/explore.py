"""Explore: a 2-D map of catalog and uploads, bulk labelling from a box or lasso selection,
neighbours of a picked item, and DuckDB analytics (health, drift, clusters, duplicates, SQL)."""

import streamlit as st

from coldrec.errors import ColdrecError, NotReadyError
from coldrec import charts, explore, labelling, ui
from coldrec.projection import available_methods
from coldrec.sqlbox import SQLRefused, result_summary

ws = ui.workspace()
st.title("Explore")
COLOURS = {
    "predicted category": "predicted",
    "label": "label",
    "confidence": "confidence",
    "labelled or not": "status",
    "source / batch": "origin",
}
SHOWN = 1_000  # selected rows listed at most (the selection itself can be the whole map)
ready = ws.readiness()
if not ready["catalog_items"] + ready["uploaded_items"]:
    ui.start_here(
        ws, "Nothing to map yet: the map shows your catalog and uploads. Load the demo, import a catalog, "
        "or add categories and upload new products on **Upload & predict**.", key="explore-start",
    )
    st.stop()
if not ready["categories"]:
    st.info("No categories yet, so nothing is predicted: the map is coloured by source. "
            "Add or import categories on **Categories & model**.")
    ui.page_link("pages/categories.py", "Categories & model", icon="⚙️")

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

picked = st.session_state.get("explore_picked")
neighbours = explore.neighbours_of(ws, picked) if picked and ws.catalog.item_positions([picked])[0] >= 0 else None
highlight = tuple([picked] + neighbours["item_id"].tolist()) if neighbours is not None else ()
figure, drawn, total = explore.map_figure(
    ws, method, COLOURS[colour] if ready["categories"] or colour != "predicted category" else "origin", highlight, max_points
)
if drawn < total:
    st.caption(f"All {total:,} items are drawn as the grey density; {drawn:,} of them, sampled, as coloured points "
               "(raise the limit above to draw more). A box or lasso selects every item inside it, drawn or not.")
event = st.plotly_chart(figure, key="map", on_select="rerun", selection_mode=("points", "box", "lasso"), width="stretch")
selected_ids = explore.selected_items(ws, method, (event or {}).get("selection") or {})

st.subheader(f"Selection: {len(selected_ids):,} item(s)")
if not selected_ids:
    st.caption("Drag a box or lasso on the map (or click a point) to select items.")
else:
    chosen = explore.selection_table(ws, method, selected_ids)
    if len(chosen) > SHOWN:
        st.caption(f"The first {SHOWN:,} of the {len(chosen):,} selected items:")
    ui.table(chosen.head(SHOWN))
    unlabelled = chosen.loc[chosen["label"] == "(not labelled)", "item_id"].tolist()
    already = len(chosen) - len(unlabelled)
    left, mid, right = st.columns([2, 1, 2], vertical_alignment="bottom")
    category = left.selectbox("Label all selected as", ws.catalog.category_names(), index=None, placeholder="Choose a category")
    # Labels are people's work: a lasso over a crowded area must not overwrite them by default.
    relabel = left.checkbox(f"Also relabel the {already:,} already labelled", value=False, disabled=not already)
    targets = chosen["item_id"].tolist() if relabel else unlabelled
    too_many = len(targets) > labelling.BULK_LABEL_MAX
    if too_many:
        left.warning(f"{len(targets):,} items is more than {labelling.BULK_LABEL_MAX:,} at once: draw a smaller "
                     "box or lasso (a label should be a judgement, not a sweep).")
    if mid.button(f"Label {len(targets):,} item(s)", type="primary", disabled=category is None or not targets or too_many):
        try:
            count = labelling.bulk_label(ws, targets, category, who=ui.who())
        except ColdrecError as exc:
            ui.error(exc)
        else:
            st.toast(f"Labelled {count:,} item(s) as {ui.md_escape(category)} — undo on Label or Label next")
            st.rerun()
    # Clicking one point shows its neighbours at once; with more, pick one (from the first shown).
    options = chosen["item_id"].head(SHOWN).tolist()
    titles = dict(zip(chosen["item_id"].head(SHOWN), chosen["title"].head(SHOWN)))
    pick = right.selectbox("Show neighbours of", options, index=0 if len(options) == 1 else None,
                           format_func=lambda i: str(titles.get(i, i)))
    if pick and pick != picked:
        st.session_state["explore_picked"] = pick
        st.rerun()
if neighbours is not None:
    picked_title = explore.item_details(ws, picked)["title"]
    st.caption(f"Nearest neighbours of {ui.md_escape(picked_title)} ({ui.md_escape(picked)}; outlined on the map)")
    ui.table(neighbours)
    if st.button("Clear highlight"):
        st.session_state.pop("explore_picked", None)
        st.rerun()

st.divider()
st.header("Analytics", anchor=False)
summary, health, drift_tab, clusters_tab, dupes_tab, sql_tab = st.tabs(
    ["Per category", "Category health", "Drift", "Emerging clusters", "Near-duplicates", "SQL"]
)
items = ws.catalog.items()

with summary:
    st.caption("Predictions are the current model's (every label counts at once); labelled items count under their label.")
    ui.table(explore.category_summary(ws))
    colours = charts.category_colours(ws.catalog.category_names())
    hist = explore.confidence_histogram(ws)
    if not hist.empty:
        st.plotly_chart(charts.confidence_histogram_chart(hist, colours), width="stretch")
    unsure = explore.unsure_by_batch(ws)
    if not unsure.empty:
        st.plotly_chart(charts.unsure_share_chart(unsure), width="stretch")

with health:
    st.caption("Spread: how scattered a category's items are. Nearest category and centroid cosine: the pair most easily confused.")
    health_table = explore.category_health(ws)
    if health_table.empty:
        st.info("No labelled items yet: health compares the labelled items of each category.")
    else:
        ui.table(health_table)

with drift_tab:
    batches = ws.catalog.batch_names()
    if not batches:
        st.info("Drift compares an upload batch with the catalog: upload one on **Upload & predict**.")
    else:
        batch = st.selectbox("Upload batch", batches, key="drift-batch")
        rule = explore.far_from_catalog(ws)
        far_below = st.slider("Far from the catalog: best similarity below", 0.0, 1.0, rule if rule is not None else 0.5, 0.01,
                              help="The default is this catalog's own spread: 95% of catalog items have a look-alike "
                                   "in the catalog at least this similar, so an item below it is farther from the "
                                   "catalog than almost any catalog item is from the rest.")
        report = explore.drift(ws, batch, far_below)
        if report is None:
            st.info("Drift compares a batch with your catalog, and there is no catalog yet: import one "
                    "(Overview or Categories & model, “Import a catalog”).")
        else:
            ui.table(report.by_category, column_config={
                "centroid_distance": st.column_config.NumberColumn("centroid distance", format="%.3f")})
            st.subheader(f"Looks like a new category: {len(report.new_category_candidates)} item(s)", anchor=False)
            st.caption("Items whose best match in the catalog is below the similarity above, most isolated first.")
            ui.table(report.new_category_candidates)

with clusters_tab:
    unlabelled_uploads = items[(items["source"] == "upload") & items["category"].isna()]
    if len(unlabelled_uploads) < 3:
        st.info(f"Clusters group the unlabelled uploads, and there are {len(unlabelled_uploads)}: "
                "at least 3 are needed. Upload new products on **Upload & predict**.")
    else:
        k = st.number_input("Clusters (0 = choose automatically)", 0, min(30, len(unlabelled_uploads)), 0)
        report = explore.emerging_clusters(ws, k or None)
        clusters = explore.cluster_names(report)
        st.caption("Click a row to make a category from that cluster.")
        # Keyed by the label version: after a category is made, clusters are recomputed and
        # renumbered, so the pick is cleared rather than left pointing at another cluster.
        picked_cluster = ui.table(
            clusters[["name", "size", "example_titles"]], on_select="rerun", selection_mode="single-row",
            key=f"cluster-table-{k}-{ws.labels.version()}",
            column_config={"name": st.column_config.TextColumn("cluster (its keywords)", width="medium")},
        )
        rows = picked_cluster.selection.rows if picked_cluster else []
        if rows:
            cluster = int(clusters["cluster"].iloc[rows[0]])
            members = explore.cluster_members(ws, report, cluster)
            st.subheader(f"Cluster “{ui.md_escape(clusters['name'].iloc[rows[0]])}”: {len(members)} item(s)", anchor=False)
            cut = st.slider(
                "Tick the members at least this similar to the cluster's centre (1.00 ticks none)",
                0.0, 1.0, 1.0, 0.01, key=f"cluster-cut-{cluster}",
            )
            st.caption("Tick the items that belong; only the ticked ones get the new category.")
            picked_members = st.data_editor(
                members.assign(include=members["similarity"] >= cut)[["include", "title", "similarity", "item_id"]],
                hide_index=True, width="stretch", disabled=["title", "similarity", "item_id"],
                column_config={"include": st.column_config.CheckboxColumn("include"),
                               "title": st.column_config.TextColumn("title", width="large"),
                               "similarity": st.column_config.NumberColumn("similarity to the centre", format="%.2f"),
                               "item_id": st.column_config.TextColumn("id")},
                key=f"cluster-members-{cluster}-{cut}-{ws.labels.version()}",
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
    # Each item's nearest neighbours from the item index: at once up to 20k items, in the
    # background above (about a minute at 100k), so it runs on request (then is kept).
    if st.toggle("Find near-duplicates", value=len(items) <= 10_000):
        try:
            pairs = explore.near_duplicates(ws, threshold, wait=False)
            st.caption(f"{len(pairs):,} pair(s) at similarity ≥ {threshold:.2f} (at most 500 shown)")
            ui.table(pairs)
        except NotReadyError as exc:
            st.info(str(exc))

with sql_tab:
    st.caption(
        "Read-only SQL over the views **items**, **labels**, **predictions** and **categories**: one SELECT, "
        "at most 1,000 rows, 5 seconds. No writes, files or extensions."
    )
    with st.form("sql"):
        sql = st.text_area("SQL", "SELECT category, count(*) AS items FROM labels GROUP BY category ORDER BY items DESC", height=120)
        if st.form_submit_button("Run"):
            try:
                result = explore.run_sql(ws, sql)
                if len(result.frame.columns) and (len(result.frame) or not result.truncated):
                    st.dataframe(result.frame, hide_index=True, width="stretch")  # the analyst's own columns, as asked
                summary = result_summary(result)
                (st.warning if result.truncated else st.caption)(ui.md_escape(summary))
            except SQLRefused as exc:
                ui.error(exc)
