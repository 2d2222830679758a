"""2-D maps: methods, stable keys, computing once and reading back from the store, display samples."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from coldrec.errors import ConfigError
from coldrec import projection
from coldrec.projection import available_methods, project, projection_key, sample_for_display, stored_projection
from tests.conftest import unit_rows


def test_available_methods_list_umap_only_when_installed():
    methods = available_methods()
    assert methods[:2] == ["pca", "tsne"]
    assert ("umap" in methods) == (importlib.util.find_spec("umap") is not None)


def test_pca_of_points_in_a_plane_keeps_their_distances():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(16, 2)))[0].T  # two orthonormal directions in 16-d
    plane = rng.normal(size=(40, 2)) @ basis
    xy = project(plane, "pca")
    assert xy.shape == (40, 2)

    def distances(a: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - a[None], axis=-1)

    np.testing.assert_allclose(distances(xy), distances(plane), atol=1e-4)


def test_tsne_is_seeded_and_capped(monkeypatch):
    x = unit_rows(np.random.default_rng(1), 40, 8)
    first, again = project(x, "tsne", seed=3), project(x, "tsne", seed=3)
    assert first.shape == (40, 2) and np.isfinite(first).all()
    np.testing.assert_allclose(first, again)
    monkeypatch.setattr(projection, "TSNE_MAX_POINTS", 39)
    with pytest.raises(ConfigError, match="t-SNE is limited to 39 points"):
        project(x, "tsne")
    assert project(x, "pca").shape == (40, 2)  # PCA has no cap


def test_unknown_methods_and_tiny_inputs():
    if "umap" not in available_methods():
        with pytest.raises(ConfigError, match="umap"):
            project(np.eye(4), "umap")
    with pytest.raises(ConfigError, match="unknown"):
        project(np.eye(4), "mds")
    assert project(np.zeros((0, 5)), "pca").shape == (0, 2)
    assert project(np.ones((1, 5)), "tsne").tolist() == [[0.0, 0.0]]
    two = project(np.array([[1.0, 0, 0], [0, 1.0, 0]]), "pca")
    assert np.linalg.norm(two[0] - two[1]) == pytest.approx(np.sqrt(2))


def test_projection_key_depends_on_the_set_of_ids_model_and_method():
    key = projection_key("mini", "pca", ["a", "b", "c"])
    assert key == projection_key("mini", "pca", ["c", "a", "b"])
    assert key != projection_key("mini", "pca", ["a", "b"])
    assert key != projection_key("other", "pca", ["a", "b", "c"])
    assert key != projection_key("mini", "tsne", ["a", "b", "c"])
    assert key.startswith("pca:")


def test_stored_projection_is_computed_once_then_read_back(store, monkeypatch):
    x = unit_rows(np.random.default_rng(2), 30, 8)
    ids = [f"i{n}" for n in range(30)]
    calls = []
    real = projection.project

    def counting(vectors, method="pca", seed=0):
        calls.append(method)
        return real(vectors, method, seed)

    monkeypatch.setattr(projection, "project", counting)
    first = stored_projection(store, "mini", "pca", ids, x)
    assert first.columns.tolist() == ["item_id", "x", "y"] and first["item_id"].tolist() == ids
    assert calls == ["pca"]
    # Same item set in another order: read from the store, returned in the order asked for.
    again = stored_projection(store, "mini", "pca", ids[::-1], x[::-1])
    assert calls == ["pca"]
    pd.testing.assert_frame_equal(again, first.iloc[::-1].reset_index(drop=True))
    assert len(store.get_projection(projection_key("mini", "pca", ids))) == 30
    # Another item set (or model) is a new map.
    stored_projection(store, "mini", "pca", ids[:20], x[:20])
    stored_projection(store, "other", "pca", ids, x)
    assert calls == ["pca", "pca", "pca"]
    with pytest.raises(ValueError, match="repeat"):
        stored_projection(store, "mini", "pca", ["a", "a"], x[:2])


def _frame(n_catalog: int, n_upload: int) -> pd.DataFrame:
    n = n_catalog + n_upload
    return pd.DataFrame(
        {"item_id": [f"i{k}" for k in range(n)], "source": ["catalog"] * n_catalog + ["upload"] * n_upload,
         "x": np.arange(n, dtype=float), "y": 0.0}
    )


def test_sample_for_display_keeps_highlights_and_source_shares():
    frame = _frame(70, 30)
    keep = ["i0", "i1", "i99"]  # two catalog items and one upload
    shown, sampled = sample_for_display(frame, max_points=10, keep=keep, seed=5)
    assert sampled and len(shown) == 10
    assert set(keep) <= set(shown["item_id"])
    assert shown.index.is_monotonic_increasing  # original order
    # Budget 7 over 68 catalog / 29 upload rows left: 4.91 -> 5, 2.09 -> 2 (largest remainder).
    assert shown["source"].value_counts().to_dict() == {"catalog": 7, "upload": 3}
    again, _ = sample_for_display(frame, max_points=10, keep=keep, seed=5)
    pd.testing.assert_frame_equal(shown, again)
    other, _ = sample_for_display(frame, max_points=10, keep=keep, seed=6)
    assert set(other["item_id"]) != set(shown["item_id"])


def test_sample_for_display_leaves_small_frames_and_handles_no_source_column():
    frame = _frame(5, 5)
    same, sampled = sample_for_display(frame, max_points=10)
    assert not sampled and same is frame
    no_source = frame.drop(columns="source")
    shown, sampled = sample_for_display(no_source, max_points=4, seed=1)
    assert sampled and len(shown) == 4 and shown["item_id"].is_unique
    # More highlights than the limit: all highlights, nothing else.
    many = [f"i{k}" for k in range(6)]
    shown, sampled = sample_for_display(frame, max_points=4, keep=many)
    assert sampled and shown["item_id"].tolist() == many


def test_points_in_polygon_follows_a_concave_outline():
    from coldrec.projection import points_in_polygon

    # An L shape: the square [0,2]x[0,2] without its top-right quarter.
    lx, ly = [0, 2, 2, 1, 1, 0], [0, 0, 1, 1, 2, 2]
    x = np.array([0.5, 1.5, 1.5, 0.5, 3.0, -0.1])
    y = np.array([0.5, 0.5, 1.5, 1.5, 0.5, 1.0])
    assert points_in_polygon(x, y, lx, ly).tolist() == [True, True, False, True, False, False]
    assert not points_in_polygon(x, y, [0, 1], [0, 1]).any()  # two vertices enclose nothing


def test_items_in_selection_reads_boxes_and_lassos_and_ignores_malformed_shapes():
    from coldrec.projection import items_in_selection

    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, 5_000), rng.uniform(-1, 1, 5_000)
    box = {"box": [{"xref": "x", "yref": "y", "x": [0.5, 0.0], "y": [0.0, 0.5]}], "lasso": []}
    assert items_in_selection(x, y, box).tolist() == ((x >= 0) & (x <= 0.5) & (y >= 0) & (y <= 0.5)).tolist()
    triangle = {"lasso": [{"x": [-1, 0, -1], "y": [-1, -1, 0]}]}
    chosen = items_in_selection(x, y, triangle)
    assert chosen.tolist() == ((x <= 0) & (y <= 0) & (x + y <= -1)).tolist()
    both = items_in_selection(x, y, {**box, **triangle})
    assert both.sum() == items_in_selection(x, y, box).sum() + chosen.sum()
    for hostile in (None, "box", {"box": "x"}, {"box": [{"x": ["0", 1], "y": [0, 1]}]},
                    {"lasso": [{"x": [0, float("nan"), 1], "y": [0, 1, 0]}]}, {"lasso": [{"x": [0, 1], "y": [0]}]},
                    {"box": [{"x": [True, 1], "y": [0, 1]}]}, {"lasso": [[0, 1, 2]]}):
        assert not items_in_selection(x, y, hostile).any(), hostile


def test_density_grid_counts_every_point():
    from coldrec.projection import density_grid

    rng = np.random.default_rng(1)
    counts, xc, yc = density_grid(rng.normal(size=1_234), rng.normal(size=1_234), bins=20)
    assert counts.shape == (20, 20) and counts.sum() == 1_234
    assert len(xc) == len(yc) == 20 and (np.diff(xc) > 0).all()


def test_pca_of_many_points_is_fitted_on_a_sample_and_matches_the_full_fit(monkeypatch):
    import coldrec.projection as projection

    rng = np.random.default_rng(2)
    x = rng.normal(size=(3_000, 8)) * np.array([5.0, 3.0, 1, 1, 1, 1, 1, 1])
    full = projection.project(x, "pca")
    monkeypatch.setattr(projection, "PCA_FIT_SAMPLE", 500)
    sampled = projection.project(x, "pca")
    assert sampled.shape == (3_000, 2)
    for axis in range(2):  # the same axes (up to sign), estimated from a sixth of the points
        assert abs(np.corrcoef(full[:, axis], sampled[:, axis])[0, 1]) > 0.99
