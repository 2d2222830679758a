"""Plotly figures for the dashboard (no Streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def category_counts(items: pd.DataFrame) -> go.Figure:
    """Horizontal bars: labelled items per category, plus the unlabelled count."""
    labelled = items["category"].fillna("(unlabelled)").value_counts().rename_axis("category").reset_index(name="items")
    fig = px.bar(labelled.sort_values("items"), x="items", y="category", orientation="h", height=28 * len(labelled) + 80)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None, xaxis_title="items")
    return fig


def top3_bars(top: list[tuple[str, float]]) -> go.Figure:
    """Probabilities of a prediction's top categories."""
    frame = pd.DataFrame(top, columns=["category", "probability"]).iloc[::-1]
    fig = px.bar(frame, x="probability", y="category", orientation="h", range_x=[0, 1], height=60 + 32 * len(frame))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None)
    return fig


def example_counts(counts: pd.DataFrame) -> go.Figure:
    """Labelled examples per category (from :meth:`coldrec.store.Store.label_counts`)."""
    frame = counts.sort_values("examples")
    fig = px.bar(frame, x="examples", y="category", orientation="h", height=24 * len(frame) + 60)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None)
    return fig
