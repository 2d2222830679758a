"""Cold-start audience quality on the demo purchases and on real Instacart orders.

Runs ``python -m coldrec audience-eval`` and writes benchmarks/results/audience_<name>_seeds<N>.json.
Usage: python benchmarks/bench_audience.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.bench_evaluate import machine  # noqa: E402

INSTACART = ROOT.parent / "shared" / "datasets" / "instacart_orders"
RUNS = {
    "demo": (ROOT / "data" / "demo" / "catalog.csv", ROOT / "data" / "demo" / "interactions.csv", ["title", "description"]),
    "instacart": (INSTACART / "products.csv", INSTACART / "interactions.csv", ["title"]),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (items, interactions, text_cols) in RUNS.items():
        if not items.is_file():
            print(f"{name}: {items} not found, skipped")
            continue
        out = out_dir / f"audience_{name}_seeds{args.seeds}.json"
        cmd = [sys.executable, "-m", "coldrec", "audience-eval", "--items", str(items), "--interactions", str(interactions),
               "--holdout-frac", "0.2", "--k", "10,50", "--seeds", str(args.seeds), "--json", str(out)]
        for col in text_cols:
            cmd += ["--text-col", col]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        doc = json.loads(out.read_text())
        doc["wall_s"] = round(time.perf_counter() - started, 1)
        doc["machine"] = machine()
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{name}: {doc['n_users']} users, {doc['n_items']} items, {doc['n_interactions']} purchases, {doc['wall_s']} s")
        for r in doc["results"]:
            print(f"  {r['method']:>12} R@10 {r['recall@10']:.3f} N@10 {r['ndcg@10']:.3f} "
                  f"R@50 {r['recall@50']:.3f} N@50 {r['ndcg@50']:.3f} AUC {r['auc']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
