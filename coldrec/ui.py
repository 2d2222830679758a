"""Streamlit glue: cached resources and shared widgets. The only coldrec module importing streamlit."""

from __future__ import annotations

import atexit
import re

import pandas as pd
import streamlit as st

from .config import Settings
from .errors import ColdrecError
from .workspace import PredictionBatch, Workspace

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$&:])")


def md_escape(text: object) -> str:
    """User text made safe inside Streamlit Markdown: every Markdown/HTML character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def error(message: object) -> None:
    """An error box whose text (file names, columns, values) is shown literally."""
    st.error(md_escape(message))


@st.cache_resource(show_spinner="Loading the model and opening the database…", on_release=lambda ws: ws.close())
def _open_workspace() -> Workspace:
    ws = Workspace.open(Settings.from_env())
    atexit.register(ws.close)  # Streamlit does not release cached resources at shutdown
    return ws


def workspace() -> Workspace:
    """The process-wide workspace (model + database), or a clear error and stop."""
    try:
        return _open_workspace()
    except (ColdrecError, OSError, ValueError) as exc:
        st.error("coldrec cannot start: " + md_escape(exc))
        st.stop()
        raise  # unreachable; st.stop() raises


def sidebar(ws: Workspace) -> None:
    """Catalog size, labelled count, model, device and database path."""
    stats = ws.store.stats()
    with st.sidebar:
        st.metric("Catalog items", f"{stats['catalog_items']:,}")
        st.metric("Labelled examples", f"{stats['labelled_items']:,}", help="Catalog items count as labelled: their category is known.")
        st.caption(f"Uploaded: {stats['uploaded_items']:,} · Categories: {stats['categories']}")
        st.caption(f"Model: {md_escape(ws.encoder.name)} on **{ws.encoder.device}** ({ws.encoder.dim} dims)")
        st.caption(f"Database: {md_escape(ws.store.path)}")
        st.text_input("Your name (recorded with labels)", key="who", placeholder="e.g. ana")


def who() -> str:
    """The name entered in the sidebar, for label history."""
    return str(st.session_state.get("who") or "anonymous")


def prediction_detail(ws: Workspace, batch: PredictionBatch, row: int) -> None:
    """Top-3 with probabilities, evidence (nearest labelled examples) and similar catalog items."""
    from .charts import top3_bars

    pred = batch.predictions[row]
    verdict = "unsure — please check" if pred.unsure else "confident"
    st.markdown(f"**{md_escape(pred.category)}** · {pred.probability:.0%} · {verdict}")
    levels = batch.levels_of(row)
    if len(levels) > 1:
        st.caption("By level: " + " › ".join(f"{md_escape(node.split(' > ')[-1])} {p:.0%}" for node, p in levels))
    st.caption(f"Similarity to the category's name and description: {pred.prompt_similarity:.2f}")
    st.plotly_chart(top3_bars(pred.top), width="stretch", config={"displayModeBar": False})
    shown_ids = [e[0] for e in pred.evidence] + [i for i, _ in batch.neighbours[row]]
    titles = ws.store.items_by_id(shown_ids)
    left, right = st.columns(2)
    with left:
        st.caption("Why: the labelled examples nearest to it")
        evidence = pd.DataFrame(pred.evidence, columns=["item_id", "label", "similarity"])
        evidence.insert(1, "title", evidence["item_id"].map(titles["title"]))
        st.dataframe(evidence, hide_index=True, width="stretch")
    with right:
        st.caption("Similar catalog items")
        hits = pd.DataFrame(batch.neighbours[row], columns=["item_id", "similarity"])
        hits.insert(1, "title", hits["item_id"].map(titles["title"]))
        hits.insert(2, "category", hits["item_id"].map(titles["category"]))
        st.dataframe(hits, hide_index=True, width="stretch")


def progress_callback(label: str):
    """A ``progress(done, total)`` callback drawing a Streamlit progress bar with counts."""
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int) -> None:
        if total:
            bar.progress(min(done / total, 1.0), text=f"{label}: {done:,} / {total:,}")

    return update


def shorten(frame: pd.DataFrame, columns: tuple[str, ...] = ("title", "description"), limit: int = 120) -> pd.DataFrame:
    """A display copy with long text cut to ``limit`` characters (storage keeps the full text)."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = out[column].map(
                lambda v: v if not isinstance(v, str) or len(v) <= limit else v[: limit - 1] + "…"
            )
    return out


def label_controls(ws: Workspace, item_id: str, predicted: str, key: str) -> None:
    """Accept the prediction or correct it; both become labels at once."""
    categories = ws.store.category_names()
    current = ws.store.items_by_id([item_id])["category"].get(item_id)
    current = current if isinstance(current, str) else None  # NULL label comes back as NaN
    if current:
        st.success(f"Labelled: {md_escape(current)}", icon="🏷️")
    accept, correct = st.columns([1, 2])
    if accept.button(f"Accept: {md_escape(predicted)}", key=f"{key}-accept", type="primary"):
        ws.label(item_id, predicted, who=who(), source="accepted")
        st.toast(f"Saved label {md_escape(predicted)}")
        st.rerun()
    with correct:
        choice = st.selectbox(
            "Correct to", categories, index=categories.index(current or predicted) if (current or predicted) in categories else 0,
            key=f"{key}-choice",
        )
        if st.button("Save correction", key=f"{key}-save"):
            ws.label(item_id, choice, who=who(), source="manual")
            st.toast(f"Saved label {md_escape(choice)}")
            st.rerun()


def undo_last_action(ws: Workspace) -> None:
    """Undo this person's last labelling action, say what happened, and redraw the page
    (the sidebar counts and charts were drawn before the click)."""
    from .labelling import undo

    done = undo(ws, who())
    st.session_state.pop("last_labelled", None)  # its look-alike offer no longer applies
    if done["reverted"] or done["kept"]:
        kept = f"; {done['kept']} labelled again since by someone were kept" if done["kept"] else ""
        st.toast(f"Undid {done['reverted']} label(s){kept}")
    else:
        st.toast("Nothing to undo")
    st.rerun()


def batch_predictions(ws: Workspace, batch: str) -> PredictionBatch:
    """Predictions for an upload batch, kept in this session until labels, categories or items change
    (selecting a row or downloading must not re-run the whole batch)."""
    categories = tuple(map(tuple, ws.store.categories().fillna("").values.tolist()))
    key = (batch, ws.store.label_version(), categories, ws.store.catalog_fingerprint())
    cached = st.session_state.get("_batch_predictions")
    if cached is None or cached[0] != key:
        cached = (key, ws.predict_batch(batch))
        st.session_state["_batch_predictions"] = cached
    return cached[1]


@st.cache_resource
def background_jobs():  # noqa: ANN201 - coldrec.jobs.JobRunner (imported lazily)
    """The process's one runner of background jobs (fine-tuning): shared by every session, so a
    job survives page reloads and reruns."""
    from .jobs import JobRunner

    return JobRunner()
