"""Restart to first prediction, and labels while a background refit is (or is not) pending, on a
kept bench_scale workspace (``bench_scale.py --items N --keep DIR --init-only``).

    python benchmarks/bench_label_refresh.py DIR/bench.duckdb --labels 20 --json OUT

Each phase runs in a fresh process (a real restart: nothing cached in memory):

1. ``first start``: remove any saved predictor state, open the workspace as the dashboard does and
   time until ``current_predictions()`` returns (the full fit; it then saves the state), then wait
   for the background refit to land (so the saved state has nothing pending).
2. ``restart``: the same on a second start (the saved state is loaded), split into open, item
   vectors, item index, classifier, predictions; then ``--quiet-labels`` labels, each made only
   after the background refit of the one before has landed (``refitting()`` false), then ``--labels``
   labels back to back, so that from the second on a refit is pending. A label is timed from
   ``Workspace.label`` until ``current_predictions()`` shows it (predicted as its new category),
   split into the store write, ``classifier()`` and the predictions. p50/p95 of each group.

``--code DIR`` runs the phases on another checkout's ``coldrec`` (e.g. ``git archive`` of the commit
before, for a paired before/after on the same workspace). Prints figures with the machine and load
(``benchmarks/_harness.py``); peak RSS per phase from ``ru_maxrss``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _harness  # noqa: E402


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 3) if values else None


class _Calls:
    """The workspace calls this bench makes, on the services (this code) or on Workspace itself (a
    ``--code`` checkout from before the services)."""

    def __init__(self, workspace) -> None:  # noqa: ANN001
        self.workspace, self.store = workspace, workspace.store
        services = hasattr(workspace, "predictor")
        self.item_vectors = workspace.vectors.item_vectors if services else workspace.item_vectors
        self.item_index = workspace.vectors.item_index if services else workspace.item_index
        self.classifier = workspace.predictor.classifier if services else workspace.classifier
        self.current_predictions = workspace.predictor.current_predictions if services else workspace.current_predictions
        self.refitting = workspace.predictor.refitting if services else workspace.refitting
        self.items = workspace.catalog.items if services else workspace.items
        self.label = workspace.labels.label if services else workspace.label


def _phase(db: str, phase: str, labels: int, quiet_labels: int, wait_s: float, seed: int) -> dict[str, object]:
    """One process's work (see the module docstring); returns its figures."""
    import numpy as np

    if os.environ.get("COLDREC_BENCH_CODE"):  # another checkout's coldrec (--code)
        sys.path.insert(0, os.environ["COLDREC_BENCH_CODE"])
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    out: dict[str, object] = {"phase": phase}
    if phase == "first start":  # no saved predictor state: what every start was before issue 21
        out["removed_states"] = [str(p) for p in Path(db + ".index").glob("*/predictor.npz")]
        for path in out["removed_states"]:
            Path(path).unlink()
    started = time.perf_counter()
    ws = _Calls(Workspace.open(Settings.from_env(db_path=db)))
    parts = {"open": time.perf_counter() - started}
    for name, step in (("item vectors", ws.item_vectors), ("item index", ws.item_index), ("classifier", ws.classifier),
                       ("predictions", ws.current_predictions)):
        t = time.perf_counter()
        step()
        parts[name] = time.perf_counter() - t
    out["first_predictions_s"] = round(time.perf_counter() - started, 3)
    out["first_predictions_parts_s"] = {k: round(v, 3) for k, v in parts.items()}
    out["refit_pending_after_start"] = ws.refitting()
    out["load_after_start"] = _harness.load_average()

    def wait_for_refit() -> float:
        t = time.perf_counter()
        while ws.refitting() and time.perf_counter() - t < wait_s:
            time.sleep(0.2)
        return round(time.perf_counter() - t, 2)

    out["refit_landed_after_s"] = wait_for_refit()
    out["refit_still_pending"] = ws.refitting()
    if phase == "restart":
        items = ws.items()
        unlabelled = items.index[items["category"].isna()].to_numpy()
        rng = np.random.default_rng(seed)
        names = ws.store.category_names()

        def one(quiet: bool) -> dict[str, object]:
            waited = wait_for_refit() if quiet else 0.0
            pending = ws.refitting()
            row = int(rng.choice(unlabelled))
            item_id = str(items["item_id"].iloc[row])
            now = ws.current_predictions()
            category = str(next(c for c in rng.permutation(names) if c != now["predicted"].iloc[row]))
            t0 = time.perf_counter()
            ws.label(item_id, category, who="bench")
            t1 = time.perf_counter()
            ws.classifier()
            t2 = time.perf_counter()
            shown = ws.current_predictions()
            t3 = time.perf_counter()
            return {"s": round(t3 - t0, 3), "store_s": round(t1 - t0, 3), "classifier_s": round(t2 - t1, 3),
                    "predictions_s": round(t3 - t2, 3), "shown": bool(shown["predicted"].iloc[row] == category),
                    "refit_pending": pending, "waited_s": waited, "load_1m": _harness.load_average()[0]}

        for group, count, quiet in (("quiet", quiet_labels, True), ("pending", labels, False)):
            runs = []
            for i in range(count):
                runs.append(one(quiet))
                print(f"  {group} label {i + 1}: {runs[-1]}", file=sys.stderr, flush=True)
            seconds = [r["s"] for r in runs]
            out[f"labels_{group}"] = runs
            out[f"label_{group}_p50_s"] = _percentile(seconds, 50)
            out[f"label_{group}_p95_s"] = _percentile(seconds, 95)
            out[f"label_{group}_max_s"] = max(seconds) if seconds else None
            out[f"label_{group}_all_shown"] = all(r["shown"] for r in runs)
            out[f"label_{group}_with_refit_pending"] = sum(r["refit_pending"] for r in runs)
        out["refit_landed_after_labels_s"] = wait_for_refit()
    ws.workspace.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="a kept bench_scale workspace's database (DIR/bench.duckdb)")
    parser.add_argument("--labels", type=int, default=20, help="labels back to back (a refit pending from the second)")
    parser.add_argument("--quiet-labels", type=int, default=20, help="labels each after the last refit landed")
    parser.add_argument("--wait", type=float, default=900.0, help="seconds to wait at most for a refit to land")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", help="run the phases on this checkout's coldrec instead (a before/after)")
    parser.add_argument("--phases", default="first start,restart", help="comma-separated: first start, restart")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # the child process's own phase
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(_phase(args.db, args.phase, args.labels, args.quiet_labels, args.wait, args.seed)))
        return 0
    code = Path(args.code).resolve() if args.code else ROOT
    record = _harness.result("bench_label_refresh", db=args.db, code=str(code), labels=args.labels,
                             quiet_labels=args.quiet_labels)
    if args.code:
        record["code_commit"] = _harness.commit(code) if (code / ".git").exists() else code.name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLDREC_BENCH_CODE": str(code)}
    for phase in [p.strip() for p in args.phases.split(",") if p.strip()]:
        command = [sys.executable, str(Path(__file__).resolve()), args.db, "--phase", phase, "--labels", str(args.labels),
                   "--quiet-labels", str(args.quiet_labels), "--wait", str(args.wait), "--seed", str(args.seed)]
        done = subprocess.run(command, cwd=code, env=env, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"phase {phase!r} failed ({done.returncode})")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        record[phase.replace(" ", "_")] = figures
        print(f"{phase}: first predictions {figures['first_predictions_s']} s {figures['first_predictions_parts_s']}, "
              f"peak RSS {figures['peak_rss_mb']} MB", flush=True)
        for group in ("quiet", "pending"):
            if f"label_{group}_p50_s" in figures:
                print(f"  labels ({group}): p50 {figures[f'label_{group}_p50_s']} s, p95 {figures[f'label_{group}_p95_s']} s, "
                      f"max {figures[f'label_{group}_max_s']} s, refit pending at {figures[f'label_{group}_with_refit_pending']}"
                      f", all shown {figures[f'label_{group}_all_shown']}", flush=True)
    print(_harness.finish(record, Path(args.json) if args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
