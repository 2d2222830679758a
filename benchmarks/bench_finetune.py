"""Fine-tuning the encoder on the support set vs the frozen encoder (Flipkart), machine recorded.

Runs ``python -m coldrec evaluate --methods coldrec,coldrec+finetune`` on
../shared/datasets/flipkart_products with each fit capped in time (this is a shared 2-core
machine), and writes benchmarks/results/finetune_<variant>_<method>_k<shots>_cap<minutes>min.json. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --method contrastive --shots 4,16,32 \\
        --seeds 3 --test-size 1000 --max-minutes 1 [--titles-only]
    python benchmarks/bench_finetune.py --demo [--method contrastive]

``--demo`` times what a new user's first "Improve the model" does on the bundled demo (448
labelled catalog items, 16 categories) in a temporary database with the default settings:
training, the held-out check, re-embedding; writes benchmarks/results/finetune_demo_<method>.json.
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
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # coldrec itself, for --demo
from _harness import machine  # noqa: E402 - benchmarks are scripts, not a package
from bench_evaluate import DATA, OUT, ROOT  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["contrastive", "lora"], default="contrastive")
    parser.add_argument("--shots", default="4,16,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--max-minutes", type=float, default=1.0, help="cap per fit")
    parser.add_argument("--titles-only", action="store_true", help="the titles-only variant of Flipkart")
    parser.add_argument("--demo", action="store_true", help="time the first fit on the demo workspace instead")
    args = parser.parse_args()
    if args.demo:
        return demo(args.method)
    if not DATA.is_file():
        print(f"{DATA} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    variant = "titles" if args.titles_only else "full"
    out = OUT / f"finetune_{variant}_{args.method}_k{args.shots.replace(',', '-')}_cap{args.max_minutes:g}min.json"
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


def demo(method: str) -> int:
    """Time ``improve_model`` with default settings on a fresh demo workspace (real model)."""
    import tempfile

    from coldrec import finetune
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    load_before = os.getloadavg()
    phase_starts: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        phase_starts.setdefault(phase, time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "demo.duckdb")
        with Workspace.open(settings) as ws:
            ws.imports.init_catalog()
            started = time.perf_counter()
            card = finetune.improve_model(ws, method=method, progress=progress)
            ended = time.perf_counter()
    total = ended - started
    starts = sorted(phase_starts.items(), key=lambda kv: kv[1])
    ends = [t for _, t in starts[1:]] + [ended]
    doc = {"card": card, "total_s": round(total, 1),
           # each phase runs from its first progress call to the next phase's (the last to the end)
           "phases_s": {p: round(e - t, 1) for (p, t), e in zip(starts, ends)},
           "machine": {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                       "load_average_before": [round(x, 2) for x in load_before],
                       "load_average_after": [round(x, 2) for x in os.getloadavg()]}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"finetune_demo_{method}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"demo first fit ({method}): {total:.0f} s in all, phases {doc['phases_s']}; held-out accuracy "
          f"{card['accuracy_before']:.3f} -> {card['accuracy_after']:.3f} on {card['held_out']} labels; "
          f"{card['steps']}/{card['planned_steps']} steps; load average {doc['machine']['load_average_before']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
