"""Explore charts: the WebGL embedding map (item ids in customdata, escaped text, highlights),
the confidence histogram and the unsure share per batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from coldrec import charts
from coldrec.charts import confidence_histogram_chart, embedding_map, unsure_share_chart


def _map_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "x": [0.0, 1.0, 2.0, 3.0],
            "y": [1.0, 0.0, 1.0, 0.0],
            "title": ["<b>pan</b>", "boot", "wok", "sandal"],
            "category": ["Cookware", "Footwear", "Cookware", None],
            "confidence": [0.9, 0.4, 0.8, 0.5],
        }
    )


def _ids_by_trace(fig: go.Figure) -> dict[str, list[str]]:
    return {trace.name: [row[0] for row in trace.customdata] for trace in fig.data}


def test_categorical_map_has_one_webgl_trace_per_value_with_item_ids_in_customdata():
    fig = embedding_map(_map_frame(), "category")
    assert all(isinstance(trace, go.Scattergl) for trace in fig.data)
    assert _ids_by_trace(fig) == {"(none)": ["d"], "Cookware": ["a", "c"], "Footwear": ["b"]}
    cookware = fig.data[1]
    assert list(cookware.x) == [0.0, 2.0] and list(cookware.y) == [1.0, 1.0]
    # Titles are shown literally, not as HTML.
    assert cookware.customdata[0][1] == "&lt;b&gt;pan&lt;/b&gt;"
    assert "category: Cookware" in cookware.customdata[0][2]
    assert "customdata[1]" in cookware.hovertemplate
    assert fig.layout.dragmode == "lasso"


def test_numeric_colour_is_one_trace_with_a_colour_scale():
    fig = embedding_map(_map_frame(), "confidence")
    assert len(fig.data) == 1
    assert list(fig.data[0].marker.color) == [0.9, 0.4, 0.8, 0.5]
    assert [row[0] for row in fig.data[0].customdata] == ["a", "b", "c", "d"]
    assert "confidence: 0.90" in fig.data[0].customdata[0][2]


def test_highlighted_items_are_drawn_last_and_larger():
    fig = embedding_map(_map_frame(), "category", highlight=["c", "zzz", "b"])
    top = fig.data[-1]
    assert top.name == "highlighted"
    assert [row[0] for row in top.customdata] == ["b", "c"]
    assert top.marker.size > fig.data[0].marker.size and top.marker.line.width == 2


def test_rare_categories_share_one_trace(monkeypatch):
    monkeypatch.setattr(charts, "MAP_LEGEND_MAX", 2)
    frame = pd.DataFrame(
        {"item_id": list("abcdef"), "x": np.arange(6.0), "y": 0.0, "title": list("abcdef"),
         "category": ["A", "A", "A", "B", "B", "C"]}
    )
    fig = embedding_map(frame, "category")
    assert _ids_by_trace(fig) == {"A": ["a", "b", "c"], "B": ["d", "e"], "(other categories)": ["f"]}


def test_confidence_histogram_chart_stacks_categories():
    hist = pd.DataFrame(
        {"category": ["A", "A", "<i>B</i>"], "bin_start": [0.8, 0.9, 0.4], "bin_end": [0.9, 1.0, 0.5], "items": [3, 5, 2]}
    )
    fig = confidence_histogram_chart(hist)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["&lt;i&gt;B&lt;/i&gt;", "A"]
    a = fig.data[1]
    np.testing.assert_allclose(a.x, [0.85, 0.95])
    assert list(a.y) == [3, 5]
    np.testing.assert_allclose(a.width, [0.1, 0.1])


def test_unsure_share_chart_puts_the_oldest_batch_first():
    frame = pd.DataFrame(
        {"batch": ["feb", None], "items": [2, 5], "predicted": [1, 5], "unsure": [0, 3], "unsure_share": [0.0, 0.6]}
    )
    fig = unsure_share_chart(frame)
    assert list(fig.data[0].x) == ["(no batch)", "feb"]
    assert list(fig.data[0].y) == [0.6, 0.0]
    assert fig.layout.yaxis.tickformat == ".0%"
