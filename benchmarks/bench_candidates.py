"""What the wider candidate table costs: searching every item's kept neighbours at the old width
(GRAPH_K + 1 = 11) and at GRAPH_CANDIDATES (31), and the table's bytes, on a saved index (a kept
``bench_scale`` workspace's, read in place and never written: the table is searched in memory).

    OMP_NUM_THREADS=1 nice python benchmarks/bench_candidates.py DIR/bench.duckdb.index/MODEL --json OUT

Also the graph's edge weighing over each width (``build_graph`` on the index's vectors with random
unit features of the text view's 256 dimensions: the cost of the mixed similarity, not its quality).
Prints figures with the machine and load (``benchmarks/_harness.py``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _harness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from coldrec.graph import GRAPH_CANDIDATES, GRAPH_K, build_graph
    from coldrec.neighbours import VectorIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a saved index folder (DIR/bench.duckdb.index/<model>)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    index, why = VectorIndex.load_checked(args.folder)
    if index is None:
        raise SystemExit(f"{args.folder}: {why}")
    index.load_graph()
    record = _harness.result("bench_candidates", folder=args.folder, items=len(index), kind=index.kind, widths=[])
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(index.alive), 256)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    for width in (GRAPH_K + 1, GRAPH_CANDIDATES):
        index._knn_rows, index._knn_sims = np.zeros((0, 0), np.int32), np.zeros((0, 0), np.float32)  # in memory only
        started = time.perf_counter()
        rows, sims = index.neighbour_table(width)
        search_s = time.perf_counter() - started
        started = time.perf_counter()
        build_graph(index.vectors, neighbours=(rows, sims), features=features)
        graph_s = time.perf_counter() - started
        figures = {"width": width, "search_s": round(search_s, 2), "graph_s": round(graph_s, 2),
                   "table_mb": round((index._knn_rows.nbytes + index._knn_sims.nbytes) / 2**20, 1),
                   "table_mb_per_million_items": round(8 * width * 1_000_000 / 2**20, 1),
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   "load_1m": _harness.load_average()[0]}
        record["widths"].append(figures)  # type: ignore[union-attr]
        print(figures, flush=True)
    print(_harness.finish(record, Path(args.json) if args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
