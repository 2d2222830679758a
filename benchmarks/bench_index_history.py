"""Do predictions depend on the index's history (issue 25, item 11)? The demo catalog, its new
arrivals uploaded in three batches (the index and the classifier grow incrementally, the index is
saved), then the same database predicted three ways: in the running workspace, after a restart
that loads the saved index, and after a restart with the index folder deleted (a rebuild).
Prints how many predictions differ and by how much; writes benchmarks/results/index_history.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_index_history.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_evaluate import machine  # noqa: E402


def _predict(ws, items):
    frame = ws.predictor.predict(items.copy()).frame().set_index("item_id")
    return frame["top1"], frame["top1_probability"]


def _compare(a, b) -> dict:
    top1 = int((a[0] != b[0].reindex(a[0].index)).sum())
    gap = float((a[1] - b[1].reindex(a[1].index)).abs().max())
    return {"different_top1": top1, "of": len(a[0]), "max_probability_gap": round(gap, 4)}


def main() -> None:
    from coldrec.config import DEMO_DIR, Settings
    from coldrec.ingest import OPERATOR_FILES, load_items
    from coldrec.workspace import Workspace

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(db_path=Path(folder) / "h.duckdb")
        ws = Workspace.open(settings)
        ws.imports.init_catalog()
        ws.vectors.prepare()
        arrivals = load_items(DEMO_DIR / "new_arrivals.csv", limits=OPERATOR_FILES)
        for part in range(3):
            ws.predictor.upload_and_predict(arrivals.iloc[part::3].reset_index(drop=True), f"batch {part}", who="bench")
        queries = arrivals.assign(item_id=["Q-" + i for i in arrivals["item_id"]])  # not stored: read-only predictions
        running = _predict(ws, queries)
        index_folder = ws.vectors.index_folder()
        encoder = ws.encoder
        ws.close()
        ws = Workspace.open(settings, encoder=encoder)
        saved = _predict(ws, queries)
        ws.close()
        shutil.rmtree(index_folder)
        ws = Workspace.open(settings, encoder=encoder)
        rebuilt = _predict(ws, queries)
        ws.close()
    doc = {
        "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        "saved_index_vs_rebuild": _compare(saved, rebuilt),
        "running_workspace_vs_rebuild": _compare(running, rebuilt),
    }
    print(json.dumps(doc, indent=2))
    (ROOT / "benchmarks" / "results" / "index_history.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
