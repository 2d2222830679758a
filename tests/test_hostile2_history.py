"""Predictions must not depend on the index's history (issue 25, item 11): the neighbour table of
an index grown by uploads, re-embeddings and removals equals a rebuilt index's."""

from __future__ import annotations

import numpy as np
import pytest

from coldrec.neighbours import VectorIndex


def _unit(rng, n, dim=16):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _table_by_id(index: VectorIndex, k: int) -> dict[str, list[str]]:
    rows, _ = index.neighbour_table(k)
    out = {}
    for row in np.flatnonzero(index.alive):
        out[index.ids[row]] = [index.ids[r] for r in rows[row] if r >= 0]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_an_incrementally_grown_neighbour_table_equals_a_rebuild(seed):
    rng = np.random.default_rng(seed)
    k = 11
    ids = [f"c{i}" for i in range(300)]
    vectors = _unit(rng, 300)
    index = VectorIndex.build(ids, vectors, [f"h{i}" for i in range(300)])
    index.neighbour_table(k)  # kept, as `coldrec init` does
    live = dict(zip(ids, vectors))
    hashes = {i: f"h{n}" for n, i in enumerate(ids)}
    for step in range(5):  # uploads, a re-embedded item, a removed item
        new_ids = [f"u{step}-{i}" for i in range(int(rng.integers(1, 40)))]
        new_vectors = _unit(rng, len(new_ids))
        changed = [ids[int(rng.integers(0, 300))]]
        changed_vectors = _unit(rng, 1)
        index.update(new_ids + changed, np.vstack([new_vectors, changed_vectors]),
                     [f"n{step}-{i}" for i in new_ids] + [f"r{step}"])
        live.update(zip(new_ids, new_vectors))
        live[changed[0]] = changed_vectors[0]
        hashes.update({i: f"n{step}-{i}" for i in new_ids})
        hashes[changed[0]] = f"r{step}"
        gone = [i for i in live if i.startswith("u") and rng.random() < 0.05]
        index.remove(gone)
        for i in gone:
            live.pop(i)
        grown = _table_by_id(index, k)
        rebuilt = VectorIndex.build(list(live), np.stack(list(live.values())), [hashes[i] for i in live])
        assert grown == _table_by_id(rebuilt, k), step


def test_predictions_after_uploads_equal_those_after_a_rebuild(workspace):
    import shutil

    import pandas as pd

    from coldrec.store import Store
    from coldrec.workspace import Workspace

    workspace.vectors.prepare()
    words = ["steel pan", "leather boot", "dog toy", "cast iron pot", "cat food", "wool sandal", "pet bed", "wok set"]
    for part in range(3):
        batch = pd.DataFrame({"item_id": [f"u{part}-{i}" for i in range(len(words))],
                              "title": [f"{w} {part}" for w in words], "description": ""})
        workspace.predictor.upload_and_predict(batch, f"batch {part}", who="t")
    queries = pd.DataFrame({"item_id": ["Q1", "Q2", "Q3"], "title": ["steel pot", "boot", "cat toy"], "description": ""})

    def answers(ws):
        frame = ws.predictor.predict(queries.copy()).frame()
        return frame["top1"].tolist(), frame["top1_probability"].round(6).tolist()

    running = answers(workspace)
    path, encoder, settings = workspace.store.path, workspace.encoder, workspace.settings
    folder = workspace.vectors.index_folder()
    workspace.close()
    shutil.rmtree(folder)
    with Workspace(Store(path), encoder, settings) as rebuilt:
        assert answers(rebuilt) == running
