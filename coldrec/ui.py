"""Streamlit glue: cached resources and shared widgets. The only coldrec module importing streamlit."""

from __future__ import annotations

import atexit
import os
import re

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError
from threadpoolctl import threadpool_limits

from . import remote
from .access import normal_email
from .config import Settings
from .errors import ColdrecError
from .services.predictor import PredictionBatch
from .workspace import Workspace

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$&:])")


def md_escape(text: object) -> str:
    """User text made safe inside Streamlit Markdown: every Markdown/HTML character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def error(message: object) -> None:
    """An error box whose text (file names, columns, values) is shown literally."""
    st.error(md_escape(message))


@st.cache_resource(show_spinner="Loading the model and opening the database…", on_release=lambda ws: ws.close())
def _open_workspace() -> Workspace:
    # BLAS threads on every core spin against each other and against the server's own threads:
    # on the 2-core machine under load a refit after one label took 5.4–6.7 s with 2 BLAS threads
    # and 0.10–0.18 s with 1 (BENCHMARKS.md, "Click latency"). Half the cores, as analytics uses.
    threadpool_limits(limits=max(1, (os.cpu_count() or 1) // 2), user_api="blas")
    ws = Workspace.open(Settings.from_env())
    atexit.register(ws.close)  # Streamlit does not release cached resources at shutdown
    remote.serve(ws)  # CLI commands on this database run here while the dashboard holds it
    return ws


def workspace() -> Workspace:
    """The process-wide workspace (model + database), or a clear error and stop. With sign-in
    configured its checks run in sign-in mode (coldrec.access); a page reached before sign-in stops."""
    if sign_in_configured() and not st.user.is_logged_in:
        st.stop()  # app.py drew the sign-in screen; nothing of the workspace is shown
    try:
        ws = _open_workspace()
    except ColdrecError as exc:
        st.error("coldrec cannot start: " + md_escape(exc))
        st.stop()
        raise  # unreachable; st.stop() raises
    ws.access.configure(sign_in_configured(), configured_admins())
    return ws


# -- sign-in (issue 24): Streamlit's st.login with the [auth] section of .streamlit/secrets.toml ---
def sign_in_configured() -> bool:
    """Whether ``.streamlit/secrets.toml`` has an ``[auth]`` section (else: single-user local mode)."""
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def configured_admins() -> list[str]:
    """``[coldrec] admins`` of secrets.toml: always admins (the first one grants the other roles)."""
    if not st.secrets.load_if_toml_exists():
        return []
    admins = st.secrets.get("coldrec", {}).get("admins", [])
    return [str(a) for a in admins] if isinstance(admins, (list, tuple)) else [str(admins)]


def may_enter() -> bool:
    """Whether this session may see the dashboard: always in local mode; with sign-in, once signed in
    with a role (an email without one sees only :func:`sign_in_screen`)."""
    if not sign_in_configured():
        return True
    return bool(st.user.is_logged_in) and workspace().access.role_of(who()) is not None


def sign_in_screen() -> None:
    """All a session sees before sign-in (no item, label or count), or, signed in without a role,
    whom to ask for one."""
    st.title("coldrec")
    if not st.user.is_logged_in:
        st.write("Sign in to see and label the catalog.")
        st.button("Sign in", type="primary", on_click=st.login, key="sign-in")
        return
    st.warning(f"You are signed in as {md_escape(who() or 'an account without an email address')}, "
               "but you have no role on this dashboard yet.", icon="🔒")
    admins = configured_admins()
    if admins:
        st.write("Ask an admin to add you on the Roles page: " + md_escape(", ".join(admins)))
    st.button("Sign out", on_click=st.logout, key="sign-out")


def can(ws: Workspace, action: str, count: int = 1) -> bool:
    """Whether the person at this session may do ``action`` (to disable what they may not; the
    library checks again on every write)."""
    return ws.access.allows(who(), action, count)


def sidebar(ws: Workspace) -> None:
    """Catalog size, labelled count, model, device and database path."""
    with st.sidebar:
        # The counts sit in one placeholder that a fragment labelling items redraws
        # (:func:`sidebar_counts`): a fragment rerun does not run this function again.
        st.session_state["_sidebar_counts"] = st.empty()
        sidebar_counts(ws)
        st.caption(f"Model: {md_escape(ws.encoder.name)} on **{ws.encoder.device}** ({ws.encoder.dim} dims)")
        st.caption("Chosen by: " + md_escape(_choice_line(ws.models.encoder_choice())))
        st.caption(f"Database: {md_escape(ws.database_path)}")
        if ws.vectors.index_notice:  # a saved index that did not match was rebuilt
            st.caption(":orange[" + md_escape(ws.vectors.index_notice) + "]")
        if ws.predictor.refitting():
            st.caption("⏳ Your latest labels' look-alikes are updated; the rest of the catalog is catching up "
                       "in the background (minutes at a million items); the next page view shows it once done.")
        if sign_in_configured():
            st.caption(f"Signed in as **{md_escape(who())}** · {md_escape(ws.access.role_of(who()) or 'no role')}")
            st.button("Sign out", on_click=st.logout, key="sidebar-sign-out")
        else:
            st.caption("Single-user local mode: no sign-in is configured (README, “A team on one dashboard”).")
            st.text_input("Your name (recorded with labels)", key="who", placeholder="e.g. ana")


def sidebar_counts(ws: Workspace) -> None:
    """Draw (or redraw) the sidebar's catalog, labelled, uploaded and category counts. A fragment
    that saves labels calls it, so the counts move on the same rerun (Streamlit redraws what a
    fragment writes into a container made outside it)."""
    placeholder = st.session_state.get("_sidebar_counts")
    if placeholder is None:  # a page run on its own, without the app's sidebar
        return
    stats = ws.catalog.stats()
    with placeholder.container():
        st.metric("Catalog items", f"{stats['catalog_items']:,}")
        st.metric("Labelled examples", f"{stats['labelled_items']:,}", help="Catalog items count as labelled: their category is known.")
        st.caption(f"Uploaded: {stats['uploaded_items']:,} · Categories: {stats['categories']}")


#: How the bundled models are named on the page.
MODEL_LABELS = {
    "auto": "Automatic: by the catalogue's language",
    "minilm": "all-MiniLM-L6-v2 (English; fastest)",
    "multilingual": "Universal Sentence Encoder multilingual (Chinese and 15 other languages)",
    "both": "Both together (a catalogue mixing English and Chinese titles; slowest)",
}


def _choice_line(choice: dict[str, str]) -> str:
    source = {"auto": "the language rule", "override": "your choice on Categories & model",
              "setting": "the COLDREC_ENCODER setting", "configured": "the COLDREC_MODEL setting"}[choice["source"]]
    # A choice made on the page has no further reason to give ("chosen on Categories & model").
    return source if choice["source"] == "override" else f"{source} ({choice['reason']})"


def model_choice(ws: Workspace) -> None:
    """Which bundled model reads the catalogue and why, with the override (Categories & model)."""
    choice = ws.models.encoder_choice()
    st.caption("Model chosen by " + md_escape(_choice_line(choice)) + ".")
    if choice["source"] in ("configured", "setting"):
        st.caption("Set in the environment: unset COLDREC_MODEL / COLDREC_ENCODER to choose here.")
        return
    options = list(MODEL_LABELS)
    current = "auto" if choice["source"] == "auto" else choice["choice"]
    pick = st.radio("Model for this workspace", options, index=options.index(current),
                    format_func=MODEL_LABELS.__getitem__, key="model-choice", horizontal=False)
    if st.button("Use this model", key="model-choice-apply", disabled=pick == current):
        with st.spinner("Switching model and embedding the catalog…"):
            try:
                ws.models.set_encoder_choice(pick, actor=who())
                ws.predictor.embed_all(progress=progress_callback("Embedding"))
            except ColdrecError as exc:
                error(exc)
                return
        st.toast(f"Now using {md_escape(ws.encoder.name)}")
        st.rerun()


def who() -> str:
    """Who acts in this session: the signed-in email (lower case) with sign-in on, else the name
    entered in the sidebar."""
    if sign_in_configured():
        return normal_email(st.user.get("email") if st.user.is_logged_in else "")
    return str(st.session_state.get("who") or "anonymous")


def prediction_detail(ws: Workspace, batch: PredictionBatch, row: int) -> None:
    """Top-3 with probabilities, evidence (nearest labelled examples) and similar catalog items."""
    from .charts import top3_bars

    pred = batch.predictions[row]
    if pred.novel:
        # Far from every category and every labelled example: a percentage would only mislead.
        st.warning(
            f"Looks like none of your categories (closest: {md_escape(pred.category)}). "
            "Pick one by hand, or add a category for it.", icon="❓",
        )
    else:
        verdict = "unsure — please check" if pred.unsure else "confident"
        st.markdown(f"**{md_escape(pred.category)}** · {pred.probability:.0%} · {verdict}")
    levels = batch.levels_of(row)
    if len(levels) > 1:
        st.caption("By level: " + " › ".join(f"{md_escape(node.split(' > ')[-1])} {p:.0%}" for node, p in levels))
    # + 0.0 turns a -0.00 from rounding into 0.00
    st.caption(f"Similarity to the category's name and description: {round(pred.prompt_similarity, 2) + 0.0:.2f}")
    if not pred.novel:
        st.plotly_chart(top3_bars(pred.top), width="stretch", config={"displayModeBar": False})
    shown_ids = [e[0] for e in pred.evidence] + [i for i, _ in batch.neighbours[row]]
    titles = ws.catalog.items_by_id(shown_ids)
    # One table under the other, full width: side by side, half-width columns cut the titles off.
    with st.container():
        st.caption("Why: the labelled examples nearest to it")
        evidence = pd.DataFrame(pred.evidence, columns=["item_id", "label", "similarity"])
        evidence.insert(1, "title", evidence["item_id"].map(titles["title"]))
        table(evidence)
    with st.container():
        st.caption("Similar catalog items")
        hits = pd.DataFrame(batch.neighbours[row], columns=["item_id", "similarity"])
        hits.insert(1, "title", hits["item_id"].map(titles["title"]))
        hits.insert(2, "category", hits["item_id"].map(titles["category"]))
        table(hits)


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


def label_controls(ws: Workspace, item_id: str, predicted: str, key: str, novel: bool = False) -> None:
    """Accept the prediction or correct it; both become labels at once. For a ``novel`` item (like
    none of the categories) accepting is not the suggested action: its button is a plain one."""
    categories = ws.catalog.category_names()
    current = ws.catalog.items_by_id([item_id])["category"].get(item_id)
    current = current if isinstance(current, str) else None  # NULL label comes back as NaN
    if current:
        st.success(f"Labelled: {md_escape(current)}", icon="🏷️")
    accept, correct = st.columns([1, 1])
    if accept.button(f"Accept: {md_escape(predicted)}", key=f"{key}-accept", type="secondary" if novel else "primary",
                     width="stretch"):
        _save_label(ws, item_id, predicted, "accepted")
    with correct:
        choice = st.selectbox(
            "Correct to", categories, index=categories.index(current or predicted) if (current or predicted) in categories else 0,
            key=f"{key}-choice",
        )
        if st.button("Save correction", key=f"{key}-save"):
            _save_label(ws, item_id, choice, "manual")


def _save_label(ws: Workspace, item_id: str, category: str, source: str) -> None:
    try:
        ws.labels.label(item_id, category, who=who(), source=source)
    except ColdrecError as exc:  # a viewer's click: the library refuses it and says why
        error(exc)
        return
    st.toast(f"Saved label {md_escape(category)}")
    st.rerun()


def undo_last_action(ws: Workspace) -> None:
    """Undo this person's last labelling action, say what happened, and redraw the page
    (the sidebar counts and charts were drawn before the click)."""
    undo_now(ws)
    show_flash()
    st.rerun()


def undo_now(ws: Workspace) -> None:
    """Undo this person's last labelling action and say what happened, without a rerun: as a
    button's ``on_click`` it runs before the (fragment) rerun the click starts."""
    try:
        done = ws.labels.undo(who())
    except ColdrecError as exc:
        flash_error(exc)
        return
    st.session_state.pop("last_labelled", None)  # its look-alike offer no longer applies
    if done["reverted"] or done["kept"]:
        kept = f"; {done['kept']} labelled again since by someone were kept" if done["kept"] else ""
        flash(f"Undid {done['reverted']} label(s){kept}")
    else:
        flash("Nothing to undo")


def flash(message: str) -> None:
    """A toast to show on the next run: callbacks may not draw (in a fragment rerun a drawn
    element would land at the top of the page), so they leave the message here."""
    st.session_state["_flash"] = message


def flash_error(exc: BaseException) -> None:
    """An error box to show on the next run (see :func:`flash`)."""
    st.session_state["_flash_error"] = str(exc)


def show_flash() -> None:
    """Show the message a callback left with :func:`flash` or :func:`flash_error`, once."""
    message = st.session_state.pop("_flash", None)
    if message:
        st.toast(message)
    problem = st.session_state.pop("_flash_error", None)
    if problem:
        error(problem)


# -- onboarding: empty states that say what to do next and offer it in place -------------------
def start_here(ws: Workspace, message: str, key: str) -> None:
    """An empty state: ``message`` (what is missing, our own text) and, in place, the ways in:
    load the demo, import a catalog, import categories or a taxonomy, add a category."""
    st.info(message, icon="👋")
    demo, catalog, categories, one = st.tabs(
        ["Load the demo", "Import a catalog", "Import categories or a taxonomy", "Add a category"]
    )
    with demo:
        st.caption(
            "A shop of 448 products in 16 categories, 3,420 purchases by 160 shoppers, and 72 new arrivals "
            "uploaded as the batch “demo new arrivals”, ready to predict and label."
        )
        held = ws.readiness()
        if held["catalog_items"] + held["uploaded_items"]:  # never merged into a shop's data unawares
            st.warning(f"This database already holds {held['catalog_items'] + held['uploaded_items']:,} items: "
                       "the demo would be added to them. Open an empty database for the demo instead.", icon="⚠️")
        if st.button("Load the demo", key=f"{key}-demo", type="primary"):
            _run_step(lambda: ws.load_demo(progress=progress_callback("Embedding"), actor=who()), "Loaded the demo")
    with catalog:
        catalog_import(ws, key=f"{key}-catalog")
    with categories:
        st.caption(
            "A table with a name column (optional description, path), or a taxonomy: Google's product taxonomy "
            "file, or a table of paths such as Home > Kitchen > Cookware."
        )
        file = st.file_uploader("Categories or taxonomy file", type=["txt", *_TABLE_TYPES], key=f"{key}-categories-file")
        depth = st.number_input("Taxonomy depth (deeper levels join their ancestor)", 1, 10, 3, key=f"{key}-depth")
        if file is not None and st.button("Import categories", key=f"{key}-categories", type="primary"):
            _run_step(lambda: ws.catalog.import_category_file(file.getvalue(), file.name, int(depth), actor=who()), "Imported",
                      lambda n: f" {n} categories")
    with one:
        category_form(ws, key=f"{key}-add")


def catalog_import(ws: Workspace, key: str) -> None:
    """A file of products already on sale, imported as the catalog (its category column as labels)."""
    st.caption(
        "Products you already sell, one per row: a title and/or description column, optionally id, brand, "
        "price and category. A category column labels them and creates the categories it names."
    )
    file = st.file_uploader("Catalog file", type=list(_TABLE_TYPES), key=f"{key}-file")
    if file is not None and st.button("Import catalog", key=key, type="primary"):
        from .ingest import read_table

        def step() -> dict[str, int]:
            table = read_table(file.getvalue(), file.name, ws.settings.upload_limits())
            return ws.imports.import_catalog(table, file.name, progress=progress_callback("Embedding"), actor=who())

        _run_step(step, "Imported the catalog",
                  lambda c: f": {c['items']:,} items, {c['categories']} new categories, {c['labels']:,} labels")


_TABLE_TYPES = ("csv", "tsv", "xlsx", "json", "jsonl", "ndjson", "parquet")


def _run_step(step, done: str, detail=lambda result: "") -> None:
    """Run an onboarding step: on success a toast and a fresh page; a user error is shown as text."""
    try:
        result = step()
    except ColdrecError as exc:
        error(exc)
        return
    st.toast(md_escape(done + detail(result)), icon="✅")
    st.rerun()


def category_form(ws: Workspace, key: str) -> None:
    """Name, one-line description and optional parent path; adds the category at once."""
    with st.form(key, clear_on_submit=True):
        name = st.text_input("Name", max_chars=100)
        description = st.text_input("One-line description (zero-shot prediction reads it)", max_chars=300)
        path = st.text_input("Parent path (optional)", placeholder="Home & Kitchen > Kitchen", max_chars=300)
        if st.form_submit_button("Add category"):
            _run_step(lambda: ws.catalog.add_category(name, description, path, actor=who()), "Added category ", str)


def rename_merge_forms(ws: Workspace, key: str) -> None:
    """Rename a category, or merge several into one (admins): labels, targets and paths follow."""
    names = ws.catalog.category_names()
    counts = ws.labels.counts().set_index("category")["examples"].to_dict()
    shown = lambda n: f"{n} ({counts.get(n, 0):,} labels)"  # noqa: E731
    rename, merge = st.columns(2)
    with rename, st.form(f"{key}-rename", clear_on_submit=True):
        old = st.selectbox("Category to rename", names, index=None, format_func=shown, placeholder="Choose…")
        new = st.text_input("New name", max_chars=100)
        if st.form_submit_button("Rename", disabled=not names):
            if old is None:
                error("choose the category to rename")
            else:
                _run_step(lambda: ws.catalog.rename_category(old, new, actor=who()), f"Renamed {old} to {new.strip()}",
                          lambda n: f" ({n:,} labels moved)")
    with merge, st.form(f"{key}-merge", clear_on_submit=True):
        sources = st.multiselect("Categories to merge", names, format_func=shown, placeholder="Choose…")
        into = st.selectbox("Into", names, index=None, format_func=shown, placeholder="Choose the one kept…")
        st.caption("Their items are labelled with the one kept and they are deleted (in the audit trail; "
                   "undo by importing or renaming, not with the label undo).")
        if st.form_submit_button("Merge", disabled=len(names) < 2):
            if into is None:
                error("choose the category the others are merged into")
            else:
                _run_step(lambda: ws.catalog.merge_categories(sources, into, actor=who()), f"Merged into {into}",
                          lambda n: f" ({n:,} labels moved)")


def multiselect(label: str, options: list, default: list | None = None, **kwargs) -> list:
    """``st.multiselect`` whose default is always a subset of its options: a default the options
    do not hold (a category just added has a hint but no learning curve yet) is dropped, where
    Streamlit would raise ``StreamlitDefaultNotInOptionsError``."""
    options = list(options)
    allowed = set(options)
    default = list(dict.fromkeys(d for d in default or [] if d in allowed))
    return st.multiselect(label, options, default=default, **kwargs)


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another dashboard page (plain text where the page is not registered, e.g. in a test
    that runs one page on its own)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:  # a page run on its own, outside st.navigation
        st.caption(md_escape(label))


#: What a label editor shows in an unlabelled row: an empty selectbox cell reads "None" in
#: Streamlit's grid. It is also the option that removes a label.
NOT_LABELLED = "– not labelled –"


def label_editor_values(labels: pd.Series, categories: list[str]) -> tuple[pd.Series, list[str]]:
    """Labels for a label editor (blank/None as :data:`NOT_LABELLED`) and its options (that word first)."""
    shown = labels.astype(object).map(lambda v: v if isinstance(v, str) and v else NOT_LABELLED)
    return shown, [NOT_LABELLED, *[c for c in categories if c != NOT_LABELLED]]


def label_editor_result(edited: pd.Series) -> pd.Series:
    """Labels from a label editor: :data:`NOT_LABELLED` (or a cleared cell) as no label ("")."""
    return edited.astype(object).map(lambda v: "" if not isinstance(v, str) or v == NOT_LABELLED else v)


# -- readable tables ----------------------------------------------------------------------------
#: Headers in words for columns the pages show (others: underscores become spaces).
HEADERS = {
    "top1": "category", "top1_probability": "probability", "top2": "2nd guess", "top2_probability": "2nd %",
    "top3": "3rd guess", "top3_probability": "3rd %", "item_id": "id", "label": "your label",
    "suggestion": "suggestion", "second": "2nd guess", "second_probability": "2nd %", "third": "3rd guess",
    "third_probability": "3rd %", "batch_items": "in batch", "catalog_items": "in catalog",
    "far_share": "far from catalog", "unsure_share": "unsure share", "mean_confidence": "mean confidence",
    "predicted_unsure": "predicted, unsure", "labelled_catalog": "labelled in catalog",
    "labelled_uploads": "labelled uploads", "nearest_catalog_title": "nearest catalog item",
    "nearest_catalog_id": "nearest catalog id", "nearest_similarity": "similarity to it",
    "centroid_cosine": "centroid cosine", "nearest_category": "most confusable with", "labelled_at": "when",
    "title_a": "title", "title_b": "looks like", "source_a": "source", "source_b": "its source",
    "item_a": "id", "item_b": "its id", "who": "who", "example_titles": "examples", "added_at": "uploaded",
}
_PERCENT = {"probability", "confidence", "far_share", "unsure_share", "mean_confidence", "coverage"}
_FLAGS = {"unsure": "⚠️ unsure", "novel": "❓ none of your categories", "include": None}


def readable(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, object]]:
    """A display copy of ``frame`` and its column settings: titles first and wide, ids last,
    probabilities as percentages, flags as words, headers in words, blanks instead of None."""
    out = frame.copy()
    ids = [c for c in out.columns if c == "item_id" or str(c).endswith("_id") or str(c) in ("item_a", "item_b")]
    firsts = [c for c in ("title", "title_a", "title_b") if c in out.columns]
    out = out[firsts + [c for c in out.columns if c not in firsts and c not in ids] + ids]
    config: dict[str, object] = {}
    for column in out.columns:
        name = str(column)
        label = HEADERS.get(name, name.replace("_", " "))
        values = out[column]
        if name in _FLAGS and _FLAGS[name] is None:
            continue  # an editable tick box stays a tick box
        if pd.api.types.is_bool_dtype(values) or name in _FLAGS:
            word = _FLAGS.get(name)
            out[column] = values.map(lambda v, w=word: (w or "yes") if v is True or v == 1 else ("" if w else "no"))
            # Wide enough for its word ("⚠️ unsure" was cut to "⚠ unsur" at the default width).
            config[name] = st.column_config.TextColumn(label, width=_text_width(max(len(word or "no"), len(label))))
        elif name in _PERCENT or name.endswith("_probability") or name.endswith("_share"):
            config[name] = st.column_config.NumberColumn(label, format="percent")
        elif pd.api.types.is_float_dtype(values):
            config[name] = st.column_config.NumberColumn(label, format="%.2f")
        elif name.startswith("title") or name in ("keywords", "example_titles", "description"):
            config[name] = st.column_config.TextColumn(label, width="large")
        elif pd.api.types.is_datetime64_any_dtype(values):
            config[name] = st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm")
        else:
            config[name] = st.column_config.Column(label)
        if values.dtype == object or pd.api.types.is_string_dtype(values):  # pandas 3 text is "str", NaN for None
            out[column] = out[column].astype(object).map(_cell)
    return out, config


def _text_width(characters: int) -> int:
    """A column width in pixels that shows ``characters`` characters of the dashboard's font."""
    return 8 * characters + 36


def _cell(value: object) -> object:
    """A blank for None/NaN; lists as comma-separated words."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value


def table(frame: pd.DataFrame, **kwargs):
    """``st.dataframe`` of :func:`readable` ``frame`` (no index, full width); extra ``column_config``
    entries and keyword arguments pass through. Returns what ``st.dataframe`` returns."""
    shown, config = readable(frame)
    config.update(kwargs.pop("column_config", {}))
    return st.dataframe(shown, hide_index=True, width="stretch", column_config=config, **kwargs)


@st.cache_resource
def background_jobs():  # noqa: ANN201 - coldrec.jobs.JobRunner (imported lazily)
    """The process's one runner of background jobs (fine-tuning): shared by every session, so a
    job survives page reloads and reruns."""
    from .jobs import JobRunner

    return JobRunner()
