"""The audit trail: every action, who did it, when, and what changed (issue 24).

Labels are the store's append-only ``label_events`` (each with who, source and the action it
belongs to); everything else (imports, categories, targets, model switches, roles) is in
``audit_events``. :func:`audit_log` reads both as one table, newest first. Also here:
:func:`agreement` between labellers where an item has labels from two people or more. Functions
take a :class:`~coldrec.workspace.Workspace`, as :mod:`coldrec.labelling` does, so pages never reach its store.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

AUDIT_COLUMNS = ["done_at", "who", "action", "source", "subject", "title", "before", "after"]
#: Rows the Audit page shows at most (the export holds every row that matches).
SHOWN = 2_000

#: A label event's source as the trail says it: the store's ``propagated`` is ``look-alikes``, and a
#: manual action on several items (a bulk label on Explore, a label table saved) is ``bulk``.
_SOURCE = """CASE WHEN e.source = 'propagated' THEN 'look-alikes'
                 WHEN e.source = 'manual' AND e.action_id IS NOT NULL
                      AND count(*) OVER (PARTITION BY e.action_id) > 1 THEN 'bulk'
                 ELSE e.source END"""
_LOG_SQL = f"""
WITH labels AS (
    SELECT e.event_id, e.labelled_at AS done_at, e.who, 'label' AS action, {_SOURCE} AS source,
           e.item_id AS subject, i.title,
           lag(e.category) OVER (PARTITION BY e.item_id ORDER BY e.event_id) AS before,
           e.category AS after
    FROM label_events e LEFT JOIN items i USING (item_id)
), everything AS (
    SELECT 0 AS kind, event_id, done_at, who, action, source, subject, title, before, after FROM labels
    UNION ALL
    SELECT 1 AS kind, event_id, done_at, who, action, action AS source, subject, NULL AS title, before, after
    FROM audit_events
)
SELECT done_at, who, action, source, subject, title, before, after FROM everything
WHERE ($who IS NULL OR who = $who)
  AND ($action IS NULL OR action = $action)
  AND ($source IS NULL OR source = $source)
  AND ($start IS NULL OR done_at >= $start)
  AND ($end IS NULL OR done_at < $end)
  AND ($text IS NULL OR contains(lower(coalesce(subject, '') || ' ' || coalesce(title, '') || ' '
                                      || coalesce(before, '') || ' ' || coalesce(after, '')), lower($text)))
ORDER BY done_at DESC, kind DESC, event_id DESC
"""


def audit_log(
    ws: object,
    who: str | None = None,
    action: str | None = None,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Every action, newest first: done_at, who, action (``label``, ``import``, ``category``, ``target``,
    ``model``, ``role``), source (for labels: manual, accepted, bulk, look-alikes, import, undo; else
    the action), subject (the item id, file, category, model or email), title (of a labelled
    item), before, after (a label's ``before`` is the item's previous label). Every filter is a
    query parameter; ``text`` matches subject, title, before or after, ignoring case."""
    sql = _LOG_SQL + (f" LIMIT {int(limit)}" if limit is not None else "")
    params = {"who": who or None, "action": action or None, "source": source or None, "start": start, "end": end,
              "text": (text or "").strip() or None}
    frame = ws.store.query_df(sql, params).reindex(columns=AUDIT_COLUMNS)  # type: ignore[attr-defined]
    for column in ("subject", "title", "before", "after"):  # a missing value is None, not NaN
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def audit_filters(ws: object) -> dict[str, list[str]]:
    """The values each filter can take: who, action, source (sorted)."""
    store = ws.store  # type: ignore[attr-defined]
    rows = store.query_df(  # type: ignore[attr-defined]
        f"""SELECT 'who' AS f, who AS v FROM label_events UNION SELECT 'who', who FROM audit_events
            UNION SELECT DISTINCT 'source', {_SOURCE} FROM label_events e
            UNION SELECT 'action', action FROM audit_events UNION SELECT 'source', action FROM audit_events"""
    )
    out = {f: sorted(rows.loc[rows["f"] == f, "v"].astype(str)) for f in ("who", "action", "source")}
    if store.label_version():  # type: ignore[attr-defined]  # any label event at all
        out["action"] = sorted({"label", *out["action"]})
    return out


#: Label sources that are one person's judgement of the item (not a file, not an undo).
JUDGEMENTS = ("manual", "accepted", "propagated")


def agreement(ws: object) -> pd.DataFrame:
    """Agreement between labellers, per category, over the items labelled by two people or more:
    each person's latest label of the item counts (undone actions, undos and imports do not).
    Columns: category, items (double-labelled items where someone chose the category), agreed
    (of those, items where everyone chose the same), agreement (agreed / items). Empty when no
    item has two labellers."""
    return ws.store.query_df(  # type: ignore[attr-defined]
        """WITH live AS (
               SELECT item_id, who, category,
                      row_number() OVER (PARTITION BY item_id, who ORDER BY event_id DESC) AS rn
               FROM label_events
               WHERE source IN (SELECT unnest(?::VARCHAR[]))
                 AND coalesce(action_id, -1) NOT IN (SELECT action_id FROM undone_actions)
           ), latest AS (SELECT item_id, who, category FROM live WHERE rn = 1 AND category IS NOT NULL),
           shared AS (
               SELECT item_id, count(DISTINCT category) = 1 AS agreed FROM latest
               GROUP BY item_id HAVING count(DISTINCT who) >= 2
           )
           SELECT l.category, count(DISTINCT s.item_id) AS items,
                  count(DISTINCT s.item_id) FILTER (WHERE s.agreed) AS agreed,
                  count(DISTINCT s.item_id) FILTER (WHERE s.agreed) / count(DISTINCT s.item_id) AS agreement
           FROM shared s JOIN latest l USING (item_id)
           GROUP BY l.category ORDER BY l.category""",
        [list(JUDGEMENTS)],
    )


__all__ = ["AUDIT_COLUMNS", "JUDGEMENTS", "SHOWN", "agreement", "audit_filters", "audit_log"]
