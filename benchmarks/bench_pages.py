"""What a merchandiser waits for on the Explore and Label next pages at 10k and 50k items.

Builds a workspace whose vectors are already in the embedding cache (clustered random unit
vectors; a stub encoder that refuses to embed proves nothing is re-encoded), then times the
library calls behind each page and whole page runs through Streamlit's AppTest: the first
visit (computes and stores the map, fits the classifier, cross-validates the labels) and a
rerun (what every click costs). Usage: python benchmarks/bench_pages.py [--sizes 10000,50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import machine  # noqa: E402

N_CATEGORIES = 40
DIM = 384


class CachedOnly:
    """An encoder whose vectors all come from the cache."""

    name, dim, device = "bench-cached", DIM, "cpu"

    def encode(self, texts, progress=None):  # noqa: ANN001, ANN201
        raise AssertionError(f"asked to embed {len(texts)} texts: the cache should have them")


def build(path: Path, n: int, seed: int = 0):  # noqa: ANN201
    from coldrec.encoder import text_hash
    from coldrec.ingest import item_text
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    rng = np.random.default_rng(seed)
    store = Store(path)
    names = [f"Category {i:02d}" for i in range(N_CATEGORIES)]
    store.upsert_categories(pd.DataFrame({"name": names, "path": [f"Dept {i % 5} > Category {i:02d}" for i in range(N_CATEGORIES)]}))
    centres = rng.normal(size=(N_CATEGORIES, DIM))
    truth = rng.integers(0, N_CATEGORIES, size=n)
    vectors = centres[truth] + rng.normal(scale=1.2, size=(n, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    words = np.array(["steel", "pan", "boot", "lamp", "dog", "toy", "cotton", "shirt", "garden", "hose", "phone", "case"])
    titles = [" ".join(rng.choice(words, 4)) + f" {i}" for i in range(n)]
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "title": titles, "description": [""] * n})
    n_catalog = int(n * 0.6)
    store.upsert_items(items.iloc[:n_catalog], source="catalog")
    for b in range(5):
        part = items.iloc[n_catalog:].iloc[b::5]
        store.upsert_items(part, source="upload", batch=f"batch-{b}")
    store.add_labels(items["item_id"][:n_catalog].tolist(), [names[t] for t in truth[:n_catalog]], who="bench", source="import")
    store.put_embeddings(CachedOnly.name, [text_hash(item_text(t, "")) for t in titles], vectors)
    ws = Workspace(store, CachedOnly())
    from coldrec.classify import category_prompt

    prompts = [category_prompt(c, None, p) for c, p in zip(names, store.categories()["path"])]
    store.put_embeddings(CachedOnly.name, [text_hash(p) for p in prompts], (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32))
    return ws


def timed(label: str, fn, out: dict) -> object:  # noqa: ANN001
    started = time.perf_counter()
    value = fn()
    out[label] = round(time.perf_counter() - started, 3)
    print(f"  {label:<34} {out[label]:8.3f} s", flush=True)
    return value


def page_run(ws, page: str) -> float:  # noqa: ANN001
    """Seconds for one AppTest run of ``page`` over ``ws`` (app.py's navigation included)."""
    from streamlit.testing.v1 import AppTest

    from coldrec import ui

    ui.Workspace.open = classmethod(lambda cls, settings=None, encoder=None: ws)  # type: ignore[method-assign]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    at.switch_page(page)
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    started = time.perf_counter()
    at.run()
    return first, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,50000")
    args = parser.parse_args()
    from coldrec import explore, labelling
    from coldrec.charts import embedding_map
    from coldrec.projection import sample_for_display

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {"machine": machine(), "load_average_start": os.getloadavg()[0], "sizes": {}}
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"{n:,} items ({N_CATEGORIES} categories, 60% catalog labelled, 40% uploads in 5 batches)")
        out: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            ws = timed("build workspace", lambda: build(Path(tmp) / "bench.duckdb", n), out)
            timed("item vectors (from cache)", ws.vectors.item_vectors, out)
            timed("classifier fit", ws.predictor.classifier, out)
            timed("item table (predict all)", lambda: explore.item_table(ws), out)
            frame = timed("map frame, first (PCA, stored)", lambda: explore.map_frame(ws, "pca"), out)
            ws.state.clear()
            timed("map frame, stored map", lambda: explore.map_frame(ws, "pca"), out)
            timed("sample 20k + map figure", lambda: embedding_map(sample_for_display(frame)[0], "predicted").to_json(), out)
            timed("queue: margin", lambda: labelling.queue(ws, "margin"), out)
            timed("queue: cluster-margin", lambda: labelling.queue(ws, "cluster-margin"), out)
            timed("cross-validated review", lambda: labelling.review(ws), out)
            timed("abstain thresholds", lambda: labelling.abstain_thresholds(ws), out)
            timed("label issues", lambda: labelling.label_issues(ws), out)
            timed("guidance (learning curves)", lambda: labelling.guidance(ws), out)
            ws.labels.label("i0", "Category 01", who="bench")
            timed("queue after a new label", lambda: labelling.queue(ws, "margin"), out)
            ws.state.clear()
            ws.state.hold("classifier", None)
            for page in ("pages/explore.py", "pages/queue.py"):
                first, again = page_run(ws, page)
                out[f"{page} first run"] = round(first, 2)
                out[f"{page} rerun"] = round(again, 2)
                print(f"  {page:<20} first {first:6.2f} s, rerun {again:6.2f} s", flush=True)
            import streamlit as st

            st.cache_resource.clear()  # releases (closes) this size's workspace
        result["sizes"][n] = out
    result["load_average_end"] = os.getloadavg()[0]
    path = ROOT / "benchmarks" / "results" / "pages.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
