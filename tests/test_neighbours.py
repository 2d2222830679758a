"""Tests for coldrec.neighbours: exact cosine top-k and the id-keyed index."""

from __future__ import annotations

import numpy as np
import pytest

from coldrec.neighbours import NeighbourIndex, top_k_cosine


def _unit(rng, n, dim):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check_against_brute_force(queries, index, k):
    idx, sims = top_k_cosine(queries, index, k)
    kk = min(k, len(index))
    assert idx.shape == sims.shape == (len(queries), kk)
    assert idx.dtype == np.int64 and sims.dtype == np.float32

    full = queries.astype(np.float64) @ index.astype(np.float64).T
    order = np.argsort(-full, axis=1, kind="stable")
    expected_sims = np.take_along_axis(full, order[:, :kk], axis=1)
    # same similarities as brute force, best first
    np.testing.assert_allclose(sims, expected_sims, atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 0)
    # each returned similarity belongs to the returned index, with no repeats
    np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), sims, atol=1e-5)
    assert all(len(set(row.tolist())) == kk for row in idx)
    assert idx.min() >= 0 and idx.max() < len(index)
    # identical indices wherever the brute-force ranking has no near-ties
    sorted_sims = np.take_along_axis(full, order[:, : kk + 1], axis=1)
    gaps = -np.diff(sorted_sims, axis=1)
    clear = gaps.min(axis=1) > 1e-4 if gaps.size else np.ones(len(queries), dtype=bool)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(idx[clear], order[clear, :kk])
    return idx, sims


@pytest.mark.parametrize("k", [1, 3, 10, 49, 50, 51, 200])
def test_top_k_matches_brute_force(k):
    rng = np.random.default_rng(k)
    _check_against_brute_force(_unit(rng, 40, 16), _unit(rng, 50, 16), k)


def test_k_larger_than_index_returns_every_row_sorted():
    rng = np.random.default_rng(1)
    queries, index = _unit(rng, 5, 8), _unit(rng, 7, 8)
    idx, sims = top_k_cosine(queries, index, 100)
    assert idx.shape == (5, 7)
    for row in idx:
        assert sorted(row.tolist()) == list(range(7))
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_queries_in_several_chunks():
    rng = np.random.default_rng(2100)
    queries, index = _unit(rng, 2100, 8), _unit(rng, 300, 8)
    idx, sims = _check_against_brute_force(queries, index, 5)
    # rows past the first chunk of 2048 are filled in correctly too
    tail = slice(2048, 2100)
    full_tail = queries[tail].astype(np.float64) @ index.astype(np.float64).T
    np.testing.assert_allclose(sims[tail, 0], full_tail.max(axis=1), atol=1e-5)


def test_queries_in_chunks_with_k_at_least_n():
    rng = np.random.default_rng(7)
    queries, index = _unit(rng, 2100, 8), _unit(rng, 6, 8)
    _check_against_brute_force(queries, index, 6)
    _check_against_brute_force(queries, index, 9)


def test_a_query_finds_itself_first():
    rng = np.random.default_rng(3)
    index = _unit(rng, 30, 12)
    idx, sims = top_k_cosine(index, index, 3)
    assert idx[:, 0].tolist() == list(range(30))
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_accepts_lists_and_float64():
    idx, sims = top_k_cosine([[1.0, 0.0]], np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]), 2)
    assert idx.tolist() == [[1, 0]]
    np.testing.assert_allclose(sims, [[1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize(
    "n_queries,n_index,k,shape",
    [(0, 5, 3, (0, 0)), (4, 0, 3, (4, 0)), (4, 5, 0, (4, 0)), (0, 0, 3, (0, 0)), (3, 5, -1, (3, 0))],
)
def test_empty_inputs(n_queries, n_index, k, shape):
    rng = np.random.default_rng(0)
    queries = _unit(rng, n_queries, 4) if n_queries else np.zeros((0, 4), dtype=np.float32)
    index = _unit(rng, n_index, 4) if n_index else np.zeros((0, 4), dtype=np.float32)
    idx, sims = top_k_cosine(queries, index, k)
    assert idx.shape == shape and sims.shape == shape
    assert idx.dtype == np.int64 and sims.dtype == np.float32


def _index(n=10, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return NeighbourIndex(ids=[f"item{i}" for i in range(n)], vectors=_unit(rng, n, dim))


def test_search_without_exclude_returns_the_item_itself_first():
    index = _index()
    results = index.search(index.vectors[[2, 5]], k=3)
    assert [r[0][0] for r in results] == ["item2", "item5"]
    assert all(len(r) == 3 for r in results)
    assert results[0][0][1] == pytest.approx(1.0, abs=1e-5)


def test_search_excludes_own_id_and_still_returns_k():
    index = _index()
    queries = index.vectors[[2, 5, 9]]
    own = ["item2", "item5", "item9"]
    results = index.search(queries, k=4, exclude=own)
    assert [len(r) for r in results] == [4, 4, 4]
    for hits, me, q in zip(results, own, queries):
        ids = [i for i, _ in hits]
        assert me not in ids
        assert len(set(ids)) == 4
        sims = [s for _, s in hits]
        assert sims == sorted(sims, reverse=True)
        assert all(isinstance(s, float) for s in sims)
        # the hits are the true 4 nearest other items
        others = [(float(q @ v), i) for i, v in zip(index.ids, index.vectors) if i != me]
        assert ids == [i for _, i in sorted(others, reverse=True)[:4]]


def test_search_exclude_of_an_id_not_in_the_top_returns_k():
    index = _index()
    results = index.search(index.vectors[[0]], k=3, exclude=["not-an-item"])
    assert [i for i, _ in results[0]] == [i for i, _ in index.search(index.vectors[[0]], k=3)[0]]
    assert len(results[0]) == 3


def test_search_with_k_at_least_n_excluding_self_returns_the_rest():
    index = _index(n=4)
    results = index.search(index.vectors[[1]], k=10, exclude=["item1"])
    assert sorted(i for i, _ in results[0]) == ["item0", "item2", "item3"]


# -- VectorIndex: exact when small, faiss HNSW when large, updated in place, saved and loaded ----
from coldrec import neighbours as nb_module  # noqa: E402
from coldrec.neighbours import VectorIndex  # noqa: E402


def _unit(rng, n, dim=16):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=["exact", "faiss-hnsw"])
def kind(request, monkeypatch):
    if request.param == "faiss-hnsw":
        monkeypatch.setattr(nb_module, "EXACT_MAX_ITEMS", 50)  # small data, the large-data path
    return request.param


def test_index_agrees_with_exact_search(kind):
    rng = np.random.default_rng(0)
    x = _unit(rng, 400)
    index = VectorIndex.build([f"i{i}" for i in range(400)], x)
    assert index.kind == kind and len(index) == 400
    queries = _unit(rng, 30)
    rows, sims = index.search_rows(queries, 10)
    truth, truth_sims = top_k_cosine(queries, x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth)])
    assert recall >= (1.0 if kind == "exact" else 0.95)
    np.testing.assert_allclose(sims[:, 0], truth_sims[:, 0], atol=1e-5)


def test_update_adds_new_items_and_replaces_changed_ones(kind):
    rng = np.random.default_rng(1)
    x = _unit(rng, 120)
    ids = [f"i{i}" for i in range(120)]
    index = VectorIndex.build(ids, x, hashes=["h"] * 120)
    assert index.update(ids, x, hashes=["h"] * 120) == 0  # nothing changed
    moved = -x[5]  # item i5 re-embedded to a new vector
    new = _unit(rng, 2)
    added = index.update(["i5", "n1", "n2"], np.vstack([moved, new]), hashes=["h2", "h", "h"])
    assert added == 3 and len(index) == 122
    hit = index.search(moved[None, :], k=1)[0][0]
    assert hit[0] == "i5" and hit[1] > 0.999
    old = index.search(x[5][None, :], k=3)[0]
    assert "i5" not in [i for i, _ in old]  # its old vector is retired
    assert index.search(new[:1], k=1)[0][0][0] == "n1"
    assert index.remove(["n2"]) == 1 and index.row_of("n2") is None and len(index) == 121


def test_saved_index_loads_back_with_the_same_answers(kind, tmp_path):
    rng = np.random.default_rng(2)
    x = _unit(rng, 200)
    index = VectorIndex.build([f"i{i}" for i in range(200)], x, hashes=[str(i) for i in range(200)])
    index.update(["i3"], -x[3:4], hashes=["changed"])
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded is not None and loaded.kind == kind and len(loaded) == len(index)
    queries = _unit(rng, 10)
    assert loaded.search(queries, k=5) == index.search(queries, k=5)
    assert loaded.update(["i3"], -x[3:4], hashes=["changed"]) == 0  # hashes survive


def test_an_incomplete_saved_index_is_ignored(tmp_path):
    rng = np.random.default_rng(3)
    VectorIndex.build(["a", "b"], _unit(rng, 2)).save(tmp_path / "idx")
    np.save(tmp_path / "idx" / "vectors.npy", _unit(rng, 3))  # rows no longer match the manifest
    assert VectorIndex.load(tmp_path / "idx") is None
    assert VectorIndex.load(tmp_path / "missing") is None


def test_the_neighbour_table_equals_a_fresh_search_and_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 300)
    index = VectorIndex.build([f"i{i}" for i in range(300)], vectors)
    rows, sims = index.neighbour_table(5)
    fresh_rows, fresh_sims = index.search_rows(vectors, 5)
    assert (rows == fresh_rows).all() and np.allclose(sims, fresh_sims)
    assert index.neighbours_searched == 300
    index.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix")
    assert loaded.neighbours_searched == 300  # kept: a restart does not search again
    again_rows, _ = loaded.neighbour_table(5, rows=np.array([7, 8]))
    assert (again_rows == rows[[7, 8]]).all()


def test_the_neighbour_table_searches_only_new_rows_and_hides_retired_ones():
    rng = np.random.default_rng(4)
    vectors = _unit(rng, 200)
    index = VectorIndex.build([f"i{i}" for i in range(200)], vectors)
    rows, _ = index.neighbour_table(4)
    target = int(rows[0, 1])  # row 0's nearest other item
    index.update([f"i{target}"], _unit(rng, 1), hashes=["changed"])  # re-embedded: old row retired
    assert index.neighbours_searched == 200  # nothing searched yet for the new row
    rows2, sims2 = index.neighbour_table(4)
    assert index.neighbours_searched == 201
    assert target not in rows2[0]  # the retired row is no longer anyone's neighbour
    assert (rows2[target] == -1).all() and np.isneginf(sims2[target]).all()
    assert rows2[200, 0] == 200  # the new row is its own nearest


def test_searches_while_rows_are_added_see_a_consistent_index():
    import threading

    rng = np.random.default_rng(3)
    dim = 16
    first = rng.normal(size=(50, dim)).astype(np.float32)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    index = VectorIndex.build([f"a{i}" for i in range(50)], first)
    errors: list[BaseException] = []
    done = threading.Event()

    def add() -> None:
        try:
            for step in range(300):  # re-embed some items (retired rows, compactions) and add others
                vectors = rng.normal(size=(20, dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                ids = [f"a{(step * 7 + j) % 50}" for j in range(10)] + [f"n{step}-{j}" for j in range(10)]
                index.update(ids, vectors, [f"h{step}"] * 20)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def search() -> None:
        try:
            while not done.is_set():
                rows, sims = index.search_rows(first[:5], 8)
                assert rows.shape == (5, 8)
                index.neighbour_table(4, rows=np.array([0, 1]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add), threading.Thread(target=search)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_an_index_saved_with_the_older_narrow_table_is_widened_once_and_saved(tmp_path, monkeypatch):
    """An index saved when the graph took GRAPH_K + 1 candidates keeps working: the first ask for
    GRAPH_CANDIDATES searches every row again (the vectors and the HNSW graph are kept), equal to
    a fresh index's table; saved, the next load has the wide table and searches nothing."""
    import coldrec.neighbours as nb_module
    from coldrec.graph import GRAPH_CANDIDATES, GRAPH_K

    monkeypatch.setattr(nb_module, "EXACT_MAX_ITEMS", 50)  # the large-workspace path: HNSW
    rng = np.random.default_rng(8)
    vectors = _unit(rng, 400)
    ids = [f"i{i}" for i in range(400)]
    old = VectorIndex.build(ids, vectors)
    old.neighbour_table(GRAPH_K + 1)
    old.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix")
    assert loaded is not None and loaded.kind == "faiss-hnsw" and loaded._knn_rows.shape[1] == GRAPH_K + 1
    rows, _ = loaded.neighbour_table(GRAPH_CANDIDATES)
    assert rows.shape == (400, GRAPH_CANDIDATES) and loaded._knn_rows.shape[1] == GRAPH_CANDIDATES
    fresh = VectorIndex.build(ids, vectors)
    fresh_rows, _ = fresh.neighbour_table(GRAPH_CANDIDATES)
    assert float(np.mean(rows == fresh_rows)) > 0.95  # HNSW: the same search up to its recall
    narrow, _ = loaded.neighbour_table(GRAPH_K + 1)  # a narrower ask reads the wide table's first columns
    assert (narrow == rows[:, : GRAPH_K + 1]).all()
    loaded.save(tmp_path / "ix")
    again = VectorIndex.load(tmp_path / "ix")
    assert again._knn_rows.shape[1] == GRAPH_CANDIDATES and again.neighbours_searched == 400
    monkeypatch.setattr(again, "search_rows", lambda *a, **k: pytest.fail("searched again"))
    again_rows, _ = again.neighbour_table(GRAPH_CANDIDATES)
    assert (again_rows == rows).all()


def test_rows_added_after_the_table_was_kept_get_the_same_width():
    from coldrec.graph import GRAPH_CANDIDATES

    rng = np.random.default_rng(9)
    vectors = _unit(rng, 120)
    index = VectorIndex.build([f"i{i}" for i in range(100)], vectors[:100])
    index.neighbour_table(GRAPH_CANDIDATES)
    index.update([f"i{i}" for i in range(100, 120)], vectors[100:])
    rows, _ = index.neighbour_table(GRAPH_CANDIDATES, rows=np.arange(100, 120))
    assert rows.shape == (20, GRAPH_CANDIDATES)
    full_rows, _ = VectorIndex.build([f"i{i}" for i in range(120)], vectors).neighbour_table(GRAPH_CANDIDATES)
    assert (index.neighbour_table(GRAPH_CANDIDATES)[0] == full_rows).all()  # exact search: equals a rebuild


def _files(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_stamp_only_save_rewrites_only_the_manifest_and_still_loads_checked(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(nb_module, "EXACT_MAX_ITEMS", 50)  # with an HNSW graph file too
    rng = np.random.default_rng(10)
    index = VectorIndex.build([f"i{i}" for i in range(300)], _unit(rng, 300))
    index.neighbour_table(5)
    folder = tmp_path / "ix"
    index.save(folder, binding="db")
    before = _files(folder)
    index.stamp = "catalog v2"
    index.save(folder, binding="db")  # in the same process
    after = _files(folder)
    assert {n: after[n] for n in after if n != "manifest.json"} == {n: before[n] for n in before if n != "manifest.json"}
    assert after["manifest.json"] != before["manifest.json"]
    loaded, why = VectorIndex.load_checked(folder, binding="db")
    assert why == "" and loaded.stamp == "catalog v2" and loaded.kind == "faiss-hnsw"
    loaded.stamp = "catalog v3"
    loaded.save(folder, binding="db")  # after a restart: the graph not even read
    again = _files(folder)
    assert {n: again[n] for n in again if n != "manifest.json"} == {n: before[n] for n in before if n != "manifest.json"}
    reloaded = VectorIndex.load(folder, binding="db")
    assert reloaded.stamp == "catalog v3" and reloaded.search(index.vectors[:3], k=3) == index.search(index.vectors[:3], k=3)
    # what did change is written, and only that: a label-free re-search of the table leaves the vectors
    reloaded.load_graph()
    reloaded.update(["new"], _unit(rng, 1))
    reloaded.neighbour_table(5)
    reloaded.save(folder, binding="db")
    grown = _files(folder)
    assert grown["vectors.npy"] != before["vectors.npy"] and grown["knn_rows.npy"] != before["knn_rows.npy"]
    assert grown["hnsw.faiss"] != before["hnsw.faiss"]
    assert VectorIndex.load(folder, binding="db").row_of("new") == 300
    # the digest is still checked after a save that kept files: an altered vector file is refused
    vectors = np.load(folder / "vectors.npy")
    vectors[0] = -vectors[0]
    np.save(folder / "vectors.npy", vectors)
    assert VectorIndex.load_checked(folder, binding="db")[1].startswith("its files do not match its manifest")
    assert "digests" in json.loads((folder / "manifest.json").read_text())


def test_a_file_changed_behind_the_index_is_rewritten_even_when_its_array_is_the_same(tmp_path):
    rng = np.random.default_rng(11)
    index = VectorIndex.build([f"i{i}" for i in range(40)], _unit(rng, 40))
    folder = tmp_path / "ix"
    index.save(folder)
    good = (folder / "vectors.npy").read_bytes()
    (folder / "vectors.npy").write_bytes(good[: len(good) // 2])  # damaged on disk; the array in memory is right
    index.stamp = "later"
    index.save(folder)
    assert (folder / "vectors.npy").read_bytes() == good
    assert VectorIndex.load(folder) is not None


def test_an_index_saved_with_the_older_single_digest_loads_and_its_next_save_rewrites_it(tmp_path):
    import json

    from coldrec.neighbours import _legacy_digest

    rng = np.random.default_rng(12)
    index = VectorIndex.build([f"i{i}" for i in range(40)], _unit(rng, 40))
    folder = tmp_path / "ix"
    index.save(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["digests"]
    manifest["digest"] = _legacy_digest(index)  # as main wrote it before the per-file digests
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = VectorIndex.load(folder)
    assert loaded is not None and loaded.ids == index.ids
    before = _files(folder)
    loaded.stamp = "moved"
    loaded.save(folder)
    assert _files(folder)["vectors.npy"] != before["vectors.npy"]  # not checked file by file: written once
    assert "digests" in json.loads((folder / "manifest.json").read_text()) and VectorIndex.load(folder).stamp == "moved"
    manifest["digest"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert VectorIndex.load(folder) is None  # a wrong legacy digest is refused
