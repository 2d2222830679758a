"""A label's refresh on a kept bench_scale workspace (``bench_scale.py --keep DIR``), in one process.

    python benchmarks/bench_label_refresh.py DIR/bench.duckdb

Prints the first predictions after a start, three labels (seconds until ``current_predictions()``
shows each, whether it did, whether the background refit was still running, load average), the
Label next queue after them, when the background refit landed, and the peak RSS.
"""
import os, sys, time, random, resource
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coldrec.config import Settings
from coldrec.workspace import Workspace
from coldrec import labelling
t0 = time.time()
ws = Workspace.open(Settings.from_env(db_path=sys.argv[1]))
t = time.time(); ws.predictor.current_predictions(); print("first predictions (open + fit + predict)", round(time.time() - t0, 1), flush=True)
items = ws.catalog.items(); cats = ws.store.category_names()
rng = random.Random(0)
def lab():
    item = items["item_id"].iloc[rng.randrange(len(items))]
    cat = rng.choice(cats)
    ws.labels.label(item, cat, who="bench")
    t = time.time(); cp = ws.predictor.current_predictions(); s = time.time() - t
    ok = cp.loc[ws.catalog.item_positions([item])[0], "predicted"] == cat
    return round(s, 2), bool(ok), ws.predictor.refitting()
for i in range(3):
    print("label", lab(), os.getloadavg()[0], flush=True)
t = time.time(); labelling.queue(ws, "cluster-margin", n=20); print("queue after label", round(time.time() - t, 1), flush=True)
t = time.time()
while ws.predictor.refitting() and time.time() - t < 240: time.sleep(1)
print("background refit landed after", round(time.time() - t, 1), "s", flush=True)
print("label quiet", lab(), os.getloadavg()[0], flush=True)
print("peak rss MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
