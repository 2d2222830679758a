"""The index beside the database, round 2 (issue 25, item 12): a saved index that does not belong
to its database, or was altered, is rebuilt with a notice; never a crash or silent wrong answers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from coldrec.neighbours import VectorIndex, _part_digests

QUERIES = pd.DataFrame({"item_id": ["Q1", "Q2", "Q3"], "title": ["steel pan for cooking", "leather boot", "dog food"],
                        "description": ""})


def _answers(ws) -> tuple[list, list]:
    batch = ws.predictor.predict(QUERIES.copy())
    frame = batch.frame()
    return frame["top1"].tolist(), [[i for i, _ in hits] for hits in batch.neighbours]


def _reopen(workspace):
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    path, encoder, settings = workspace.store.path, workspace.encoder, workspace.settings
    workspace.close()
    return Workspace(Store(path), encoder, settings)


def _rewrite_manifest(folder, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _nan_vectors(folder):
    vectors = np.load(folder / "vectors.npy")
    vectors[0] = np.nan
    np.save(folder / "vectors.npy", vectors)


def _nan_vectors_digest_fixed(folder):
    _nan_vectors(folder)
    assert VectorIndex.load_checked(folder)[0] is None  # refused; now forge the digest too
    _forge_digest(folder)


def _forge_digest(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    fake = VectorIndex(manifest["dim"])
    fake.ids, fake.hashes = manifest["ids"], manifest["hashes"]
    fake.vectors, fake.alive = np.load(folder / "vectors.npy"), np.load(folder / "alive.npy")
    fake._knn_rows, fake._knn_sims = np.load(folder / "knn_rows.npy"), np.load(folder / "knn_sims.npy")
    _rewrite_manifest(folder, digests=_part_digests(fake))


def _wrong_dimension(folder):
    vectors = np.load(folder / "vectors.npy")
    np.save(folder / "vectors.npy", np.hstack([vectors, vectors[:, :3]]))
    _rewrite_manifest(folder, dim=vectors.shape[1] + 3)


def _out_of_range_rows(folder):
    rows = np.load(folder / "knn_rows.npy")
    rows[0, 0] = 10**6
    np.save(folder / "knn_rows.npy", rows)


def _garbage_faiss(folder):
    (folder / "hnsw.faiss").write_bytes(b"IHNf" + bytes(range(256)) * 64)


def _truncated_vectors(folder):
    data = (folder / "vectors.npy").read_bytes()
    (folder / "vectors.npy").write_bytes(data[: len(data) // 2])


def _garbage_manifest(folder):
    (folder / "manifest.json").write_text('["not", "a", "manifest"]')


TAMPERINGS = {
    "nan_vectors": _nan_vectors,
    "nan_vectors_digest_fixed": _nan_vectors_digest_fixed,
    "wrong_dimension": _wrong_dimension,
    "out_of_range_rows": _out_of_range_rows,
    "garbage_faiss": _garbage_faiss,
    "truncated_vectors": _truncated_vectors,
    "garbage_manifest": _garbage_manifest,
    "no_manifest": lambda folder: (folder / "manifest.json").unlink(),
    "shuffled_knn": lambda folder: np.save(folder / "knn_rows.npy", np.load(folder / "knn_rows.npy")[::-1].copy()),
    "binding_changed": lambda folder: _rewrite_manifest(folder, binding="someone-else"),
}


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_a_tampered_index_is_rebuilt_with_a_notice_and_answers_as_before(workspace, case):
    workspace.vectors.prepare()
    expected = _answers(workspace)
    folder = workspace.vectors.index_folder()
    TAMPERINGS[case](folder)
    ws = _reopen(workspace)
    try:
        assert _answers(ws) == expected
        if case != "no_manifest":
            assert ws.vectors.index_notice and "rebuilt" in ws.vectors.index_notice, ws.vectors.index_notice
        again = _reopen(ws)  # the rebuilt index was saved: the next start loads it quietly
        ws = again
        assert _answers(ws) == expected and ws.vectors.index_notice is None
    finally:
        ws.close()


def test_another_workspaces_index_of_the_same_shape_is_not_used(workspace, tmp_path, tiny_encoder, small_catalog):
    from coldrec.config import Settings
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    workspace.vectors.prepare()
    expected = _answers(workspace)
    catalog, categories = small_catalog
    other_catalog = catalog.assign(title=catalog["title"].iloc[::-1].tolist())  # same ids, other texts
    (tmp_path / "other").mkdir()
    other_catalog.to_csv(tmp_path / "other" / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "other" / "categories.csv", index=False)
    other = Workspace(Store(tmp_path / "other" / "ws.duckdb"), tiny_encoder, Settings(db_path=tmp_path / "other" / "ws.duckdb"))
    other.imports.init_catalog(tmp_path / "other" / "catalog.csv", tmp_path / "other" / "categories.csv")
    other.vectors.prepare()
    theirs = other.vectors.index_folder()
    other.close()
    mine = workspace.vectors.index_folder()
    for name in ("knn_rows.npy", "knn_sims.npy", "vectors.npy", "manifest.json"):
        shutil.copy(theirs / name, mine / name)
    ws = _reopen(workspace)
    try:
        assert _answers(ws) == expected and "another database" in ws.vectors.index_notice
    finally:
        ws.close()
    # even with the binding forged, the vectors are compared with the database's
    manifest = json.loads((mine / "manifest.json").read_text())
    store = Store(workspace.store.path)
    binding = store.get_meta("index_binding")
    store.close()
    for name in ("knn_rows.npy", "knn_sims.npy", "vectors.npy", "alive.npy"):
        shutil.copy(theirs / name, mine / name)
    manifest.update(json.loads((theirs / "manifest.json").read_text()), binding=binding, hashes=manifest["hashes"])
    (mine / "manifest.json").write_text(json.dumps(manifest))
    _forge_digest(mine)  # their vectors under our ids, text hashes, binding and a valid digest
    ws = _reopen(workspace)
    try:
        assert _answers(ws) == expected and "not this database's" in ws.vectors.index_notice
    finally:
        ws.close()


def test_a_foreign_or_garbage_faiss_graph_is_refused(tmp_path):
    rng = np.random.default_rng(0)

    def unit(n):
        v = rng.normal(size=(n, 8)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    n = 20_500
    ids = [f"i{i}" for i in range(n)]
    ours = VectorIndex.build(ids, unit(n))
    theirs = VectorIndex.build(ids, unit(n))
    assert ours.kind == "faiss-hnsw"
    ours.save(tmp_path / "a", binding="b")
    theirs.save(tmp_path / "b", binding="b")
    loaded = VectorIndex.load_checked(tmp_path / "a", "b")[0]
    assert loaded is not None and loaded.load_graph() == "" and loaded.graph_notice is None
    queries = ours.vectors[:50]

    def finds_itself(index):
        return float(np.mean(index.search_rows(queries, 1)[0][:, 0] == np.arange(50)))

    # The graph is read after the start (load_graph); a foreign or garbage one is replaced by a
    # graph of the index's own (digest-checked) vectors, with a notice.
    shutil.copy(tmp_path / "b" / "hnsw.faiss", tmp_path / "a" / "hnsw.faiss")
    index, why = VectorIndex.load_checked(tmp_path / "a", "b")
    assert index is not None and why == ""
    assert "other vectors" in index.load_graph() and "rebuilt" in index.graph_notice
    assert index.kind == "faiss-hnsw" and finds_itself(index) >= 0.9
    (tmp_path / "a" / "hnsw.faiss").write_bytes(b"\x00garbage" * 100_000)
    index, why = VectorIndex.load_checked(tmp_path / "a", "b")
    assert index is not None and finds_itself(index) >= 0.9  # a search reads (and replaces) the graph first
    assert "graph file" in index.graph_notice and index.load_graph() == ""
