"""Plotly figures for the dashboard (no Streamlit here)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
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
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None, xaxis_title="items", legend=LEGEND_BELOW)
    fig.update_yaxes(automargin=True)
    return fig


def category_overview(counts: pd.DataFrame) -> go.Figure:
    """Stacked bars per category of new arrivals labelled / predicted confidently / predicted but
    unsure (from :func:`coldrec.explore.category_overview`); the catalog size is in the axis label.
    Without new arrivals, the catalog per category."""
    kinds = {"labelled": "#2f6f5e", "confident": "#5b8fd6", "unsure": "#e0a03a"}
    if not counts[list(kinds)].to_numpy().any():
        kinds = {"catalog": "#2f6f5e"}
    with_catalog = bool(counts["catalog"].sum())  # without a catalog, "(0)" everywhere says nothing
    frame = counts.assign(name=[f"{_label(c)} ({n:,})" if with_catalog else _label(c)
                                for c, n in zip(counts["category"], counts["catalog"])])
    long = frame.melt(id_vars="name", value_vars=list(kinds), var_name="kind", value_name="items")
    order = frame["name"].tolist()
    fig = px.bar(
        long, x="items", y="name", color="kind", orientation="h", height=24 * len(order) + 90,
        category_orders={"name": order, "kind": list(kinds)}, color_discrete_map=kinds,
    )
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_title=None, xaxis_title="items", legend=LEGEND_BELOW)
    fig.update_yaxes(automargin=True)
    return fig


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """One colour per category, the same on every chart (the map, the histograms): by the
    category's place in the sorted list of all categories."""
    palette = px.colors.qualitative.Dark24  # dark and distinct on white; Alphabet has near-white hues
    return {_label(c): palette[i % len(palette)] for i, c in enumerate(sorted(categories, key=str))}


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


#: Legends of the bar and line charts sit below the plot, left: the modebar (top right, shown on
#: hover) then never covers the first entry (issue 22).
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0.0, "title": {"text": ""}}


def _label(text: object) -> str:
    """Plotly reads tags such as <a> and <br> in labels: show user text literally."""
    return html.escape(str(text), quote=False)


# -- explore: embedding map and analytics charts ----------------------------------------------
#: Categories drawn as their own legend entries on the map; the rest share one grey trace
#: (hundreds of WebGL traces would slow the browser more than the points do).
MAP_LEGEND_MAX = 20
_OTHER = "(other categories)"


def embedding_map(
    frame: pd.DataFrame, colour: str, highlight: Sequence[str] = (), colours: dict[str, str] | None = None,
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> go.Figure:
    """A WebGL scatter of items (item_id, x, y, title and the ``colour`` column).

    A numeric ``colour`` (such as confidence) is a colour scale on one trace; anything else is
    one trace per value (the 20 commonest; the rest in one grey trace). Every point's
    ``customdata[0]`` is its item_id: Streamlit's selection reports ``point_index`` per trace,
    so map selected points back to items through ``customdata[0]``, not the index. Items in
    ``highlight`` are drawn again on top as larger outlined markers (a last trace). ``colours``
    (from :func:`category_colours`) fixes the colour of known values, so a category looks the same
    on every chart. ``density`` (``counts[y, x], x_centres, y_centres`` from
    :func:`coldrec.projection.density_grid`) draws every item as a grey density layer beneath
    the points, for maps that draw only a sample of their items.
    """
    numeric = pd.api.types.is_numeric_dtype(frame[colour]) and not pd.api.types.is_bool_dtype(frame[colour])
    data = frame.assign(_hover=_map_hover(frame, colour), _title=frame["title"].astype(str).map(_label))
    traces: list[go.Scattergl] = []
    if numeric:
        traces.append(
            _map_trace(data, _label(colour), marker={
                "color": data[colour].to_numpy(dtype=float), "colorscale": "Viridis", "size": 5, "opacity": 0.8,
                "colorbar": {"title": {"text": _label(colour)}, "thickness": 12},
            })
        )
    else:
        values = data[colour].map(lambda v: "(none)" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
        order = values.value_counts(sort=True).index.tolist()
        own = sorted(order[:MAP_LEGEND_MAX], key=str)
        palette = px.colors.qualitative.Dark24  # dark and distinct on white; Alphabet has near-white hues
        fixed = colours or {}
        for i, value in enumerate(own):
            rows = data[values == value]
            colour_of = fixed.get(_label(value), "#7f7f7f" if fixed else palette[i % len(palette)])
            traces.append(_map_trace(rows, _label(value), marker={"color": colour_of, "size": 5, "opacity": 0.8}))
        rest = data[~values.isin(own)]
        if len(rest):
            traces.append(_map_trace(rest, _OTHER, marker={"color": "#b0b0b0", "size": 4, "opacity": 0.6}))
    wanted = {str(i) for i in highlight}
    if wanted:
        marked = data[data["item_id"].astype(str).isin(wanted)]
        traces.append(
            _map_trace(marked, "highlighted", marker={
                "color": "#ffd400", "size": 13, "opacity": 1.0, "line": {"color": "#202020", "width": 2},
            })
        )
    layers: list[go.BaseTraceType] = []
    if density is not None and density[0].size:
        counts, x_centres, y_centres = density
        # log1p: a million items pile up in a few cells; log counts keep the sparse edges visible.
        layers.append(go.Heatmap(
            z=np.where(counts > 0, np.log1p(counts), np.nan), x=x_centres, y=y_centres, name="every item (density)",
            colorscale=[[0.0, "#e8e8e8"], [1.0, "#3a3a3a"]], showscale=False, hoverinfo="skip", zsmooth=False,
        ))
    fig = go.Figure(layers + traces)
    fig.update_layout(
        dragmode="lasso",
        clickmode="event+select",
        height=620,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},  # room for the modebar above legend and colour bar
        # The legend starts below the modebar's row (top right): its first entry stays clickable.
        legend={"itemsizing": "constant", "title": {"text": _label(colour)}, "yanchor": "top", "y": 0.93},
        uirevision="embedding_map",  # keep zoom and legend toggles across reruns
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False},
    )
    return fig


def _map_trace(rows: pd.DataFrame, name: str, marker: dict) -> go.Scattergl:
    """One WebGL trace; customdata columns: item_id, escaped title, escaped hover details."""
    return go.Scattergl(
        x=rows["x"].to_numpy(),
        y=rows["y"].to_numpy(),
        mode="markers",
        name=name,
        marker=marker,
        customdata=rows[["item_id", "_title", "_hover"]].astype(str).to_numpy(),
        hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[2]}<extra></extra>",
    )


def _map_hover(frame: pd.DataFrame, colour: str) -> pd.Series:
    """Hover details per point: the category (and prediction) when known, and the colour value."""
    parts = []
    for column in dict.fromkeys(["category", "predicted", colour]):
        if column not in frame:
            continue
        values = frame[column]
        shown = values.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)).map(_label)
        parts.append((_label(column) + ": " + shown).where(values.notna(), _label(column) + ": –"))
    if not parts:
        return pd.Series("", index=frame.index)
    out = parts[0]
    for part in parts[1:]:
        out = out + "<br>" + part
    return out


def confidence_histogram_chart(hist: pd.DataFrame, colours: dict[str, str] | None = None) -> go.Figure:
    """Stacked bars of predictions per confidence bin, one colour per category
    (from :func:`coldrec.analytics.confidence_histogram`; ``colours`` from :func:`category_colours`)."""
    fig = go.Figure()
    for category, rows in hist.groupby("category", sort=True):
        fig.add_bar(
            marker_color=(colours or {}).get(_label(category)),
            x=((rows["bin_start"] + rows["bin_end"]) / 2).to_numpy(),
            y=rows["items"].to_numpy(),
            width=(rows["bin_end"] - rows["bin_start"]).to_numpy(),
            name=_label(category),
            customdata=rows[["bin_start", "bin_end"]].to_numpy(),
            hovertemplate=f"{_label(category)}<br>%{{customdata[0]:.2f}}–%{{customdata[1]:.2f}}: %{{y}} item(s)"
            "<extra></extra>",
        )
    fig.update_layout(
        barmode="stack", height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": "confidence (top probability)", "range": [0, 1]}, yaxis_title="predictions",
        legend=LEGEND_BELOW,
    )
    return fig


def unsure_share_chart(frame: pd.DataFrame) -> go.Figure:
    """Share of unsure predictions per upload batch, oldest batch on the left
    (from :func:`coldrec.analytics.unsure_by_batch`, which lists newest first)."""
    rows = frame.iloc[::-1]
    names = rows["batch"].map(lambda b: "(no batch)" if b is None or pd.isna(b) else _label(b))
    fig = go.Figure(
        go.Bar(
            x=names.to_numpy(),
            y=rows["unsure_share"].to_numpy(dtype=float),
            customdata=rows[["unsure", "predicted", "items"]].to_numpy(),
            hovertemplate="%{x}<br>%{customdata[0]} of %{customdata[1]} predictions unsure "
            "(%{customdata[2]} items)<extra></extra>",
            marker_color="#e0a03a",
        )
    )
    fig.update_layout(
        height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"title": "unsure share", "range": [0, 1], "tickformat": ".0%"}, xaxis={"title": "upload batch", "type": "category"},
    )
    return fig


# -- labelling loop ---------------------------------------------------------------------------
def learning_curves(curves: pd.DataFrame) -> go.Figure:
    """F1 against labelled examples, one line per category (from :func:`coldrec.quality.learning_curves`)."""
    frame = curves.assign(category=curves["category"].map(_label))
    fig = px.line(frame, x="examples", y="f1", color="category", markers=True,
                  color_discrete_sequence=px.colors.qualitative.Dark24)
    fig.update_layout(
        height=360, margin=dict(l=10, r=10, t=30, b=10), yaxis_range=[0, 1.02],
        xaxis_title="labelled examples of the category", yaxis_title="F1 (held-out labels)", legend=LEGEND_BELOW,
    )
    return fig
