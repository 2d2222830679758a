"""Audience: which shoppers a new product suits, and which new products suit a shopper."""

import pandas as pd
import streamlit as st

from coldrec.errors import ColdrecError
from coldrec import ui
from coldrec.export import to_csv_bytes

ws = ui.workspace()
st.title("Audience")
st.caption(
    "Nobody has bought a new product yet: its audience comes from shoppers who bought the catalog items "
    "most like it, weighted by similarity and recency."
)
model = ws.audience()
if model is None:
    st.info("No purchase history yet. Import purchases (user_id, item_id, …) below, or run `python -m coldrec init`.")
with st.expander("Import purchases (CSV, Excel, JSON or Parquet: user_id, item_id, optional timestamp, order_number, quantity)"):
    uploaded = st.file_uploader("Purchases file", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"], key="purchases")
    if uploaded is not None and st.button("Import purchases"):
        try:
            added = ws.import_interactions(uploaded.getvalue(), uploaded.name)
            st.success(f"Imported {added:,} new purchases (already stored ones are skipped)")
            model = ws.audience()
        except ColdrecError as exc:
            ui.error(exc)
if model is None:
    st.stop()

items = ws.store.items()
titles = items.set_index("item_id")["title"]
uploads = items[items["source"] == "upload"]
new_tab, user_tab = st.tabs(["Who should see a new product", "What suits a shopper"])

with new_tab:
    typed = st.text_input("Describe a product, or pick an uploaded one below", placeholder="Organic matcha green tea powder 100g")
    if typed.strip():
        target = ws.predict_text(typed)
    elif uploads.empty:
        st.info("Upload new products on the Upload & predict page, or describe one above.")
        st.stop()
    else:
        choice = st.selectbox("New product", uploads["item_id"], format_func=lambda i: f"{titles[i]} ({i})")
        target = ws.predict(uploads[uploads["item_id"] == choice])
    vector = target.vectors[0]
    n = st.slider("Shoppers to list", 5, 100, 20)
    top = model.top_users(vector, n=n)
    table = pd.DataFrame(
        [
            {
                "user_id": user,
                "score": round(score, 3),
                "because they bought": " · ".join(f"{titles.get(i, i)} ({sim:.2f})" for i, sim in reasons),
            }
            for user, score, reasons in top
        ]
    )
    sizes = model.audience_sizes(vector, [0.75, 0.5, 0.25])
    a, b, c = st.columns(3)
    a.metric("Strong audience (≥75% of top score)", f"{sizes[0.75]:,}")
    b.metric("Likely (≥50%)", f"{sizes[0.5]:,}")
    c.metric("Possible (≥25%)", f"{sizes[0.25]:,}")
    st.dataframe(ui.shorten(table, ("because they bought",), 160), hide_index=True)
    st.download_button(
        "Download audience CSV", lambda: to_csv_bytes(table), file_name="audience.csv", mime="text/csv", on_click="ignore"
    )

with user_tab:
    user = st.selectbox("Shopper", model.user_ids)
    bought = ws.store.purchases_of(user)
    left, right = st.columns(2)
    with left:
        affinity = ws.store.category_affinity(user)
        st.caption("Category affinity (share of purchases)")
        st.dataframe(
            affinity, hide_index=True,
            column_config={"share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0, format="%.2f")},
        )
        st.caption(f"Bought {len(bought):,} items")
        st.dataframe(ui.shorten(bought[["title", "category", "order_number"]].head(50)), hide_index=True)
    with right:
        if uploads.empty:
            st.info("No new arrivals uploaded yet.")
        else:
            vectors = ws.embed_items(uploads)
            ranked = model.items_for_user(user, uploads["item_id"].tolist(), vectors, n=10)
            st.caption("New arrivals that suit this shopper best")
            best = pd.DataFrame(ranked, columns=["item_id", "score"])
            best.insert(1, "title", best["item_id"].map(titles))
            st.dataframe(ui.shorten(best), hide_index=True)
