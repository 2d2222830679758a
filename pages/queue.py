"""Label next: the items where a label helps most, one at a time, with the model's suggestion.

Keys: 1/2/3 accept the first/second/third suggestion, S skips, U undoes your last action.
"""

import streamlit as st

from coldrec import charts, labelling, ui
from coldrec.active import STRATEGIES

ws = ui.workspace()
st.title("Label next")
st.caption(
    "Unlabelled items ordered by where a label teaches the model most. "
    "Keys: **1 / 2 / 3** pick a suggestion · **S** skip · **U** undo your last action."
)

# Best first: cluster-margin needed the fewest labels on Flipkart products (BENCHMARKS.md).
STRATEGY_HELP = {
    "cluster-margin": "closest calls, spread over different kinds of product",
    "margin": "closest call between the two most likely categories",
    "least-confidence": "lowest top probability",
    "entropy": "most spread-out probabilities",
    "random": "random order (a baseline)",
}
left, right = st.columns([3, 2])
strategy = left.selectbox(
    "Order by",
    [s for s in STRATEGY_HELP if s in STRATEGIES],
    format_func=lambda s: f"{s} — {STRATEGY_HELP.get(s, '')}",
)
ALL = "All unlabelled items"
batch = right.selectbox("Items", [ALL, *ws.store.batches()["batch"].tolist()])
batch_arg = None if batch == ALL else batch

undo_col, auto_col = st.columns([1, 3])
if undo_col.button("Undo my last action", shortcut="U"):
    ui.undo_last_action(ws)
has_targets = bool(ws.store.category_targets())
if auto_col.button(
    "Auto-accept predictions that meet their category's target precision",
    disabled=not has_targets,
    help="Predictions below their category's target stay in this queue."
    + ("" if has_targets else " No category has a target precision yet: set them on the Categories & model page."),
):
    result = labelling.auto_accept(ws, ui.who(), batch_arg)
    st.toast(f"Accepted {result['accepted']} prediction(s); {result['queued']} left to review")
    st.rerun()

skipped: set[str] = st.session_state.setdefault("skipped", set())
# A fixed length keeps one cached ranking per label version; skipped items are filtered here.
queue = labelling.queue(ws, strategy, batch_arg, n=200)
queue = queue[~queue["item_id"].isin(skipped)].reset_index(drop=True)
if queue.empty:
    st.success("Nothing left to label here." + (" (Some items were skipped in this session.)" if skipped else ""))
    if skipped and st.button("Show skipped items again"):
        skipped.clear()
        st.rerun()
else:
    item = queue.iloc[0]
    item_id = str(item["item_id"])
    with st.container(border=True):
        st.subheader(ui.md_escape(item["title"]), anchor=False)
        if isinstance(item["description"], str) and item["description"]:
            st.caption(ui.md_escape(ui.shorten(queue.head(1), ("description",), 400)["description"].iloc[0]))
        st.caption(f"Item {ui.md_escape(item_id)}" + (f" · batch {ui.md_escape(item['batch'])}" if isinstance(item["batch"], str) else ""))
        options = [
            (item[name], item[prob])
            for name, prob in (("suggestion", "probability"), ("second", "second_probability"), ("third", "third_probability"))
            # Near-zero alternatives are noise, not choices.
            if isinstance(item[name], str) and (name == "suggestion" or item[prob] >= 0.02)
        ]
        buttons = st.columns(len(options) + 1)
        for rank, (category, probability) in enumerate(options, start=1):
            if buttons[rank - 1].button(
                f"{rank} · {ui.md_escape(category)} ({probability:.0%})",
                key=f"pick-{rank}",
                type="primary" if rank == 1 else "secondary",
                shortcut=str(rank),
                width="stretch",
            ):
                ws.label(item_id, category, who=ui.who(), source="accepted" if rank == 1 else "manual")
                st.session_state["last_labelled"] = item_id
                st.rerun()
        if buttons[-1].button("Skip", shortcut="S"):
            skipped.add(item_id)
            st.rerun()
        categories = ws.store.category_names()
        with st.form("correct", clear_on_submit=True, border=False):
            a, b = st.columns([3, 1], vertical_alignment="bottom")
            choice = a.selectbox("Or another category", categories, index=None, placeholder="Type to search…")
            if b.form_submit_button("Save") and choice:
                ws.label(item_id, choice, who=ui.who(), source="manual")
                st.session_state["last_labelled"] = item_id
                st.rerun()

last = st.session_state.get("last_labelled")
if last:
    with st.expander("Label its look-alikes too", expanded=True):
        min_similarity = st.slider("Similarity at least", 0.5, 0.99, labelling.PROPAGATE_MIN_SIMILARITY, 0.01)
        preview = labelling.propagation_preview(ws, last, min_similarity=min_similarity)
        label = ws.store.items_by_id([last])["category"].get(last)
        if preview.empty or not isinstance(label, str):
            closest = labelling.propagation_preview(ws, last, min_similarity=0.0, limit=1)
            st.caption(
                "No unlabelled look-alikes above this similarity"
                + (f" (the closest is at {closest['similarity'].iloc[0]:.2f})." if len(closest) else ".")
            )
        else:
            st.caption(f"Unlabelled items that look like the one you just labelled {ui.md_escape(label)}:")
            st.dataframe(ui.shorten(preview), hide_index=True, width="stretch")
            if st.button(f"Label these {len(preview)} as {ui.md_escape(label)}"):
                count = labelling.propagate(ws, last, preview["item_id"].tolist(), who=ui.who())
                st.session_state.pop("last_labelled", None)
                st.toast(f"Labelled {count} look-alike(s) — undo with U")
                st.rerun()

st.divider()
curves, hints = labelling.guidance(ws)
st.subheader("Where labels help most")
for hint in hints:
    st.info(ui.md_escape(hint.message))
if not curves.empty:
    shown_categories = st.multiselect(
        "Learning curves of", sorted(curves["category"].unique()), default=[h.category for h in hints]
    )
    if shown_categories:
        st.plotly_chart(charts.learning_curves(curves[curves["category"].isin(shown_categories)]), width="stretch")
with st.expander(f"The queue ({len(queue)} shown)"):
    st.dataframe(ui.shorten(queue.drop(columns=["description"])), hide_index=True, width="stretch")
