"""Emerging clusters are fine enough to name (issue 22, item 11): the silhouette chooses k from a
range that starts at n / 25, so two departments of six product kinds each are not two clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coldrec.analytics import cluster_k_range, emerging_clusters


def _departments(seed: int = 0) -> np.ndarray:
    """300 unit vectors: 2 far-apart departments, each of 6 product kinds of 25 look-alikes."""
    rng = np.random.default_rng(seed)
    dim = 64
    rows = []
    for _ in range(2):
        department = rng.normal(size=dim) * 3.0
        for _ in range(6):
            kind = department + rng.normal(size=dim) * 0.6
            rows.append(kind + rng.normal(size=(25, dim)) * 0.25)
    x = np.vstack(rows).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_k_range_starts_at_a_nameable_cluster_size():
    assert cluster_k_range(5) == (1, 1)
    assert cluster_k_range(30) == (2, 10)
    assert cluster_k_range(72) == (3, 12)  # the demo's new arrivals
    assert cluster_k_range(284) == (12, 29)  # the unlabelled toys
    assert cluster_k_range(10_000) == (40, 40)


def test_two_departments_of_six_kinds_come_out_as_the_kinds():
    vectors = _departments()
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(len(vectors))], "title": ["toy"] * len(vectors)})
    report = emerging_clusters(items, vectors)
    assert len(report.clusters) >= 12 and report.clusters["size"].max() <= 50, report.clusters[["cluster", "size"]]
    truth = np.repeat(np.arange(12), 25)
    labels = report.members["cluster"].to_numpy()
    purity = sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / len(truth)
    assert purity >= 0.95
    # Seeded: the same clusters every time.
    again = emerging_clusters(items, vectors)
    assert report.members["cluster"].tolist() == again.members["cluster"].tolist()


def test_the_silhouette_alone_would_have_made_two_clusters_of_them():
    from coldrec.analytics import _choose_k

    vectors = _departments()
    assert _choose_k(vectors, seed=0, k_range=(2, 12)) == 2  # the range before issue 22: one per department
    assert _choose_k(vectors, seed=0) == 12
