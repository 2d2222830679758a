"""Overview: what is in the catalog, and a box to try a product."""

import streamlit as st

from coldrec import charts, ui

ws = ui.workspace()
st.title("Overview")

items = ws.store.items()
catalog = items[items["source"] == "catalog"]
left, right = st.columns([3, 2])
with left:
    st.subheader("Items per category")
    if items.empty:
        st.info("The catalog is empty. Run `python -m coldrec init` to load the demo catalog.")
    else:
        st.plotly_chart(charts.category_counts(items), width="stretch")
with right:
    st.subheader("Try a product")
    text = st.text_area(
        "Title on the first line, description below",
        placeholder="Enamelled cast iron casserole 24cm\nHolds heat for slow cooking; oven safe to 250°C.",
        height=120,
    )
    if text.strip():
        batch = ws.predict_text(text)
        ui.prediction_detail(ws, batch, 0)
    st.subheader("Latest uploads")
    batches = ws.store.batches()
    if batches.empty:
        st.caption("No uploads yet.")
    else:
        st.dataframe(batches.head(10), hide_index=True, width="stretch")
