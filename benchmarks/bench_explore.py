"""How long the explore views take at 10,000 and 50,000 items: the 2-D map and each analytics view.

Builds a synthetic store per size: clustered random unit vectors in 384-d (40 categories,
plus 3 clusters the catalog lacks), titles from a small vocabulary, 60% catalog / 40% uploads
in 4 batches, half the catalog labelled, stored predictions for every upload, and 1% of the
uploads near-copies of catalog items. Times PCA (and t-SNE once, at its point cap), the stored
map read back, sampling + building the WebGL figure (+ its JSON size), and every analytics
function, the read-only SQL box included. Prints figures and the machine; writes
benchmarks/results/explore.json. Usage: python benchmarks/bench_explore.py [sizes...]
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM = 384
CATEGORIES = 40
NEW_CLUSTERS = 3
MODEL = "bench-model"
VOCAB = [
    "pan", "pot", "skillet", "wok", "steel", "iron", "kettle", "toaster", "blender", "mixer", "shirt", "dress",
    "jeans", "jacket", "cotton", "wool", "linen", "socks", "shoe", "boot", "sneaker", "sandal", "leather", "phone",
    "case", "charger", "cable", "wireless", "headphones", "speaker", "earbuds", "dog", "cat", "pet", "food", "toy",
    "ball", "puzzle", "doll", "game", "yoga", "mat", "dumbbell", "bike", "tea", "rice", "pasta", "chocolate",
    "honey", "coffee", "beans", "lamp", "desk", "chair", "sofa", "pillow", "blanket", "towel", "soap", "shampoo",
    "brush", "razor", "watch", "ring", "necklace", "bag", "wallet", "tent", "torch", "drill", "saw",
]
GENERIC = ["new", "premium", "classic", "set", "pack", "large", "small", "black", "white", "blue", "red", "green"]


def build(store, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Fill ``store`` with ``n`` synthetic items; returns ids and vectors (aligned)."""
    rng = np.random.default_rng(seed)
    groups = CATEGORIES + NEW_CLUSTERS
    centres = rng.normal(size=(groups, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n_catalog = int(n * 0.6)
    group = np.concatenate([rng.integers(0, CATEGORIES, n_catalog), rng.integers(0, groups, n - n_catalog)])
    noise = rng.normal(size=(n, DIM)).astype(np.float32) * np.float32(1.0 / np.sqrt(DIM))
    vectors = centres[group] + noise
    # 1% of the uploads are near-copies of catalog items (what near-duplicate search should find).
    copies = rng.choice(np.arange(n_catalog, n), size=max(1, (n - n_catalog) // 100), replace=False)
    vectors[copies] = vectors[rng.integers(0, n_catalog, len(copies))] + 0.01 * noise[copies]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vectors.dtype == np.float32
    words = [rng.choice(VOCAB, size=4, replace=False) for _ in range(groups)]
    titles = [
        f"{rng.choice(GENERIC)} {' '.join(rng.choice(words[g], size=2, replace=False))} {rng.integers(1, 500)}"
        for g in group
    ]
    ids = [f"I{k:06d}" for k in range(n)]
    names = [f"Category {c:02d}" for c in range(CATEGORIES)]
    store.upsert_categories(pd.DataFrame({"name": names}))
    items = pd.DataFrame({"item_id": ids, "title": titles})
    store.upsert_items(items.iloc[:n_catalog], source="catalog")
    batches = np.array_split(np.arange(n_catalog, n), 4)
    for b, rows in enumerate(batches):
        store.upsert_items(items.iloc[rows], source="upload", batch=f"batch-{b + 1}")
    labelled = rng.choice(n_catalog, size=n_catalog // 2, replace=False)
    store.add_labels([ids[i] for i in labelled], [names[group[i]] for i in labelled], who="bench", source="import")
    uploads = np.arange(n_catalog, n)
    # Predictions: right for known groups 80% of the time, otherwise any category; new clusters get a random one.
    right = (group[uploads] < CATEGORIES) & (rng.random(len(uploads)) < 0.8)
    predicted = np.where(right, group[uploads] % CATEGORIES, rng.integers(0, CATEGORIES, len(uploads)))
    probability = np.where(right, rng.uniform(0.5, 1.0, len(uploads)), rng.uniform(0.1, 0.6, len(uploads)))
    store.save_predictions(
        MODEL,
        pd.DataFrame(
            {
                "item_id": [ids[i] for i in uploads],
                "category": [names[c] for c in predicted],
                "probability": probability,
                "unsure": probability < 0.5,
                "top3_json": [json.dumps([{"category": names[c], "probability": round(float(p), 4)}])
                              for c, p in zip(predicted, probability)],
            }
        ),
    )
    return ids, vectors


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return round(best, 3), out


def run_size(n: int) -> dict[str, object]:
    from coldrec import analytics, charts
    from coldrec.projection import project, sample_for_display, stored_projection
    from coldrec.sqlbox import run_readonly
    from coldrec.store import Store

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb")
        started = time.perf_counter()
        ids, vectors = build(store, n)
        out["build_store_s"] = round(time.perf_counter() - started, 1)
        items = store.items()
        order = items.set_index("item_id").loc[ids].reset_index()

        project(vectors[:100], "pca")  # imports sklearn outside the timing
        out["pca_s"], _ = timed(lambda: project(vectors, "pca"))
        out["stored_projection_first_s"], xy = timed(lambda: stored_projection(store, MODEL, "pca", ids, vectors))
        out["stored_projection_again_s"], _ = timed(lambda: stored_projection(store, MODEL, "pca", ids, vectors), 3)
        frame = order.merge(xy, on="item_id")
        frame["category"] = frame["category"].fillna("(not labelled)")

        def draw() -> str:
            shown, _ = sample_for_display(frame, max_points=20_000)
            return charts.embedding_map(shown, "category").to_json()

        out["sample_and_figure_s"], _ = timed(
            lambda: charts.embedding_map(sample_for_display(frame, max_points=20_000)[0], "category"), 3
        )
        out["sample_figure_to_json_s"], payload = timed(draw, 3)
        out["figure_json_mb"] = round(len(payload) / 2**20, 2)
        out["all_points_figure_to_json_s"], payload = timed(lambda: charts.embedding_map(frame, "category").to_json())
        out["all_points_json_mb"] = round(len(payload) / 2**20, 2)

        out["category_summary_s"], _ = timed(lambda: analytics.category_summary(store, MODEL), 3)
        out["confidence_histogram_s"], _ = timed(lambda: analytics.confidence_histogram(store, MODEL), 3)
        out["unsure_by_batch_s"], _ = timed(lambda: analytics.unsure_by_batch(store, MODEL), 3)
        out["category_health_s"], _ = timed(lambda: analytics.category_health(store, ids, vectors), 3)
        out["drift_s"], report = timed(lambda: analytics.drift(store, MODEL, "batch-4", ids, vectors), 3)
        out["drift_candidates"] = len(report.new_category_candidates)
        unlabelled = order[(order["source"] == "upload") & order["category"].isna()]
        rows = unlabelled.index.to_numpy()
        out["clusters_items"] = len(rows)
        out["emerging_clusters_auto_k_s"], clusters = timed(
            lambda: analytics.emerging_clusters(unlabelled[["item_id", "title"]], vectors[rows])
        )
        out["clusters_chosen_k"] = len(clusters.clusters)
        out["emerging_clusters_k10_s"], _ = timed(
            lambda: analytics.emerging_clusters(unlabelled[["item_id", "title"]], vectors[rows], n_clusters=10)
        )
        out["near_duplicates_s"], dupes = timed(lambda: analytics.near_duplicates(store, ids, vectors, threshold=0.95))
        out["near_duplicate_pairs"] = len(dupes)
        sql = """SELECT i.batch, l.category, count(*) AS n, avg(p.probability) AS confidence
                 FROM items i LEFT JOIN labels l USING (item_id) LEFT JOIN predictions p USING (item_id)
                 GROUP BY ALL ORDER BY n DESC"""
        out["sql_box_s"], _ = timed(lambda: run_readonly(store, MODEL, sql), 3)
        store.close()
    return out


def main() -> int:
    from benchmarks._harness import machine
    from coldrec.projection import TSNE_MAX_POINTS, project

    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 50_000]

    result: dict[str, object] = {"machine": machine(), "dim": DIM, "categories": CATEGORIES, "sizes": {}}
    # Other processes share this CPU: the load average says how busy it was (1-minute, at start and end).
    result["load_average_start"] = round(os.getloadavg()[0], 2)
    for n in sizes:
        figures = run_size(n)
        result["sizes"][str(n)] = figures
        print(f"{n:,} items:", flush=True)
        for key, value in figures.items():
            print(f"  {key:<32} {value}", flush=True)
    # t-SNE refuses more than its cap, so it is timed once, at the cap.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(TSNE_MAX_POINTS, DIM)).astype(np.float32)
    x = (np.repeat(np.eye(CATEGORIES, DIM, dtype=np.float32), TSNE_MAX_POINTS // CATEGORIES, axis=0)
         + x[: TSNE_MAX_POINTS // CATEGORIES * CATEGORIES] / np.sqrt(DIM))
    seconds, _ = timed(lambda: project(x, "tsne"))
    result["tsne_at_cap"] = {"points": len(x), "seconds": seconds}
    print(f"t-SNE at its cap ({len(x):,} points): {seconds} s", flush=True)
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    path = ROOT / "benchmarks" / "results" / "explore.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"peak memory {result['peak_rss_mib']} MiB; wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
