"""Audit: every action (who, when, what, from → to, source), filterable and exportable, and the
agreement between labellers where an item has labels from two people."""

from datetime import datetime, time, timedelta

import streamlit as st

from coldrec import audit, ui
from coldrec.export import to_csv_bytes, to_excel_bytes

ws = ui.workspace()
st.title("Audit")
st.caption("Every label (manual, accepted, bulk, look-alikes, import, undo), import, category change, model switch "
           "and role change, newest first. Labels record the signed-in person when sign-in is on.")

choices = audit.audit_filters(ws)
if not choices["who"]:
    st.info("Nothing has happened in this database yet: load the demo or import a catalog on **Overview**, "
            "and every action will be listed here.", icon="👋")
    ui.page_link("pages/overview.py", "Overview", icon="🏠")
    st.stop()

ANY = "(any)"
a, b, c = st.columns(3)
who = a.selectbox("Who", [ANY, *choices["who"]])
action = b.selectbox("Action", [ANY, *choices["action"]])
source = c.selectbox("Source", [ANY, *choices["source"]])
d, e = st.columns([1, 2])
days = d.date_input("Between", value=(), help="Leave empty for all time.")
text = e.text_input("Item, title, file, category or model contains", max_chars=200)
start = end = None
if isinstance(days, (tuple, list)) and len(days) == 2:
    start, end = datetime.combine(days[0], time()), datetime.combine(days[1], time()) + timedelta(days=1)
filters = dict(who=None if who == ANY else who, action=None if action == ANY else action,
               source=None if source == ANY else source, start=start, end=end, text=text)
shown = audit.audit_log(ws, limit=audit.SHOWN + 1, **filters)
more = len(shown) > audit.SHOWN
st.caption(f"Showing the newest {audit.SHOWN:,} matching actions: the export holds them all." if more
           else f"{len(shown):,} matching action(s).")
ui.table(shown.head(audit.SHOWN).rename(columns={"done_at": "when", "before": "from", "after": "to"}))
left, right = st.columns(2)
# Spreadsheet-safe: a category or file name starting with "=" is not run as a formula (coldrec/export.py).
left.download_button("Download as CSV", lambda: to_csv_bytes(audit.audit_log(ws, **filters)),
                     file_name="coldrec-audit.csv", mime="text/csv", on_click="ignore")
right.download_button("Download as Excel", lambda: to_excel_bytes(audit.audit_log(ws, **filters), sheet="audit"),
                      file_name="coldrec-audit.xlsx", on_click="ignore",
                      mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

st.subheader("Agreement between labellers", anchor=False)
agreement = audit.agreement(ws)
if agreement.empty:
    st.caption("No item has labels from two people yet. When two people label the same item (a conflict saved "
               "anyway, or a second opinion), their agreement per category shows here.")
else:
    st.caption("Over the items labelled by two people or more (each person's latest label; undone actions and "
               "imports do not count): of the items where someone chose the category, how many everyone labelled alike.")
    ui.table(agreement.rename(columns={"items": "items with two labellers", "agreed": "all agreed"}),
             column_config={"agreement": st.column_config.NumberColumn("agreement", format="percent")})
