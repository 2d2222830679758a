"""Upload & predict: read a file or pasted text, map columns, predict, accept or correct."""

from datetime import datetime
from pathlib import Path

import streamlit as st

from coldrec import ui
from coldrec.errors import ColdrecError
from coldrec.export import to_csv_bytes, to_excel_bytes
from coldrec.ingest import COLUMN_SYNONYMS, guess_mapping, parse_pasted, prepare_items, read_table

ws = ui.workspace()
st.title("Upload & predict")
limits = ws.settings.upload_limits()
if not ws.readiness()["categories"]:
    ui.start_here(
        ws, "Predictions need categories, and there are none yet. Load the demo, import a catalog (a category "
        "column brings its categories), import a list of categories or a taxonomy, or add them one by one; "
        "then upload new products here. (Categories & model manages them later.)", key="upload-start",
    )
    st.stop()

file_tab, paste_tab = st.tabs(["Upload a file", "Paste text"])
with file_tab:
    uploaded = st.file_uploader(
        "CSV, TSV, Excel, JSON, JSON Lines or Parquet",
        type=["csv", "tsv", "txt", "xlsx", "json", "jsonl", "ndjson", "parquet"],
    )
with paste_tab:
    pasted = st.text_area("One product per line (title, optionally a TAB and a description)", height=150)

raw, source = None, None
try:
    if uploaded is not None:
        raw, source = read_table(uploaded.getvalue(), uploaded.name, limits), uploaded.name
    elif pasted.strip():
        raw, source = parse_pasted(pasted, limits), "pasted text"
except ColdrecError as exc:
    ui.error(exc)

if raw is not None:
    with st.expander(f"Preview of {ui.md_escape(source)}: {len(raw):,} rows", expanded=True):
        st.dataframe(ui.shorten(raw.head(20).astype(str), tuple(raw.columns)), hide_index=True)
    guessed = guess_mapping(list(raw.columns))
    options = ["(none)", *raw.columns]
    cols = st.columns(len(COLUMN_SYNONYMS))
    mapping = {}
    for col, canonical in zip(cols, COLUMN_SYNONYMS):
        chosen = col.selectbox(canonical, options, index=options.index(guessed.get(canonical, "(none)")), key=f"map-{canonical}")
        mapping[canonical] = None if chosen == "(none)" else chosen
    default_name = f"{Path(source).stem} {datetime.now():%Y-%m-%d %H:%M}"
    batch_name = st.text_input("Batch name", value=default_name, max_chars=80)
    if st.button("Predict", type="primary"):
        try:
            items = prepare_items(raw, source, mapping)
            with st.status(f"Predicting {len(items):,} products…", expanded=True) as status:
                _, warnings = ws.predictor.upload_and_predict(  # it keeps the batch it computed for the table below
                    items, batch_name, who=ui.who(), progress=ui.progress_callback("Embedding")
                )
                status.update(label=f"Predicted {len(items):,} products", state="complete")
            for warning in warnings:
                st.warning(ui.md_escape(warning))
            st.session_state["batch"] = batch_name
        except ColdrecError as exc:
            ui.error(exc)
            st.stop()

batches = ws.catalog.batch_names()
if not batches:
    st.info("No predictions yet: upload a file or paste products above, then press **Predict**.")
    st.stop()
current = st.session_state.get("batch")
chosen = st.selectbox("Batch", batches, index=batches.index(current) if current in batches else 0)
batch = ws.predictor.batch_predictions(chosen)
table = batch.frame()
labels = ws.labels.current().set_index("item_id")["category"]
# Before the first label the map gives float NaNs, which take no "" (cast first, then fill).
table["label"] = table["item_id"].map(labels).astype("str").fillna("")
# The flags and the second guess right after the prediction: on a laptop screen they stay in view.
shown = ["title", "top1", "top1_probability", "unsure", "top2", "top2_probability", "label", "novel",
         "top3", "top3_probability", "item_id"]
table["novel"] = [p.novel for p in batch.predictions]
unsure = int(table["unsure"].sum())
st.subheader(f"{len(table):,} predictions · {unsure:,} unsure · {int((table['label'] != '').sum()):,} labelled", anchor=False)
st.caption("Predictions of the current model: every label you save updates them.")
display = table[shown].copy()
# A product far from every category gets no percentage: "none of your categories" says it instead.
display.loc[display["novel"], ["top1_probability", "top2_probability", "top3_probability"]] = float("nan")
selection = ui.table(
    display,
    on_select="rerun",
    selection_mode="single-row",
    key=f"results-{chosen}",
    column_config={
        "title": st.column_config.TextColumn("title", width="medium", pinned=True),
        "top1_probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="percent",
                                                            width="small"),
    },
)
export = table.drop(columns=["top3_json", "novel"])
left, right = st.columns(2)
# Built only when clicked: making a 1,000-row workbook on every rerun costs about a second.
left.download_button(
    "Download CSV", lambda: to_csv_bytes(export), file_name=f"{chosen}.csv", mime="text/csv", on_click="ignore"
)
right.download_button(
    "Download Excel",
    lambda: to_excel_bytes(export),
    on_click="ignore",
    file_name=f"{chosen}.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
rows = [r for r in (selection.selection.rows if selection else []) if r < len(table)]
row = rows[0] if rows else None
if row is None:
    st.caption("Select a row to see why, similar catalog items, and to accept or correct it.")
else:
    item_id = table.loc[row, "item_id"]
    st.subheader(ui.md_escape(table.loc[row, "title"]), anchor=False)
    ui.label_controls(ws, item_id, batch.predictions[row].category, key=f"res-{item_id}", novel=batch.predictions[row].novel)
    ui.prediction_detail(ws, batch, row)
