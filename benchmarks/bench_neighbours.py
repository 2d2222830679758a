"""Neighbour index benchmark: build time, single-query latency, recall@10 against exact search.

    python benchmarks/bench_neighbours.py --n 100000 --queries 1000 --json benchmarks/results/neighbours_100k.json

Synthetic clustered unit vectors (dimension 384 by default: 1 cluster per 100 points, Gaussian
spread so that nearest neighbours are not trivial), exact search by one matrix product as the
reference, and the index that :class:`coldrec.neighbours.VectorIndex` builds at that size.
Writes ``{"n", "dim", "index", "build_s", "query_ms_p50", "query_ms_p99", "exact_query_ms_p50",
"recall@10", "memory_mb"}`` plus the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import machine  # noqa: E402
from coldrec.neighbours import VectorIndex, top_k_cosine  # noqa: E402


def clustered_unit_vectors(n: int, dim: int, seed: int = 0, per_cluster: int = 100, spread: float = 0.6) -> np.ndarray:
    """``n`` unit vectors around ``n / per_cluster`` random centres (float32), built in blocks."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // per_cluster)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        labels = rng.integers(0, n_clusters, stop - start)
        block = centres[labels] + spread * rng.standard_normal((stop - start, dim)).astype(np.float32) / np.sqrt(dim)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    vectors = clustered_unit_vectors(args.n + args.queries, args.dim)
    base, queries = vectors[: args.n], vectors[args.n :]
    ids = [f"i{i}" for i in range(args.n)]
    before = rss_mb()
    started = time.perf_counter()
    index = VectorIndex.build(ids, base)
    build_s = time.perf_counter() - started
    memory_mb = rss_mb() - before

    def one_by_one(search) -> tuple[np.ndarray, list[float]]:
        found, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            found.append(search(q[None, :]))
            times.append((time.perf_counter() - t0) * 1000)
        return np.vstack(found), times

    approx, approx_ms = one_by_one(lambda q: index.search_rows(q, args.k)[0])
    sample = queries[: min(200, len(queries))]
    exact_ms = []
    for q in sample:
        t0 = time.perf_counter()
        top_k_cosine(q[None, :], base, args.k)
        exact_ms.append((time.perf_counter() - t0) * 1000)
    truth, _ = top_k_cosine(queries, base, args.k)
    recall = float(np.mean([len(set(a) & set(t)) / args.k for a, t in zip(approx, truth)]))
    result = {
        "n": args.n,
        "dim": args.dim,
        "index": index.kind,
        "build_s": round(build_s, 2),
        "query_ms_p50": round(float(np.percentile(approx_ms, 50)), 3),
        "query_ms_p99": round(float(np.percentile(approx_ms, 99)), 3),
        "exact_query_ms_p50": round(float(np.percentile(exact_ms, 50)), 3),
        "recall@10": round(recall, 4),
        "memory_mb": round(memory_mb, 1),
        "machine": {**machine(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
