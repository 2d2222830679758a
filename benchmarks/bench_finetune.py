"""Fine-tuning the encoder on the support set vs the frozen encoder (Flipkart), machine recorded.

Runs ``python -m coldrec evaluate --methods coldrec,coldrec+finetune`` on
../shared/datasets/flipkart_products with each fit capped in time (this is a shared 2-core
machine), and writes benchmarks/results/finetune_<variant>_<method>.json. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --method contrastive --shots 4,16,32 \\
        --seeds 3 --test-size 1000 --max-minutes 1 [--titles-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluate import DATA, OUT, ROOT, machine  # noqa: E402 - benchmarks are scripts, not a package


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["contrastive", "lora"], default="contrastive")
    parser.add_argument("--shots", default="4,16,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--max-minutes", type=float, default=1.0, help="cap per fit")
    parser.add_argument("--titles-only", action="store_true", help="the titles-only variant of Flipkart")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"{DATA} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    variant = "titles" if args.titles_only else "full"
    out = OUT / f"finetune_{variant}_{args.method}.json"
    text_cols = ["--text-col", "title"] + ([] if args.titles_only else ["--text-col", "description"])
    load_before = os.getloadavg()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "coldrec", "evaluate", str(DATA), *text_cols, "--label-col", "category",
         "--min-per-class", "10", "--shots", args.shots, "--seeds", str(args.seeds), "--test-size", str(args.test_size),
         "--methods", "coldrec,coldrec+finetune", "--finetune-method", args.method,
         "--finetune-max-minutes", str(args.max_minutes), "--json", str(out)],
        check=True, cwd=ROOT,
    )
    wall = time.perf_counter() - started
    doc = json.loads(out.read_text())
    doc["machine"] = {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    doc["wall_s"] = round(wall, 1)
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'method':>17} {'k':>3} {'accuracy':>14} {'macro_f1':>14} {'fit_s':>6} {'steps':>5}")
    for r in doc["results"]:
        print(f"{r['method']:>17} {r['shots']:>3} {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} "
              f"{r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} {r.get('fit_s', 0):6.0f} {r.get('train_steps', 0):5.0f}")
    print(f"wall {wall:.0f} s; load average {doc['machine']['load_average_before']} -> {doc['machine']['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
