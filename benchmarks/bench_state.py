"""Issue 21's before/after: work per upload and per label click, and a second ``predict``'s process time.

Runs the same measurements against two checkouts (``--old`` and ``--new``, each a folder with
``coldrec/``, ``app.py`` and ``pages/``) in subprocesses, on the bundled demo and the real bundled
model, and prints one JSON document (also written with ``--json``):

- ``clicks``: SQL statements (every ``Store`` statement: ``_registered`` entries) and
  ``predict`` calls (the predictor service's, or ``Workspace.predict`` before it) during the rerun of an upload's *Predict* click (12 products) and of
  a *Label next* label click, through Streamlit's AppTest;
- ``second_predict``: wall seconds of ``python -m coldrec predict FILE -o OUT`` for titles already
  embedded, old and new alternated ``--repeats`` times (farm-bench style pairing: both see the
  same load), with whether the process imported torch.

Usage: ``python benchmarks/bench_state.py --old /path/to/old --new . --repeats 5 --json out.json``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._harness import commit, finish, result  # noqa: E402

# Run inside a checkout (cwd = the checkout): counts statements and predict calls of one click.
_CLICK_PROBE = r"""
import json, sys
from contextlib import contextmanager
import coldrec.store as store_module
from coldrec.workspace import Workspace
from streamlit.testing.v1 import AppTest

counts = {"sql": 0, "predict": 0}
real_registered = store_module.Store._registered
@contextmanager
def counting(self, tables):
    counts["sql"] += 1
    with real_registered(self, tables) as cur:
        yield cur
store_module.Store._registered = counting
try:  # where predict lives: the predictor service (issue 21's facade), or the workspace before it
    from coldrec.services.predictor import PredictorService as Predicting
except ImportError:
    Predicting = Workspace
real_predict = Predicting.predict
def predict(self, *a, **k):
    counts["predict"] += 1
    return real_predict(self, *a, **k)
Predicting.predict = predict

def page(path):
    at = AppTest.from_file("app.py", default_timeout=300)
    at.run()
    return at.switch_page(path).run()

out = {}
at = page("pages/upload.py")
at.file_uploader[0].set_value(("new.csv", open(sys.argv[1], "rb").read(), "text/csv")).run()
button = next(b for b in at.button if b.label == "Predict")
counts.update(sql=0, predict=0)
at = button.click().run()
assert not at.exception, at.exception
out["upload_click"] = dict(counts)
at = page("pages/queue.py")
pick = next(b for b in at.button if b.key == "pick-1")
counts.update(sql=0, predict=0)
at = pick.click().run()
assert not at.exception, at.exception
out["label_click"] = dict(counts)
print(json.dumps(out))
"""

_PREDICT_PROBE = (
    "import sys, time; t = time.perf_counter(); from coldrec.cli import main; rc = main(['predict', sys.argv[1], "
    "'-o', sys.argv[2]]); print(time.perf_counter() - t, 'torch' in sys.modules); sys.exit(rc)"
)


def _env(db: Path) -> dict[str, str]:
    return {**os.environ, "COLDREC_DB": str(db), "HF_HUB_OFFLINE": "1", "COLDREC_DEVICE": "cpu"}


def _prepare(checkout: Path, work: Path) -> Path:
    """A demo database initialised by ``checkout``'s own ``init``."""
    db = Path(tempfile.mkdtemp(dir=work)) / "demo.duckdb"  # a new file each time: init refuses one that holds data
    subprocess.run([sys.executable, "-m", "coldrec", "init"], cwd=checkout, env=_env(db), check=True,
                   capture_output=True)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, type=Path)
    parser.add_argument("--new", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    work = Path(tempfile.mkdtemp(prefix="bench-state-"))
    upload = work / "new.csv"
    arrivals = (ROOT / "data" / "demo" / "new_arrivals.csv").read_text().splitlines()
    upload.write_text("\n".join(arrivals[:13]) + "\n")  # header + 12 products
    record = result("state", commits={k: commit(v) for k, v in checkouts.items()}, clicks={}, second_predict={})
    try:
        for name, checkout in checkouts.items():
            db = _prepare(checkout, work)
            probe = subprocess.run([sys.executable, "-c", _CLICK_PROBE, str(upload)], cwd=checkout, env=_env(db),
                                   capture_output=True, text=True)
            if probe.returncode:
                raise SystemExit(f"{name}: click probe failed\n{probe.stderr[-3000:]}")
            record["clicks"][name] = json.loads(probe.stdout.strip().splitlines()[-1])
        dbs = {name: _prepare(checkout, work) for name, checkout in checkouts.items()}
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        torch_loaded: dict[str, list[bool]] = {name: [] for name in checkouts}
        for name, checkout in checkouts.items():  # the first predict embeds the titles: not timed
            subprocess.run([sys.executable, "-m", "coldrec", "predict", str(upload), "-o", str(work / "out.csv")],
                           cwd=checkout, env=_env(dbs[name]), check=True, capture_output=True)
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():
                started = time.perf_counter()
                run = subprocess.run([sys.executable, "-c", _PREDICT_PROBE, str(upload), str(work / "out.csv")],
                                     cwd=checkout, env=_env(dbs[name]), capture_output=True, text=True, check=True)
                times[name].append(round(time.perf_counter() - started, 3))
                torch_loaded[name].append(run.stdout.split()[-1] == "True")
        record["second_predict"] = {
            name: {"seconds": times[name], "median_s": round(statistics.median(times[name]), 3),
                   "imported_torch": all(torch_loaded[name])} for name in checkouts
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(finish(record, args.json))


if __name__ == "__main__":
    main()
