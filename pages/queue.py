"""Label next: the items where a label helps most, one at a time, with the model's suggestions.

Keys: 1/2/3 take the first/second/third suggestion, S skips, U undoes your last action; "none of
these" is a type-ahead over every category and never defaults to a guess. The item card is a
fragment: a click reruns the card alone, not the guidance and charts below it.
"""

import streamlit as st

from coldrec import charts, claims, explore, labelling, ui
from coldrec.active import STRATEGIES
from coldrec.errors import ColdrecError, LabelConflict

ws = ui.workspace()
st.title("Label next")

ready = ws.readiness()
if not ready["categories"]:
    ui.start_here(ws, "Label next needs categories to suggest. Load the demo, import a catalog or a list of "
                  "categories, or add them one by one:", key="queue-start")
    st.stop()
if not ready["unlabelled_items"]:
    st.info("Nothing to label: every item has a label. Upload new products to label them here."
            if ready["catalog_items"] + ready["uploaded_items"] else
            "No items yet: upload new products (or import a catalog) to label them here.")
    ui.page_link("pages/upload.py", "Upload & predict", icon="📤")
    st.stop()

st.caption(
    "Unlabelled items ordered by where a label teaches the model most. "
    "Keys: **1 / 2 / 3** take a suggestion · **S** skip · **U** undo your last action. "
    "None of them right? Type in **None of these** to pick any category."
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
batch = right.selectbox("Items", [ALL, *ws.catalog.batch_names()])
batch_arg = None if batch == ALL else batch

has_targets = bool(ws.catalog.category_targets())
if st.button(
    "Auto-accept predictions that meet their category's target precision",
    disabled=not has_targets,
    help="Predictions below their category's target stay in this queue."
    + ("" if has_targets else " No category has a target precision yet: set them on the Categories & model page."),
):
    try:
        result = labelling.auto_accept(ws, ui.who(), batch_arg)
    except ColdrecError as exc:
        ui.error(exc)
    else:
        st.toast(f"Accepted {result['accepted']} prediction(s); {result['queued']} left to review")
        st.rerun()


QUEUE_BLOCK = 20

# Clicks act in on_click callbacks: they run before the fragment reruns, so one run shows the
# result (a st.rerun after the write would run the fragment twice).
def _label(item_id: str, category: str | None, source: str, since: int | None = None) -> None:
    if category:
        st.session_state.pop("conflict", None)
        try:  # ``since``: the labels when the card was drawn; someone else's label since is shown, not overwritten
            ws.labels.label(item_id, category, who=ui.who(), source=source, since=since)
        except LabelConflict as exc:
            st.session_state["conflict"] = (item_id, category, source, exc.theirs[item_id])
            return
        except ColdrecError as exc:
            ui.flash_error(exc)
            return
        st.session_state["last_labelled"] = item_id


def _skip(item_id: str) -> None:
    st.session_state.setdefault("skipped", set()).add(item_id)
    claims.release(ws, ui.who())


def _propagate(item_id: str, targets: list[str], label: str) -> None:
    try:
        count = labelling.propagate(ws, item_id, targets, who=ui.who())
    except ColdrecError as exc:
        ui.flash_error(exc)
        return
    st.session_state.pop("last_labelled", None)
    ui.flash(f"Labelled {count} look-alike(s) as {ui.md_escape(label)} — undo with U")


@st.fragment
def card() -> None:
    """The look-alike offer for the last label, then the next item and its choices."""
    ui.show_flash()
    ui.sidebar_counts(ws)  # a click reruns this card alone: the sidebar's labelled count moves with it
    st.button("Undo my last action", shortcut="U", on_click=ui.undo_now, args=(ws,))
    conflict()
    last = st.session_state.get("last_labelled")
    if last:
        lookalikes(last)
    skipped: set[str] = st.session_state.setdefault("skipped", set())
    # Ranked in blocks of 20 (one cached ranking per label version and block; skipped items are
    # filtered here): cluster-margin clusters 10·n candidates into n groups, so a longer list
    # than the person will see costs seconds per label at 10k items.
    queue = labelling.queue(ws, strategy, batch_arg, n=QUEUE_BLOCK * (1 + len(skipped) // QUEUE_BLOCK))
    queue = queue[~queue["item_id"].isin(skipped)].reset_index(drop=True)
    if queue.empty:
        st.success("Nothing left to label here." + (" (Some items were skipped in this session.)" if skipped else ""))
        if skipped:
            st.button("Show skipped items again", on_click=skipped.clear)
        return
    # Signed-in labellers each get a card nobody else is looking at (a short claim; coldrec/claims.py).
    seen = ws.labels.version() if ws.access.sign_in else None
    mine = claims.next_card(ws, queue["item_id"].tolist(), ui.who())
    if mine is None:
        st.info("Everything left here is on someone else's screen right now: try again in a minute.")
        return
    item = queue[queue["item_id"] == mine].iloc[0]
    item_id = str(item["item_id"])
    details = explore.item_details(ws, item_id)
    with st.container(border=True):
        st.subheader(ui.md_escape(details["title"]), anchor=False)
        if details["description"]:
            st.markdown(ui.md_escape(details["description"]))
        facts = [("Brand", details["brand"]), ("Price", f"{details['price']:,.2f}" if details["price"] is not None else None),
                 ("Batch", details["batch"]), ("Id", item_id)]
        st.caption(" · ".join(f"{name}: {ui.md_escape(value)}" for name, value in facts if value))
        options = [
            (item[name], item[prob])
            for name, prob in (("suggestion", "probability"), ("second", "second_probability"), ("third", "third_probability"))
            # Near-zero alternatives are noise, not choices.
            if isinstance(item[name], str) and (name == "suggestion" or item[prob] >= 0.02)
        ]
        novel = explore.is_novel(ws, item_id)
        if novel:
            st.warning("This looks like none of your categories: pick one below, or make a new one.", icon="❓")
        guesses, other = st.columns([1, 1])
        with guesses:
            st.caption("The model's guesses (none is chosen for you)")
            for rank, (category, probability) in enumerate(options, start=1):
                # Every guess is secondary: the easy answer must not be the model's by default.
                share = "" if novel else f" — {probability:.0%}"  # no percentage for a product like none of them
                st.button(f"{rank} · {ui.md_escape(category)}{share}", key=f"pick-{rank}",
                          shortcut=str(rank), width="stretch", on_click=_label,
                          args=(item_id, category, "accepted" if rank == 1 else "manual", seen))
            st.button("Skip for now", shortcut="S", width="stretch", on_click=_skip, args=(item_id,))
        with other:
            categories = ws.catalog.category_names()
            st.selectbox(
                "None of these: pick any category", categories, index=None, key=f"other-{item_id}",
                placeholder=f"Type to search {len(categories)} categories…",
            )
            st.button("Save this category", key="save-other", on_click=lambda: _label(
                item_id, st.session_state.get(f"other-{item_id}"), "manual", seen))
    with st.expander(f"The queue ({len(queue)} shown)"):
        ui.table(queue.drop(columns=["description"]))


def conflict() -> None:
    """Someone else labelled the item while this person looked at it: show both, let them choose."""
    held = st.session_state.get("conflict")
    if not held:
        return
    item_id, mine, source, (by, theirs) = held
    title = explore.item_details(ws, item_id)["title"]
    st.warning(f"**{ui.md_escape(by)}** labelled “{ui.md_escape(title)}” as **{ui.md_escape(theirs or '(no label)')}** "
               f"while you were looking at it; your {ui.md_escape(mine)} was not saved.", icon="⚠️")
    keep, overwrite = st.columns(2)
    keep.button(f"Keep {ui.md_escape(theirs or '(no label)')}", key="conflict-keep",
                on_click=lambda: st.session_state.pop("conflict", None))
    overwrite.button(f"Save {ui.md_escape(mine)} anyway", key="conflict-overwrite", on_click=_label,
                     args=(item_id, mine, source, None))


def lookalikes(last: str) -> None:
    """Offer to give the last labelled item's label to its unlabelled look-alikes (one undoable action)."""
    details = explore.item_details(ws, last)
    label = details["category"]
    if not isinstance(label, str):
        return
    with st.expander(f"You labelled “{details['title']}” as {label}: label its look-alikes too?", expanded=True):
        min_similarity = st.slider("Similarity at least", 0.5, 0.99, labelling.PROPAGATE_MIN_SIMILARITY, 0.01)
        preview = labelling.propagation_preview(ws, last, min_similarity=min_similarity)
        if preview.empty:
            closest = labelling.propagation_preview(ws, last, min_similarity=0.0, limit=1)
            st.caption(
                "No unlabelled look-alikes of that item above this similarity"
                + (f" (the closest is at {closest['similarity'].iloc[0]:.2f})." if len(closest) else ".")
            )
        else:
            st.caption(f"Unlabelled items that look like “{ui.md_escape(details['title'])}”:")
            ui.table(preview)
            st.button(f"Label these {len(preview)} as {ui.md_escape(label)}", on_click=_propagate,
                      args=(last, preview["item_id"].tolist(), label))


card()

st.divider()
st.subheader("Where labels help most", anchor=False)
st.caption("Updated when the page reloads (after labelling, open the page again).")
curves, hints = labelling.guidance(ws)
queue_empty = labelling.queue(ws, strategy, batch_arg, n=QUEUE_BLOCK).empty
for hint in hints if not queue_empty else []:
    st.info(ui.md_escape(hint.message))
if not curves.empty:
    # A hint may name a category without a curve yet (just added, no labels): ui.multiselect drops it.
    shown_categories = ui.multiselect(
        "Learning curves of", sorted(curves["category"].unique()), default=[h.category for h in hints]
    )
    if shown_categories:
        st.plotly_chart(charts.learning_curves(curves[curves["category"].isin(shown_categories)]), width="stretch")
