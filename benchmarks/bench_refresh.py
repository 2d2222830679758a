"""Prediction refresh after one label, at workspace sizes: graph build, refit, memory.

    python benchmarks/bench_refresh.py --items 100000 --json benchmarks/results/refresh_100k.json

Synthetic clustered unit vectors (dimension 384, 30 categories with 10 sub-clusters each; random
vectors are fine for timing, not for accuracy). Times what the workspace runs:

* ``graph_build_s``: the neighbour index over every item plus the kNN graph (``--graph index``,
  the product's path) or, for sizes where building the HNSW index takes too long on this
  machine, the graph from exact search inside each synthetic cluster (``--graph clusters``; the
  index build is measured by ``bench_neighbours.py``);
* ``fit_s``: the first fit with 5 labels per category (prior, propagation, calibration);
* ``refresh_after_label_s``: median over 5 single labels of ``snapshot()`` + ``update_labels``
  (warm-started, local propagation), the path of a click in the dashboard;
* ``recalibrate_s``: the same with beta refitted (every fifth more labels);
* ``peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import machine  # noqa: E402
from coldrec.estimator import ColdStartClassifier  # noqa: E402
from coldrec.graph import GRAPH_K, build_graph  # noqa: E402
from coldrec.neighbours import VectorIndex, top_k_cosine  # noqa: E402

N_CATEGORIES = 30


def synthetic(n: int, dim: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectors, their category, their sub-cluster, and one prompt per category."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CATEGORIES, dim)).astype(np.float32)
    subs = centres.repeat(10, axis=0) + 0.7 * rng.standard_normal((N_CATEGORIES * 10, dim)).astype(np.float32)
    cluster = rng.integers(0, len(subs), n)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        part = cluster[start : start + 100_000]
        block = subs[part] + 0.9 * rng.standard_normal((len(part), dim)).astype(np.float32)
        x[start : start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    prompts = centres + 0.5 * rng.standard_normal(centres.shape).astype(np.float32)
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    return x, cluster // 10, cluster, prompts


def cluster_neighbours(x: np.ndarray, cluster: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's k nearest inside its synthetic sub-cluster (exact), as an index would return."""
    rows = np.full((len(x), k), -1, dtype=np.int64)
    sims = np.zeros((len(x), k), dtype=np.float32)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        idx, s = top_k_cosine(x[members], x[members], min(k, len(members)))
        rows[members, : idx.shape[1]] = members[idx]
        sims[members, : idx.shape[1]] = s
    return rows, sims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--graph", choices=["index", "clusters"], default="index")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    x, y, cluster, prompts = synthetic(args.items)
    ids = [f"i{i}" for i in range(len(x))]
    started = time.perf_counter()
    index = VectorIndex.build(ids, x)
    if args.graph == "index":
        graph = build_graph(x, neighbours=index.search_rows(x, GRAPH_K + 1))
    else:
        graph = build_graph(x, neighbours=cluster_neighbours(x, cluster, GRAPH_K + 1))
    graph_s = time.perf_counter() - started

    rng = np.random.default_rng(1)
    labelled = np.concatenate([rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in range(N_CATEGORIES)])
    categories = [f"c{c}" for c in range(N_CATEGORIES)]
    started = time.perf_counter()
    model = ColdStartClassifier().fit_rows(x, ids, labelled, y[labelled], categories, prompts, graph=graph, index=index)
    fit_s = time.perf_counter() - started

    refresh, touched = [], []
    unlabelled = np.setdiff1d(np.arange(len(x)), labelled)
    for row in rng.choice(unlabelled, 5, replace=False):
        labelled = np.append(labelled, row)
        started = time.perf_counter()
        model = model.snapshot()
        touched.append(model.update_labels(labelled, y[labelled]))
        refresh.append(time.perf_counter() - started)
    labelled = np.append(labelled, rng.choice(unlabelled, 1))
    started = time.perf_counter()
    model.snapshot().update_labels(labelled, y[labelled], recalibrate=True)
    recalibrate_s = time.perf_counter() - started
    accuracy = float((model.label_distributions_.argmax(axis=1) == y).mean())

    result = {
        "items": args.items,
        "graph": args.graph,
        "index": index.kind,
        "graph_build_s": round(graph_s, 2),
        "fit_s": round(fit_s, 2),
        "refresh_after_label_s": round(float(np.median(refresh)), 3),
        "refresh_after_label_max_s": round(float(np.max(refresh)), 3),
        "rows_touched_median": int(np.median(touched)),
        "recalibrate_s": round(recalibrate_s, 2),
        "synthetic_accuracy": round(accuracy, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {**machine(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
