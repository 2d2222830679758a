"""The item graph and label propagation, checked by hand on tiny graphs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from coldrec.graph import ItemGraph, build_graph, distributions, extend_graph, propagate
from tests.conftest import unit_rows


def _chain_graph() -> ItemGraph:
    """Six nodes: 0-1-2 and 3-4-5 are two chains joined by the weak edge 2-3.

    W has unit weights on the chains and 0.1 on the bridge; S = D^-1/2 W D^-1/2.
    """
    w = np.zeros((6, 6), dtype=np.float32)
    for a, b, weight in [(0, 1, 1.0), (1, 2, 1.0), (2, 3, 0.1), (3, 4, 1.0), (4, 5, 1.0)]:
        w[a, b] = w[b, a] = weight
    d = 1 / np.sqrt(w.sum(axis=1))
    return ItemGraph(sp.csr_matrix(d[:, None] * w * d[None, :]), np.zeros(2, dtype=np.float32))


def test_propagation_on_a_hand_checked_six_node_graph():
    graph = _chain_graph()
    prior = np.full((6, 2), 0.5, dtype=np.float32)  # no opinion of their own
    f, _ = propagate(graph, prior, [0, 5], [0, 1], alpha=0.9, tolerance=1e-9, max_iterations=2000)
    # The closed form with clamping: solve F_u = alpha S_uu F_u + alpha S_ul Y_l + (1 - alpha) Y0_u.
    s = graph.matrix.toarray()
    unlabelled, labelled = [1, 2, 3, 4], [0, 5]
    y_l = np.array([[1, 0], [0, 1]], dtype=np.float64)
    s_uu, s_ul = s[np.ix_(unlabelled, unlabelled)], s[np.ix_(unlabelled, labelled)]
    f_u = np.linalg.solve(np.eye(4) - 0.9 * s_uu, 0.9 * s_ul @ y_l + 0.1 * prior[unlabelled])
    np.testing.assert_allclose(f[unlabelled], f_u, atol=1e-5)
    np.testing.assert_array_equal(f[[0, 5]], y_l)  # clamped
    p = distributions(f)
    assert p[1, 0] > p[2, 0] > 0.5 > p[3, 0] > p[4, 0]  # each chain follows its own label
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_the_prior_decides_where_no_label_reaches():
    graph = ItemGraph(sp.csr_matrix((3, 3), dtype=np.float32), np.zeros(2, np.float32))  # no edges
    prior = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    f, _ = propagate(graph, prior, [2], [1])
    np.testing.assert_allclose(distributions(f)[:2], prior[:2], atol=1e-6)
    assert distributions(f)[2].tolist() == [0.0, 1.0]


def test_warm_started_local_update_reaches_the_full_solution():
    rng = np.random.default_rng(0)
    x = unit_rows(rng, 300, 8)
    graph = build_graph(x)
    prior = rng.dirichlet(np.ones(4), size=300).astype(np.float32)
    rows, classes = np.array([3, 50, 120]), np.array([0, 1, 2])
    before, _ = propagate(graph, prior, rows, classes, tolerance=1e-7, max_iterations=500)
    rows2, classes2 = np.append(rows, 200), np.append(classes, 3)
    local, _ = propagate(graph, prior, rows2, classes2, start=before, changed=np.array([200]), tolerance=1e-7, max_iterations=500)
    full, _ = propagate(graph, prior, rows2, classes2, tolerance=1e-7, max_iterations=500)
    np.testing.assert_allclose(local, full, atol=1e-4)
    assert not np.allclose(before, full, atol=1e-3)  # the new label did change something


def test_graph_is_symmetric_normalised_and_links_look_alikes():
    rng = np.random.default_rng(1)
    centres = unit_rows(rng, 3, 16)
    x = np.repeat(centres, 20, axis=0) + 0.05 * rng.normal(size=(60, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = build_graph(x, k=5)
    s = graph.matrix.toarray()
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    assert (np.diag(s) == 0).all()
    group = np.repeat(np.arange(3), 20)
    rows, cols = np.nonzero(s)
    assert (group[rows] == group[cols]).mean() > 0.95  # edges stay inside a cluster
    assert np.abs(np.linalg.eigvalsh(s)).max() <= 1.0 + 1e-5  # so alpha < 1 converges


def test_extending_the_graph_equals_building_it_when_no_old_neighbourhood_changes():
    rng = np.random.default_rng(2)
    x = unit_rows(rng, 80, 12)
    far = -x[:3] + 0.01 * rng.normal(size=(3, 12)).astype(np.float32)  # new items far from most
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    old = build_graph(x, k=5)
    both = np.vstack([x, far])
    from coldrec.neighbours import top_k_cosine

    nb, _ = top_k_cosine(far, both, 6)
    grown = extend_graph(old, both, nb, k=5)
    assert grown.n == 83
    np.testing.assert_allclose(grown.matrix.toarray()[:80, :80] > 0, old.matrix.toarray() > 0)
    assert grown.matrix[80:].nnz > 0  # the new items are linked


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n):
    graph = build_graph(np.ones((n, 4), dtype=np.float32) / 2)
    assert graph.n == n
    f, _ = propagate(graph, np.full((n, 2), 0.5, np.float32), [], [])
    assert f.shape == (n, 2)


def test_a_paused_propagation_equals_an_unpaused_one_and_pauses_between_blocks(monkeypatch):
    import coldrec.graph as graph_module
    from coldrec.graph import build_graph, propagate

    monkeypatch.setattr(graph_module, "_PAUSE_ROWS", 7)  # several blocks per sweep
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = build_graph(x, k=4)
    prior = rng.dirichlet(np.ones(3), size=40).astype(np.float32)
    pauses = []
    plain, n_plain = propagate(graph, prior, [0, 5], [1, 2])
    paused, n_paused = propagate(graph, prior, [0, 5], [1, 2], pause=lambda: pauses.append(1))
    np.testing.assert_allclose(paused, plain, atol=1e-6)
    assert n_paused == n_plain and len(pauses) == n_plain * 6  # 40 rows in blocks of 7: six per sweep


def test_a_second_view_mixes_its_cosine_into_every_edge():
    """Four items: the embedding pairs 0 with 1, the features pair 0 with 2; with equal weights an
    edge's weight is max((cos_embedding + cos_features) / 2, 0)^3, computed here by hand."""
    from coldrec.graph import FEATURE_WEIGHT, GRAPH_POWER, centre_vectors

    rng = np.random.default_rng(3)
    x = unit_rows(rng, 4, 6)
    features = unit_rows(rng, 4, 5)
    graph = build_graph(x, k=3, features=features)  # k = n - 1: every pair is an edge candidate
    c = centre_vectors(x, x.mean(axis=0))
    mixed = (1 - FEATURE_WEIGHT) * (c @ c.T) + FEATURE_WEIGHT * (features @ features.T)
    expected = np.maximum(mixed, 0.0) ** GRAPH_POWER
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(graph.weights.toarray(), expected, atol=1e-5)
    # Features that copy the embedding's centred view change nothing.
    same = build_graph(x, k=3, features=c)
    np.testing.assert_allclose(same.weights.toarray(), build_graph(x, k=3).weights.toarray(), atol=1e-5)


def test_the_exact_search_runs_on_the_mixed_similarity():
    """Items whose embeddings are noise but whose features come in pairs: each item's one
    neighbour (k = 1) is its pair, found only by searching the mixed similarity."""
    rng = np.random.default_rng(4)
    x = unit_rows(rng, 8, 32)
    pair = unit_rows(rng, 4, 16)
    features = np.repeat(pair, 2, axis=0)
    graph = build_graph(x, k=1, features=features)
    partner = np.arange(8) ^ 1
    assert (graph.weights.toarray().argmax(axis=1) == partner).all()


def test_extending_a_mixed_graph_equals_building_it():
    rng = np.random.default_rng(5)
    x = unit_rows(rng, 12, 6)
    features = unit_rows(rng, 12, 5)
    old = build_graph(x[:8], k=11, features=features[:8])
    nb = np.array([[r for r in range(12) if r != own] for own in range(8, 12)])
    grown = extend_graph(old, x, nb, k=11, features=features)
    full = build_graph(x, k=11, centre=old.centre, features=features)
    np.testing.assert_allclose(grown.weights.toarray(), full.weights.toarray(), atol=1e-5)


def _planted(n: int = 60, planted_rank: int = 20) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Items whose cosine to item 0 is set exactly (0.95 down to 0.55 for items 1 to 30, about 0
    beyond) and whose features are one-hot and distinct, except the planted item's, which equals
    item 0's. The planted item is item 0's ``planted_rank``-th embedding neighbour (outside the
    11 an index kept before, inside 31), and the best edge by the mixed similarity. Twelve decoys
    close to the planted item (cosine about 0.9, and 0.3 to item 0) fill its own 11 nearest, so
    without the wide table neither end of the planted edge finds the other."""
    rng = np.random.default_rng(7)
    dim = 16
    cos = np.concatenate([[1.0], np.linspace(0.95, 0.55, 30), np.zeros(n - 31)])
    rest = rng.standard_normal((n, dim - 1))
    rest /= np.linalg.norm(rest, axis=1, keepdims=True)
    x = np.hstack([cos[:, None], np.sqrt(1 - cos[:, None] ** 2) * rest]).astype(np.float32)
    x[31:] = unit_rows(rng, n - 31, dim)  # unrelated items
    x[31:, 0] = 0.0
    x[31:] /= np.linalg.norm(x[31:], axis=1, keepdims=True)
    decoys = np.arange(31, 43)
    x[decoys] = 0.3 * np.eye(dim, dtype=np.float32)[0] + 0.95 * np.hstack([[0.0], rest[planted_rank]])
    x[decoys] += 0.02 * rng.standard_normal((len(decoys), dim)).astype(np.float32)
    x[decoys] /= np.linalg.norm(x[decoys], axis=1, keepdims=True)
    features = np.eye(n, dtype=np.float32)
    features[planted_rank] = features[0]
    return x, features, planted_rank, float(cos[planted_rank])


def test_the_wide_candidate_table_lets_the_mixed_similarity_find_a_planted_neighbour():
    from coldrec.graph import FEATURE_WEIGHT, GRAPH_CANDIDATES, GRAPH_K, GRAPH_POWER
    from coldrec.neighbours import VectorIndex

    assert GRAPH_CANDIDATES == 3 * GRAPH_K + 1
    x, features, planted, planted_cos = _planted()
    index = VectorIndex.build([str(i) for i in range(len(x))], x)
    centre = np.zeros(x.shape[1], dtype=np.float32)  # cosines as planted (no centring)
    narrow = build_graph(x, neighbours=index.neighbour_table(GRAPH_K + 1), centre=centre, features=features)
    wide = build_graph(x, neighbours=index.neighbour_table(GRAPH_CANDIDATES), centre=centre, features=features)
    assert narrow.weights[0, planted] == 0  # outside the 11 embedding neighbours: never a candidate
    expected = ((1 - FEATURE_WEIGHT) * planted_cos + FEATURE_WEIGHT * 1.0) ** GRAPH_POWER
    assert wide.weights[0, planted] == pytest.approx(expected, rel=1e-5)
    # Item 0 keeps GRAPH_K edges of its own: the planted one and its 9 nearest by embedding.
    own = np.argsort(-wide.weights[0].toarray().ravel(), kind="stable")[:GRAPH_K]
    assert set(own.tolist()) == {planted, *range(1, GRAPH_K)}
    exact = build_graph(x, centre=centre, features=features)  # the exact search on the mixed similarity
    np.testing.assert_allclose(wide.weights[0].toarray(), exact.weights[0].toarray(), atol=1e-6)


def test_a_large_workspace_graph_and_an_upload_take_the_wide_candidates(monkeypatch):
    """The estimator's real large-workspace path (faiss HNSW index, graph from its kept table) and
    an upload extending it both see the planted neighbour."""
    from coldrec import estimator as estimator_module
    from coldrec import neighbours as nb_module
    from coldrec.estimator import ColdStartClassifier
    from coldrec.graph import extend_graph
    from coldrec.neighbours import VectorIndex

    monkeypatch.setattr(nb_module, "EXACT_MAX_ITEMS", 0)
    monkeypatch.setattr(estimator_module, "EXACT_MAX_ITEMS", 0)
    x, features, planted, _ = _planted()
    centre = np.zeros(x.shape[1], dtype=np.float32)
    index = VectorIndex.build([str(i) for i in range(len(x))], x)
    assert index.kind == "faiss-hnsw"
    graph = ColdStartClassifier()._graph(x, index, centre, features)
    assert graph.weights[0, planted] > 0
    # An upload: item 0 arrives last (the old graph lacks it); its edges come from the same table width.
    order = np.r_[1 : len(x), 0]
    x2, f2 = x[order], features[order]
    grown_index = VectorIndex.build([str(i) for i in order[:-1]], x2[:-1])
    old = ColdStartClassifier()._graph(x2[:-1], grown_index, centre, f2[:-1])
    grown_index.update(["0"], x2[-1:])
    new_row = len(x) - 1
    nb, _ = grown_index.neighbour_table(estimator_module.GRAPH_CANDIDATES, rows=np.array([new_row]))
    assert nb.shape[1] == 31
    grown = extend_graph(old, x2, nb, features=f2)
    assert grown.weights[new_row, planted - 1] > 0  # the planted item is row planted - 1 after the reorder
