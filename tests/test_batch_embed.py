"""Batch embedding into Parquet shards (in-process and on a local Ray cluster) and ``init --vectors``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from coldrec.batch_embed import embed_catalog, load_vectors
from coldrec.cli import main
from coldrec.encoder import text_hash
from coldrec.errors import ConfigError, DataImportError, IngestError
from coldrec.ingest import item_text, load_items
from coldrec.store import Store
from coldrec.workspace import Workspace

from .conftest import _WORDS

pytestmark = pytest.mark.slow


def _catalog(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` products of 3-8 words; every 7th has a description, every 5th repeats an earlier title."""
    rng = np.random.default_rng(seed)
    titles = [" ".join(rng.choice(_WORDS, size=rng.integers(3, 9))) for _ in range(n)]
    for i in range(5, n, 5):
        titles[i] = titles[i - 5]
    return pd.DataFrame(
        {
            "item_id": [f"SKU{i:04d}" for i in range(n)],
            "title": titles,
            "description": [("with " + titles[i - 1]) if i % 7 == 0 else "" for i in range(n)],
            "category": ["Cookware"] * n,
        }
    )


def _read_shards(folder) -> pd.DataFrame:
    frame = pq.read_table(sorted(folder.rglob("*.parquet"))).to_pandas()
    return frame.sort_values("item_id").reset_index(drop=True)


def _expected(encoder, catalog: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    texts = [item_text(t, d) for t, d in zip(catalog["title"], catalog["description"])]
    return [text_hash(t) for t in texts], encoder.encode(texts)


def test_in_process_shards_hold_what_init_would_embed(tmp_path, tiny_model_dir, tiny_encoder):
    catalog = _catalog(40)
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    summary = embed_catalog(tmp_path / "catalog.csv", tmp_path / "vectors", model=str(tiny_model_dir), batch_size=4)
    assert summary.rows == 40 and summary.shards == 1 and summary.model == tiny_encoder.name
    shards = _read_shards(tmp_path / "vectors")
    hashes, vectors = _expected(tiny_encoder, catalog)
    assert shards["item_id"].tolist() == catalog["item_id"].tolist()
    assert shards["text_hash"].tolist() == hashes
    assert set(shards["model"]) == {tiny_encoder.name}
    np.testing.assert_allclose(np.stack(shards["vector"]), vectors, atol=1e-5)


def test_a_parquet_folder_without_ids_gets_the_content_ids_init_gives(tmp_path, tiny_model_dir):
    catalog = _catalog(30).drop(columns=["item_id", "category"])
    folder = tmp_path / "catalog"
    folder.mkdir()
    catalog.iloc[:12].to_parquet(folder / "a.parquet")
    catalog.iloc[12:].to_parquet(folder / "b.parquet")
    embed_catalog(folder, tmp_path / "vectors", model=str(tiny_model_dir), batch_size=4)
    catalog.to_parquet(tmp_path / "whole.parquet")
    init_ids = load_items(tmp_path / "whole.parquet", id_prefix="CAT")["item_id"]
    assert set(_read_shards(tmp_path / "vectors")["item_id"]) == set(init_ids)


def test_init_with_vectors_embeds_no_catalog_text_again(tmp_path, tiny_model_dir, tiny_encoder, small_catalog):
    _, categories = small_catalog
    categories.to_csv(tmp_path / "categories.csv", index=False)
    catalog = _catalog(60)
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    assert main(["--model", str(tiny_model_dir), "embed", str(tmp_path / "catalog.csv"), "--out",
                 str(tmp_path / "vectors"), "--batch-size", "8"]) == 0

    calls: list[list[str]] = []

    class Counting:
        name, dim, device = tiny_encoder.name, tiny_encoder.dim, "cpu"

        def encode(self, texts, progress=None):
            calls.append(list(texts))
            return tiny_encoder.encode(texts, progress)

    ws = Workspace(Store(tmp_path / "ws.duckdb"), Counting())
    try:
        read, added = load_vectors(ws.store, tmp_path / "vectors", tiny_encoder.name, tiny_encoder.dim)
        assert read == 60 and added == len(set(_expected(tiny_encoder, catalog)[0]))
        ws.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
        assert calls == []  # every catalog vector came from the shards
        _, vectors = ws.vectors.item_vectors()
        np.testing.assert_allclose(vectors, _expected(tiny_encoder, catalog)[1], atol=1e-5)
    finally:
        ws.close()


def test_init_vectors_through_the_cli(tmp_path, tiny_model_dir, small_catalog, capsys):
    _, categories = small_catalog
    categories.to_csv(tmp_path / "categories.csv", index=False)
    _catalog(25).to_csv(tmp_path / "catalog.csv", index=False)
    common = ["--db", str(tmp_path / "cli.duckdb"), "--model", str(tiny_model_dir)]
    assert main([*common, "embed", str(tmp_path / "catalog.csv"), "--out", str(tmp_path / "v")]) == 0
    assert "init --catalog" in capsys.readouterr().out  # says what to do next
    assert main([*common, "init", "--catalog", str(tmp_path / "catalog.csv"), "--categories",
                 str(tmp_path / "categories.csv"), "--vectors", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "25 vectors read" in out and "embedding catalog: 0/0" in out and "25 catalog items" in out


def test_shards_of_another_model_are_refused_and_nothing_is_written(tmp_path, tiny_model_dir, tiny_encoder):
    _catalog(10).to_csv(tmp_path / "catalog.csv", index=False)
    embed_catalog(tmp_path / "catalog.csv", tmp_path / "vectors", model=str(tiny_model_dir))
    store = Store(tmp_path / "s.duckdb")
    try:
        with pytest.raises(DataImportError, match="model"):
            load_vectors(store, tmp_path / "vectors", "sentence-transformers/all-MiniLM-L6-v2", 384)
        with pytest.raises(DataImportError, match="dimension"):
            load_vectors(store, tmp_path / "vectors", tiny_encoder.name, 64)
        assert store.embedding_counts().empty
    finally:
        store.close()


def test_bad_inputs_get_clear_messages(tmp_path, tiny_model_dir):
    _catalog(10).to_csv(tmp_path / "catalog.csv", index=False)
    (tmp_path / "catalog.xlsx").write_bytes(b"x")
    with pytest.raises(IngestError, match="Parquet"):
        embed_catalog(tmp_path / "catalog.xlsx", tmp_path / "v", model=str(tiny_model_dir))
    with pytest.raises(IngestError, match="no such"):
        embed_catalog(tmp_path / "missing.csv", tmp_path / "v", model=str(tiny_model_dir))
    embed_catalog(tmp_path / "catalog.csv", tmp_path / "v", model=str(tiny_model_dir))
    with pytest.raises(ConfigError, match="already holds"):  # a second run never mixes with the first
        embed_catalog(tmp_path / "catalog.csv", tmp_path / "v", model=str(tiny_model_dir))
    pd.DataFrame({"title": ["pan", ""], "description": ["", ""]}).to_csv(tmp_path / "empty_row.csv", index=False)
    with pytest.raises(IngestError, match="row"):
        embed_catalog(tmp_path / "empty_row.csv", tmp_path / "v2", model=str(tiny_model_dir))
    store = Store(tmp_path / "s.duckdb")
    try:
        (tmp_path / "notshards").mkdir()
        pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "notshards" / "x.parquet")
        with pytest.raises(DataImportError, match="not a coldrec vector shard"):
            load_vectors(store, tmp_path / "notshards", "m", 32)
        (tmp_path / "no_shards").mkdir()
        with pytest.raises(DataImportError, match="no Parquet shards"):
            load_vectors(store, tmp_path / "no_shards", "m", 32)
    finally:
        store.close()


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU Ray cluster on this machine, shut down after the module."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_data_on_a_local_cluster_writes_the_in_process_vectors(tmp_path, tiny_model_dir, tiny_encoder, local_ray):
    catalog = _catalog(300, seed=1)
    catalog.to_parquet(tmp_path / "catalog.parquet")
    summary = embed_catalog(
        tmp_path / "catalog.parquet", tmp_path / "ray", model=str(tiny_model_dir), batch_size=4, ray_address="local"
    )
    assert summary.rows == 300 and summary.model == tiny_encoder.name and summary.engine.startswith("ray")
    assert local_ray.is_initialized()  # a cluster it did not start is left running
    embed_catalog(tmp_path / "catalog.parquet", tmp_path / "local", model=str(tiny_model_dir), batch_size=4)
    on_ray, in_process = _read_shards(tmp_path / "ray"), _read_shards(tmp_path / "local")
    assert on_ray[["item_id", "text_hash", "model"]].equals(in_process[["item_id", "text_hash", "model"]])
    np.testing.assert_allclose(np.stack(on_ray["vector"]), np.stack(in_process["vector"]), atol=1e-5)


def test_a_bad_row_on_ray_is_the_same_clear_error(tmp_path, tiny_model_dir, local_ray):
    pd.DataFrame({"title": ["steel pan", "", "wok"], "description": ["", "", ""]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(IngestError, match="bad.parquet.*no text"):
        embed_catalog(tmp_path / "bad.parquet", tmp_path / "v", model=str(tiny_model_dir), ray_address="local")
