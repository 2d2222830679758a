"""Cold-start audiences: quality on the demo purchases and on real Instacart orders, and the time
and memory to score every shopper for one new product at 10k and 1M (synthetic) shoppers.

Quality runs ``python -m coldrec audience-eval`` and writes
benchmarks/results/audience_<name>_seeds<N>.json; halves fits and evaluates on each of two
disjoint fixed-seed halves of the Instacart shoppers separately (a check that the method carries
over to shoppers it was not developed on; ``--splits N`` adds N-1 further random halvings) and
writes audience_instacart_halves_seeds<N>.json;
build times the full model on all purchases (audience_build.json); scale writes
benchmarks/results/audience_scale.json.
Usage: python benchmarks/bench_audience.py [--seeds 5] [--only quality|halves|build|scale] [--splits 1] [--shoppers 10000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._harness import machine  # noqa: E402

INSTACART = ROOT.parent / "shared" / "datasets" / "instacart_orders"
RUNS = {
    "demo": (ROOT / "data" / "demo" / "catalog.csv", ROOT / "data" / "demo" / "interactions.csv", ["title", "description"], "category"),
    "instacart": (INSTACART / "products.csv", INSTACART / "interactions.csv", ["title"], None),
}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared; timings inflate with load)."""
    return [round(x, 2) for x in os.getloadavg()]


def quality(seeds: int) -> None:
    out_dir = ROOT / "benchmarks" / "results"
    for name, (items, interactions, text_cols, category_col) in RUNS.items():
        if not items.is_file():
            print(f"{name}: {items} not found, skipped")
            continue
        out = out_dir / f"audience_{name}_seeds{seeds}.json"
        cmd = [sys.executable, "-m", "coldrec", "audience-eval", "--items", str(items), "--interactions", str(interactions),
               "--holdout-frac", "0.2", "--k", "10,50", "--seeds", str(seeds), "--json", str(out)]
        for col in text_cols:
            cmd += ["--text-col", col]
        if category_col:
            cmd += ["--category-col", category_col]
        load_before = load_average()
        started = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        doc = json.loads(out.read_text())
        doc["wall_s"] = round(time.perf_counter() - started, 1)
        doc["load_average"] = {"before": load_before, "after": load_average()}
        doc["machine"] = machine()
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{name}: {doc['n_users']} users, {doc['n_items']} items, {doc['n_interactions']} purchases, "
              f"{doc['wall_s']} s, load {doc['load_average']}")
        for r in doc["results"]:
            print(f"  {r['method']:>15} R@10 {r['recall@10']:.3f} N@10 {r['ndcg@10']:.3f} "
                  f"R@50 {r['recall@50']:.3f} N@50 {r['ndcg@50']:.3f} AUC {r['auc']:.3f}")


def halves(seeds: int, splits: int = 1) -> None:
    import numpy as np
    import pandas as pd

    from coldrec.audience import evaluate_audience, load_interactions
    from coldrec.encoder import load_encoder

    if not (INSTACART / "products.csv").is_file():
        print(f"{INSTACART} not found, halves skipped")
        return
    items = pd.read_csv(INSTACART / "products.csv", dtype={"item_id": str})
    interactions = load_interactions(INSTACART / "interactions.csv")
    users = sorted(interactions["user_id"].astype(str).unique())
    encoder = load_encoder()
    doc = {"seeds": seeds, "machine": machine(), "halves": []}
    # The first split is the one every earlier run used; further splits are other random halvings.
    for split in [12345, *range(1, splits)]:
        order = np.random.default_rng(split).permutation(len(users))
        for half, chosen in enumerate((order[: len(users) // 2], order[len(users) // 2 :])):
            shoppers = {users[i] for i in chosen}
            subset = interactions[interactions["user_id"].astype(str).isin(shoppers)]
            load_before, started = load_average(), time.perf_counter()
            result = evaluate_audience(
                items, subset, lambda texts: encoder.encode(texts), text_cols=["title"], seeds=seeds,
                methods=["coldrec", "graph", "taste", "most-active"], name=f"instacart split {split} half {half}",
            )
            result["split"], result["half"] = split, half
            result["wall_s"] = round(time.perf_counter() - started, 1)
            result["load_average"] = {"before": load_before, "after": load_average()}
            doc["halves"].append(result)
            print(f"split {split} half {half}: {result['n_users']} users, {result['n_items']} items, "
                  f"{result['wall_s']} s, load {result['load_average']}")
            for r in result["results"]:
                print(f"  {r['method']:>15} R@10 {r['recall@10']:.3f} N@10 {r['ndcg@10']:.3f} "
                      f"R@50 {r['recall@50']:.3f} N@50 {r['ndcg@50']:.3f} AUC {r['auc']:.3f}")
    out = ROOT / "benchmarks" / "results" / f"audience_instacart_halves_seeds{seeds}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")


def build() -> None:
    """Time building the full audience model (fitted blend, cross-fitting slices, taste ridge) on
    all purchases of the demo and of Instacart: what the Audience page and ``python -m coldrec
    audience`` do once per change of purchases or catalog (embeddings computed beforehand)."""
    import pandas as pd

    from coldrec.audience import build_audience, load_interactions
    from coldrec.encoder import load_encoder

    encoder = load_encoder()
    rows = []
    for name, (items_path, interactions_path, text_cols, category_col) in RUNS.items():
        if not items_path.is_file():
            print(f"{name}: {items_path} not found, skipped")
            continue
        items = pd.read_csv(items_path, dtype={"item_id": str})
        interactions = load_interactions(interactions_path)
        items = items[items["item_id"].isin(set(interactions["item_id"].astype(str)))].reset_index(drop=True)
        texts = [". ".join(str(v) for v in row if str(v).strip() not in ("", "nan")) for row in items[text_cols].itertuples(index=False)]
        vectors = encoder.encode(texts)
        categories = items[category_col].tolist() if category_col else None
        load_before, started = load_average(), time.perf_counter()
        model = build_audience(interactions, items["item_id"].tolist(), vectors, item_categories=categories, item_texts=texts)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        model.audience(vectors[0], 100, text=texts[0])
        row = {
            "dataset": name, "items": len(items), "shoppers": len(model.user_ids), "build_s": round(build_s, 1),
            "fitted_items": model.blend.n_items if model.blend else 0,
            "taste_penalty": model.taste.penalty if model.taste else None,
            "taste_rank": int(model.taste.basis.shape[1]) if model.taste else None,
            "first_audience_s": round(time.perf_counter() - started, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_average": {"before": load_before, "after": load_average()},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks" / "results" / "audience_build.json"
    out.write_text(json.dumps({"results": rows, "machine": machine()}, indent=2) + "\n")


def synthetic_model(n_shoppers: int, n_items: int = 10_000, dim: int = 384, per_shopper: int = 20, seed: int = 0):
    """An audience model over random unit item vectors, titles from a small vocabulary and
    ``per_shopper`` purchases each, with a blend of fixed weights, pairwise terms included
    (scoring cost does not depend on their values). Interests are real (:func:`shopper_interests`) up to 100k shoppers; above that,
    two random centroids per shopper stand in (the per-shopper clustering loop is a build cost,
    measured separately)."""
    import numpy as np
    from scipy import sparse

    from coldrec.audience import AudienceModel, Blend, catalog_groups, shopper_interests

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = [f"w{i}" for i in range(2_000)]
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(n_items)]
    rows = np.repeat(np.arange(n_shoppers), per_shopper)
    cols = rng.integers(0, n_items, size=n_shoppers * per_shopper)
    purchases = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_shoppers, n_items))
    purchases.sum_duplicates()
    model = AudienceModel([f"u{i}" for i in range(n_shoppers)], [f"i{i}" for i in range(n_items)], vectors, purchases,
                          item_texts=texts)
    timings = {}
    started = time.perf_counter()
    model.item_groups = catalog_groups(vectors)
    timings["catalog_groups_s"] = round(time.perf_counter() - started, 2)
    if n_shoppers <= 100_000:
        started = time.perf_counter()
        model.interests = shopper_interests(purchases, vectors)
        timings["interests_s"] = round(time.perf_counter() - started, 2)
    else:
        centroids = rng.standard_normal(size=(2 * n_shoppers, dim), dtype=np.float32)
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        model.interests = (centroids, np.repeat(np.arange(n_shoppers), 2), np.full(2 * n_shoppers, 0.5))
        timings["interests_s"] = None
    names = model.feature_names()
    n = len(names)  # the full scoring path: standardise, clip, linear and pairwise terms
    model.blend = Blend(
        names, np.ones(n, np.float32), -8.0, 0.01, 0.5, 1, 1, quadratic=np.full((n, n), 0.01, np.float32),
        mean=np.zeros(n, np.float32), std=np.ones(n, np.float32), low=np.full(n, -1e9, np.float32),
        high=np.full(n, 1e9, np.float32),
    )
    return model, texts, timings


def scale(sizes: list[int]) -> None:
    import numpy as np

    results = []
    for n_shoppers in sizes:
        load_before = load_average()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        model, texts, timings = synthetic_model(n_shoppers)
        build_s = time.perf_counter() - started
        rng = np.random.default_rng(1)
        query = rng.normal(size=384).astype(np.float32)
        query /= np.linalg.norm(query)
        text = texts[0]
        model.audience(query, 100, text=text)  # first call derives the cached parts (scales, shares, TF-IDF)
        first = time.perf_counter() - started - build_s
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            model.audience(query, 100, text=text)
            runs.append(time.perf_counter() - t)
        tracemalloc.start()  # numpy and scipy arrays report here: the memory one scoring call adds
        model.audience(query, 100, text=text)
        scoring_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        arrays = model.purchases.data.nbytes + model.purchases.indices.nbytes + model.purchases.indptr.nbytes
        arrays += model.interests[0].nbytes + model.item_vectors.nbytes
        arrays += model.taste.basis.nbytes + model.taste.projection.nbytes + model._bought.data.nbytes
        row = {
            "shoppers": n_shoppers,
            "items": len(model.item_ids),
            "purchases": int(model.purchases.nnz),
            "interests": int(len(model.interests[0])),
            "build_s": round(build_s, 2),
            **timings,
            "first_audience_s": round(first, 2),
            "audience_s_median_of_3": round(float(np.median(runs)), 3),
            "model_arrays_mb": round(arrays / 2**20, 1),
            "scoring_peak_extra_mb": round(scoring_peak / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_rss_before_mb": round(rss_before / 1024, 1),
            "load_average": {"before": load_before, "after": load_average()},
        }
        results.append(row)
        print(json.dumps(row))
        del model
    out = ROOT / "benchmarks" / "results" / "audience_scale.json"
    # One size per run keeps runs apart (a 1M run fills the machine): keep the other sizes' rows.
    kept = json.loads(out.read_text())["results"] if out.is_file() else []
    measured = {r["shoppers"] for r in results}
    results = sorted([r for r in kept if r["shoppers"] not in measured] + results, key=lambda r: r["shoppers"])
    out.write_text(json.dumps({"results": results, "machine": machine()}, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=["quality", "halves", "build", "scale"])
    parser.add_argument("--splits", type=int, default=1, help="random halvings of the Instacart shoppers for --only halves")
    parser.add_argument("--shoppers", default="10000,1000000", help="comma-separated shopper counts for the scale run")
    args = parser.parse_args()
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    if args.only in (None, "quality"):
        quality(args.seeds)
    if args.only in (None, "halves"):
        halves(args.seeds, args.splits)
    if args.only in (None, "build"):
        build()
    if args.only in (None, "scale"):
        scale([int(s) for s in args.shoppers.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
