"""Plotly figures for the dashboard (no Streamlit here)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def category_counts(items: pd.DataFrame) -> go.Figure:
    """Stacked bars per category: catalog items, labelled uploads, and a bar of unlabelled uploads."""
    frame = items.assign(
        category=items["category"].fillna("(not labelled yet)").map(_label),
        kind=items["source"].map({"catalog": "catalog", "upload": "new arrivals"}),
    )
    counts = frame.groupby(["category", "kind"]).size().reset_index(name="items")
    order = counts.groupby("category")["items"].sum().sort_values().index.tolist()
    fig = px.bar(
        counts, x="items", y="category", color="kind", orientation="h", height=26 * len(order) + 90,
        category_orders={"category": order[::-1]},
        color_discrete_map={"catalog": "#2f6f5e", "new arrivals": "#e0a03a"},
    )
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None, xaxis_title="items", legend_title=None)
    fig.update_yaxes(automargin=True)
    return fig


def top3_bars(top: list[tuple[str, float]]) -> go.Figure:
    """Probabilities of a prediction's top categories."""
    frame = pd.DataFrame([(_label(c), p) for c, p in top], columns=["category", "probability"]).iloc[::-1]
    fig = px.bar(frame, x="probability", y="category", orientation="h", range_x=[0, 1], height=60 + 32 * len(frame))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None)
    return fig


def example_counts(counts: pd.DataFrame) -> go.Figure:
    """Labelled examples per category (from :meth:`coldrec.store.Store.label_counts`)."""
    frame = counts.assign(category=counts["category"].map(_label)).sort_values("examples")
    fig = px.bar(frame, x="examples", y="category", orientation="h", height=24 * len(frame) + 60)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None)
    fig.update_yaxes(automargin=True)
    return fig


def _label(text: object) -> str:
    """Plotly reads tags such as <a> and <br> in labels: show user text literally."""
    return html.escape(str(text), quote=False)
