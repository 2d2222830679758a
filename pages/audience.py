"""Audience: which shoppers a new product suits, and which new products suit a shopper."""

import pandas as pd
import streamlit as st

from coldrec.errors import ColdrecError
from coldrec import ui
from coldrec.audience import reasons_frame, segment_table
from coldrec.export import to_csv_bytes
from coldrec.ingest import item_text

ws = ui.workspace()
st.title("Audience")
st.caption(
    "Nobody has bought a new product yet: its audience comes from shoppers who bought look-alikes (by meaning "
    "and by title words), whose taste across the whole catalog predicts it, whose interests match it and who "
    "favour its category, weighed by a blend fitted on "
    "this shop's own held-out purchases. Scores are purchase probabilities calibrated on held-out items."
)
model = ws.audience.model()
if model is None:
    # Only what adds the user's own file: no page advises a command that changes their data unasked.
    if ws.catalog.stats()["catalog_items"] == 0:  # purchases name catalog items: they come first
        st.info("No catalog yet: purchases name catalog items, so import the catalog first (Overview, "
                "“Import a catalog”), or load the demo there; then import this shop's purchases below.")
    else:
        st.info("No purchase history yet: import this shop's purchases (user_id, item_id, …) below.")
with st.expander("Import purchases (CSV, Excel, JSON or Parquet: user_id, item_id, optional timestamp, order_number, quantity)"):
    uploaded = st.file_uploader("Purchases file", type=["csv", "tsv", "xlsx", "json", "jsonl", "parquet"], key="purchases")
    if uploaded is not None and st.button("Import purchases"):
        try:
            added = ws.imports.import_interactions(uploaded.getvalue(), uploaded.name, actor=ui.who())
            st.success(f"Imported {added:,} new purchases (already stored ones are skipped)")
            model = ws.audience.model()
        except ColdrecError as exc:
            ui.error(exc)
if model is None:
    st.stop()

items = ws.catalog.items()
titles = items.set_index("item_id")["title"]
uploads = items[items["source"] == "upload"]
new_tab, user_tab = st.tabs(["Who should see a new product", "What suits a shopper"])


#: Short columns sized to their content, the reasons given the rest: the score stays in view.
AUDIENCE_COLUMNS = {
    "user_id": st.column_config.TextColumn("shopper", width="small"),
    "segment": st.column_config.TextColumn("segment", width="medium"),
    "score": st.column_config.NumberColumn("score", format="%.3f", width="small",
                                           help="Calibrated purchase probability"),
    "because they bought": st.column_config.TextColumn("because they bought", width="large"),
}


def _reasons(table: pd.DataFrame) -> pd.DataFrame:
    """The page's view of an audience table: reasons as titles with cosines."""
    return reasons_frame(table, titles).rename(columns={"because_they_bought": "because they bought"})


with new_tab:
    typed = st.text_input("Describe a product, or pick an uploaded one below", placeholder="Organic matcha green tea powder 100g")
    if typed.strip():
        target = ws.predictor.predict_text(typed)
    elif uploads.empty:
        st.info("Upload new products on the Upload & predict page, or describe one above.")
        st.stop()
    else:
        choice = st.selectbox("New product", uploads["item_id"], format_func=lambda i: f"{titles[i]} ({i})")
        target = ws.predictor.predict(uploads[uploads["item_id"] == choice])
    vector = target.vectors[0]
    text = item_text(target.items["title"].iloc[0], target.items["description"].iloc[0])
    n = st.slider("Shoppers to list", 5, 100, 20)
    verdict = model.verdict(vector, text)
    sizes = model.segment_sizes(vector, text)
    if model.blend is None:
        st.info(verdict)
    elif sizes["clear audience"] + sizes["new to this category"] == 0:
        st.warning(verdict)
    else:
        st.success(verdict)
    a, b, c = st.columns(3)
    a.metric("Strong audience (clear, bought the category)", f"{sizes['clear audience']:,}")
    b.metric("New to this category", f"{sizes['new to this category']:,}")
    c.metric("Below threshold", f"{sizes['below threshold']:,}")
    table = _reasons(model.audience(vector, n, text=text))
    st.dataframe(ui.shorten(table, ("because they bought",), 160), hide_index=True, width="stretch",
                 column_config=AUDIENCE_COLUMNS)
    export = segment_table(model, vector, titles.to_dict(), n, text=text)
    st.download_button(
        "Download audience CSV", lambda: to_csv_bytes(export), file_name="audience.csv", mime="text/csv",
        on_click="ignore", help=f"{len(export):,} shoppers: " + (
            "those above the threshold (both segments)" if model.blend is not None else "the top ones, unmeasured"
        ),
    )
    category = model.category_of(vector) or "its category"
    st.subheader(f"New to this category ({ui.md_escape(category)})")
    st.caption(
        "Shoppers who never bought this category, but whose other purchases put them above the threshold: "
        "a cross-category audience."
    )
    fresh = _reasons(model.new_to_category(vector, n, text=text))
    if fresh.empty:
        st.info("Nobody outside the category's buyers reaches the threshold for this product.")
    else:
        st.dataframe(ui.shorten(fresh, ("because they bought",), 160), hide_index=True, width="stretch",
                     column_config=AUDIENCE_COLUMNS)
        st.download_button(
            "Download new-to-category CSV", lambda: to_csv_bytes(fresh), file_name="audience_new_to_category.csv",
            mime="text/csv", on_click="ignore",
        )

with user_tab:
    user = st.selectbox("Shopper", model.user_ids)
    bought = ws.audience.purchases_of(user)
    left, right = st.columns(2)
    with left:
        affinity = ws.audience.category_affinity(user)
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
            vectors = ws.vectors.embed_items(uploads)
            texts = [item_text(t, d) for t, d in zip(uploads["title"], uploads["description"])]
            ranked = model.items_for_user(user, uploads["item_id"].tolist(), vectors, n=10, texts=texts)
            st.caption("New arrivals that suit this shopper best (score: calibrated purchase probability)" if model.blend else "New arrivals that suit this shopper best")
            best = pd.DataFrame(ranked, columns=["item_id", "score"])
            best.insert(1, "title", best["item_id"].map(titles))
            st.dataframe(ui.shorten(best), hide_index=True)
