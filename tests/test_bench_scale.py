"""benchmarks/bench_scale.py end to end on a small synthetic workspace with the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from benchmarks import bench_scale
from coldrec.encoder import text_hash
from coldrec.ingest import item_text
from coldrec.store import Store

HEADLINE = ("items", "init_s", "upload_1000_s", "refresh_after_label_s", "near_duplicates_s",
            "explore_first_render_s", "explore_rerun_s", "peak_rss_mb")


def test_synthetic_inputs_are_embed_shards_of_clustered_vectors(tmp_path):
    data = bench_scale.Synthetic.make(1_000, dim=16, seed=1)
    inputs = bench_scale.write_inputs(data, tmp_path / "in", "some-model")
    shard = pq.read_table(inputs["vectors"] / "part-00000.parquet")
    catalog = pq.read_table(inputs["catalog"]).to_pandas()
    assert shard.schema.names == ["item_id", "text_hash", "model", "vector"]
    assert shard.column("item_id").to_pylist() == catalog["item_id"].tolist()
    assert shard.column("text_hash").to_pylist() == [text_hash(item_text(t, "")) for t in catalog["title"]]
    assert set(shard.column("model").to_pylist()) == {"some-model"}
    x = np.asarray(shard.column("vector").to_pylist(), dtype=np.float32)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    frame, again = next(data.chunks())
    assert np.array_equal(again, x)  # the same draw every time (the recall sample relies on it)
    # Members of a cluster are closer to each other than to other clusters; near-copies closer still.
    same = frame["cluster"].to_numpy()[:, None] == frame["cluster"].to_numpy()[None, :]
    sims = x @ x.T
    np.fill_diagonal(sims, np.nan)
    assert np.nanmean(sims[same]) > 0.3 > np.nanmean(sims[~same]) + 0.2
    copies = np.arange(1, 1_000, bench_scale.DUPLICATE_EVERY)
    assert (np.einsum("ij,ij->i", x[copies], x[copies - 1]) >= 0.79).all()
    # Titles carry the category's words; labelled rows carry their category.
    labelled = catalog[catalog["category"] != ""]
    assert len(labelled) == len(data.labelled) == 10 * len(data.category_words)
    for title, category in zip(labelled["title"], labelled["category"]):
        first, _, third = title.split()[:3]
        assert category == f"{first.title()} {third.title()}"


def test_bench_scale_runs_init_and_every_page_and_writes_every_key(tmp_path, tiny_model_dir):
    out = tmp_path / "scale.json"
    assert bench_scale.main(["--items", "2000", "--json", str(out), "--model", str(tiny_model_dir),
                             "--shoppers", "40", "--keep", str(tmp_path / "ws")]) == 0
    result = json.loads(out.read_text())
    assert result["items"] == 2000
    for key in HEADLINE:
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    assert set(result["pages"]) == set(bench_scale.PAGES)
    for page, runs in result["pages"].items():
        assert runs["exceptions"] == [], (page, runs["exceptions"])
        assert runs["first_s"] > 0 and runs["rerun_s"] > 0
    assert all(result["refresh_shows_label"])
    # init loaded the shards instead of embedding: every catalog vector came from them.
    assert "2,000 vectors read" in " ".join(result["init_output"])
    assert 50 < result["init_peak_rss_mb"] < result["peak_rss_mb"]  # init's own process, not the fork's
    with Store(tmp_path / "ws" / "bench.duckdb", read_only=True) as store:
        stats = store.stats()
        assert stats["catalog_items"] == 2000 and stats["uploaded_items"] == bench_scale.UPLOAD_ROWS
        assert stats["labelled_items"] == 10 * result["synthetic"]["categories"] + 4  # + the bench's labels
        purchases = store.interactions()
    # 40 shoppers with 4-30 purchases each, loaded by init; the Audience page rendered them (no exception above).
    assert purchases["user_id"].nunique() == 40 and 4 * 40 <= len(purchases) <= 30 * 40
    assert purchases["item_id"].str.startswith("SKU").all()
    assert result["library_s"]["audience_model"] >= 0
