"""Few-shot quality on real data (Flipkart), with the machine recorded.

Runs ``python -m coldrec evaluate`` on ../shared/datasets/flipkart_products and writes
benchmarks/results/flipkart_seeds<N>.json plus a machine description. Usage:

    python benchmarks/bench_evaluate.py [--seeds 3] [--test-size 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "flipkart_products" / "flipkart_products.csv"
OUT = ROOT / "benchmarks" / "results"

sys.path.insert(0, str(ROOT))
from benchmarks._harness import machine  # noqa: E402


def run_evaluate(extra: list[str], out: Path) -> tuple[dict[str, object], float, float]:
    """Run ``python -m coldrec evaluate`` on Flipkart (title + description, classes with 10+ rows)
    with ``extra`` arguments; add the machine, wall time and peak memory to the JSON at ``out``."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "coldrec", "evaluate", str(DATA), "--text-col", "title", "--text-col", "description",
         "--label-col", "category", "--min-per-class", "10", *extra, "--json", str(out)],
        check=True, cwd=ROOT,
    )
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    doc = json.loads(out.read_text())
    doc["machine"] = machine()
    doc["wall_s"] = round(wall, 1)
    doc["peak_rss_mb"] = round(peak_mb)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc, wall, peak_mb


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"{DATA} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"flipkart_seeds{args.seeds}.json"
    doc, wall, peak_mb = run_evaluate(
        ["--shots", "0,1,4,8,16", "--seeds", str(args.seeds), "--test-size", str(args.test_size)], out
    )
    print(f"{'method':>13} {'k':>3} {'accuracy':>14} {'macro_f1':>14} {'macro_auc':>9} {'ece':>6}")
    for r in doc["results"]:
        print(f"{r['method']:>13} {r['shots']:>3} {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} "
              f"{r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} {r.get('macro_auc', float('nan')):9.3f} {r.get('ece', float('nan')):6.3f}")
    print(f"wall {wall:.0f} s, peak RSS {peak_mb:.0f} MB, embed {doc['embed_items_per_s']} items/s")
    print(json.dumps(doc["machine"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
