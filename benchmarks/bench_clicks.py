"""How long each labelling click takes until the page has rerun, on the demo and on a 10k-item workspace.

Each action is performed through Streamlit's AppTest exactly as a click arrives (widget state
set, script run) and timed from the click to the end of the run: the label is written, the
classifier refits, predictions and the queue are recomputed and the page is drawn again.
AppTest always reruns the whole page, while in a browser a click inside a fragment (the Label
next card, the likely-mistakes panel) reruns only that fragment, so these are upper bounds of
the server's work; the library calls of the Label next card after key 1 are timed on their own
too ("library work of key 1 (fragment)"); ``--browser`` adds the time a real Chromium takes from the click until the
page settles (Streamlit's running indicator gone) on the demo.

Workspaces: ``demo`` is data/demo loaded by ``Workspace.load_demo`` with the bundled model;
``10k`` is benchmarks/bench_pages.py's synthetic workspace (40 categories, 6,000 labelled
catalog items, 4,000 uploads; vectors come from the cache). Usage:
python benchmarks/bench_clicks.py [--workspaces demo,10k] [--repeats 3] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import machine  # noqa: E402


def demo_workspace(path: Path):  # noqa: ANN201
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    ws = Workspace.open(Settings(db_path=path))
    ws.load_demo()
    # One wrong label a person gave, so "likely mistakes" has something to fix.
    ws.labels.label("CAT-0001", "Footwear", who="bench", source="manual")
    return ws


def synthetic_workspace(path: Path, n: int = 10_000):  # noqa: ANN201
    from benchmarks.bench_pages import build

    ws = build(path, n)
    labels = ws.store.labels()
    wrong = labels["category"].map(lambda c: "Category 00" if c != "Category 00" else "Category 01")
    ws.store.add_labels(labels["item_id"][:5].tolist(), wrong[:5].tolist(), who="bench", source="manual")
    return ws


def _app(ws, page: str):  # noqa: ANN001, ANN201
    from streamlit.testing.v1 import AppTest

    from coldrec import ui

    ui.Workspace.open = classmethod(lambda cls, settings=None, encoder=None: ws)  # type: ignore[method-assign]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["who"] = "bench"
    at.run()
    at.switch_page(page).run()
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return at


def _timed_run(at, figures: list[float]):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    at.run()
    figures.append(time.perf_counter() - started)
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return at


def _button(at, starts: str):  # noqa: ANN001, ANN201
    return next(b for b in at.button if b.label.startswith(starts))


def measure(ws, repeats: int) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """Seconds per action (median and max over ``repeats``)."""
    times: dict[str, list[float]] = {}

    def record(name: str) -> list[float]:
        return times.setdefault(name, [])

    batch = ws.store.batches()["batch"].iloc[0]
    at = _app(ws, "pages/upload.py")
    key = f"results-{batch}"
    for row in range(repeats):
        at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
        at = _timed_run(at, record("select a row (Upload & predict)"))
        _button(at, "Accept: ").click()
        at = _timed_run(at, record("accept a prediction"))
        correct = next(s for s in at.selectbox if s.label == "Correct to")
        options = [o for o in correct.options if o != correct.value]
        correct.set_value(options[row % len(options)])
        _button(at, "Save correction").click()
        at = _timed_run(at, record("save a correction"))

    at = _app(ws, "pages/queue.py")
    for _ in range(repeats):
        _button(at, "1 · ").click()
        at = _timed_run(at, record("Label next: key 1"))
        # Key 2 where there is a second guess (alternatives under 2% are not offered).
        second = [b for b in at.button if b.label.startswith("2 · ")]
        (second[0] if second else _button(at, "1 · ")).click()
        at = _timed_run(at, record("Label next: key 2"))
        picker = next(s for s in at.selectbox if s.label.startswith("None of these"))
        picker.set_value(picker.options[-1])
        at = _timed_run(at, record("Label next: type a category"))
        _button(at, "Save this category").click()
        at = _timed_run(at, record("Label next: save none-of-these"))
        _button(at, "Skip for now").click()
        at = _timed_run(at, record("Label next: skip"))
        _button(at, "Undo my last action").click()
        at = _timed_run(at, record("undo"))

    # What the Label next card (a fragment) computes after key 1 in a browser, without
    # Streamlit: the label, the refit, the next ranking block, the shown item's details.
    from coldrec import explore, labelling

    for _ in range(repeats):
        started = time.perf_counter()
        top = labelling.queue(ws, "cluster-margin", None, n=20).iloc[0]
        ws.labels.label(str(top["item_id"]), str(top["suggestion"]), who="bench", source="accepted")
        ws.predictor.classifier()
        following = labelling.queue(ws, "cluster-margin", None, n=20)
        if len(following):
            shown = str(following["item_id"].iloc[0])
            explore.is_novel(ws, shown)
            explore.item_details(ws, shown)
        labelling.propagation_preview(ws, str(top["item_id"]))
        record("Label next card: library work of key 1 (fragment)").append(time.perf_counter() - started)

    at = _app(ws, "pages/label.py")
    for _ in range(repeats):
        fix = [b for b in at.button if b.label.startswith("Change to ")]
        if not fix:
            break
        fix[0].click()
        at = _timed_run(at, record("fix a likely mistake"))
    return {
        name: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3), "n": len(v)}
        for name, v in times.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspaces", default="demo,10k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time clicks in Chromium (demo only)")
    parser.add_argument("--merge", action="store_true", help="keep the other workspaces' figures in clicks.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import streamlit as st

    path = ROOT / "benchmarks" / "results" / "clicks.json"
    result: dict = {"machine": machine(), "load_average_start": os.getloadavg(), "workspaces": {}}
    if args.merge and path.exists():  # add to the figures of an earlier run
        result["workspaces"] = json.loads(path.read_text()).get("workspaces", {})
    for name in args.workspaces.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            ws = demo_workspace(Path(tmp) / "demo.duckdb") if name == "demo" else synthetic_workspace(Path(tmp) / "bench.duckdb")
            print(f"{name}: built in {time.perf_counter() - started:.1f} s; {ws.readiness()}", flush=True)
            ws.predictor.classifier()  # the first fit is the page's first visit, not a click
            figures = measure(ws, args.repeats)
            for action, f in figures.items():
                print(f"  {action:<36} median {f['median_s']:6.3f} s  max {f['max_s']:6.3f} s  (n={f['n']})", flush=True)
            result["workspaces"][name] = {"items": int(len(ws.store.items())), "actions": figures,
                                          "load_average": os.getloadavg()}
            st.cache_resource.clear()
            ws.close()
    if args.browser:
        from benchmarks.bench_clicks_browser import browser_clicks

        result["browser_demo"] = browser_clicks(args.repeats)
    result["load_average_end"] = os.getloadavg()
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
