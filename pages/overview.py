"""Overview: what the workspace holds, where to start, and a box to try a product."""

import streamlit as st

from coldrec import charts, explore, ui

ws = ui.workspace()
st.title("Overview")

ready = ws.readiness()
has_items = ready["catalog_items"] + ready["uploaded_items"] > 0
if not ready["categories"]:
    ui.start_here(
        ws,
        "**Welcome to coldrec.** This database is empty. Load the demo to look around, or bring your own: "
        "a catalog file (with a category column, the categories come with it), or a list of categories "
        "and then new products on **Upload & predict**."
        if not has_items
        else f"{ready['catalog_items'] + ready['uploaded_items']:,} items but no categories yet: predictions "
        "need categories. Import them or add them here.",
        key="overview-start",
    )
    st.stop()

left, right = st.columns([3, 2])
with left:
    if not ready["uploaded_items"]:
        st.info("No new arrivals yet: upload a file of new products to see predictions, then label them.")
        ui.page_link("pages/upload.py", "Upload & predict", icon="📤")
    counts = explore.category_overview(ws)
    if counts.empty or not ready["uploaded_items"]:  # the chart counts new arrivals: none to draw yet
        n, held = ready["categories"], ready["catalog_items"]
        st.caption(f"{n:,} {'category' if n == 1 else 'categories'}, "
                   + (f"{held:,} catalog items: the chart of new arrivals by predicted category comes with the first upload."
                      if held else "no items yet."))
    else:
        st.subheader("New arrivals by predicted category", anchor=False)
        st.caption(
            "Bars: new arrivals labelled, predicted with confidence, and predicted but unsure (the current model). "
            "The number after each category is its catalog size."
        )
        st.plotly_chart(charts.category_overview(counts), width="stretch", config={"displayModeBar": False})
        if ready["unlabelled_items"]:
            ui.page_link("pages/queue.py", f"Label next: {ready['unlabelled_items']:,} items are not labelled yet", icon="⏭️")
with right:
    st.subheader("Try a product", anchor=False)
    text = st.text_area(
        "Title on the first line, description below",
        placeholder="Enamelled cast iron casserole 24cm\nHolds heat for slow cooking; oven safe to 250°C.",
        height=120,
    )
    st.subheader("Latest uploads", anchor=False)
    batches = ws.catalog.batches()
    if batches.empty:
        st.caption("No uploads yet.")
    else:
        st.dataframe(
            batches.head(10), hide_index=True, width="stretch",
            column_config={"batch": st.column_config.TextColumn("batch", width="medium"),
                           "added_at": st.column_config.DatetimeColumn("uploaded", format="YYYY-MM-DD HH:mm")},
        )
if text.strip():  # full width: in the narrow column the tables showed their titles only
    st.subheader("Tried: " + ui.md_escape(text.strip().partition("\n")[0][:120]), anchor=False)
    ui.prediction_detail(ws, ws.predictor.predict_text(text), 0)
