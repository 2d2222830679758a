"""How long the Categories & model page's "items embedded with this model" count takes on a large
workspace: counting cached hashes (``Store.count_embedded``) against fetching every vector to count
it (``Store.get_embeddings``, what the count used before). Opens the database read-only.

Usage: ``python benchmarks/bench_coverage.py DB [--fetch] [--json OUT]`` (``--fetch`` also times
``get_embeddings`` of every item; it holds every vector in memory).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import finish, result  # noqa: E402

from coldrec.encoder import text_hash  # noqa: E402
from coldrec.ingest import item_text  # noqa: E402
from coldrec.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("--fetch", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    store = Store(args.db, read_only=True)
    items = store.items()
    hashes = [text_hash(item_text(t, d)) for t, d in zip(items["title"], items["description"])]
    model = str(store.embedding_counts().sort_values("vectors").iloc[-1]["model"])
    record = result("coverage", items=len(hashes), model=model)
    started = time.perf_counter()
    record["count_embedded"] = store.count_embedded(model, hashes)
    record["count_embedded_s"] = round(time.perf_counter() - started, 2)
    if args.fetch:
        started = time.perf_counter()
        found = store.get_embeddings(model, hashes)
        record["get_embeddings_found"] = sum(h in found for h in hashes)
        record["get_embeddings_s"] = round(time.perf_counter() - started, 2)
    record["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    print(finish(record, args.json))


if __name__ == "__main__":
    main()
