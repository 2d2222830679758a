"""Time from upload to predictions for 1,000 new products, first time and with cached embeddings.

Two paths are timed on the real bundled model:
  * library: read + validate the file, store the batch, embed, predict, store predictions;
  * dashboard: the same through Streamlit's AppTest (set the file, click Predict, render the table).
Products come from ../shared/datasets/flipkart_products when present, else the demo arrivals.
Prints figures, the peak memory of this process and the machine; writes benchmarks/results/upload.json.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks._harness import machine  # noqa: E402

FLIPKART = ROOT.parent / "shared" / "datasets" / "flipkart_products" / "flipkart_products.csv"


def products(n: int, described: bool) -> bytes:
    """``n`` products as CSV bytes (sku, title, description): with descriptions, or titles only."""
    import pandas as pd

    if FLIPKART.is_file():
        frame = pd.read_csv(FLIPKART, keep_default_na=False).drop_duplicates("title")
        frame = frame[(frame["description"] != "") == described].head(n)
        frame = frame.rename(columns={"item_id": "sku"})[["sku", "title", "description"]]
    else:
        demo = pd.read_csv(ROOT / "data" / "demo" / "new_arrivals.csv", keep_default_na=False)
        frame = pd.concat([demo.assign(title=demo["title"] + f" v{i}") for i in range(n // len(demo) + 1)]).head(n)
        frame = frame.rename(columns={"item_id": "sku"})[["sku", "title", "description"]]
        frame["sku"] = [f"B{i}" for i in range(len(frame))]
        if not described:
            frame["description"] = ""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def library_path(ws, data: bytes, batch: str) -> float:
    from coldrec.ingest import load_items

    started = time.perf_counter()
    items = load_items(data, "bench.csv")
    result, _ = ws.predictor.upload_and_predict(items, batch)
    result.frame()
    return time.perf_counter() - started


def dashboard_path(data: bytes, name: str) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    at = at.switch_page("pages/upload.py").run()
    started = time.perf_counter()
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    at = next(b for b in at.button if b.label == "Predict").click().run()
    elapsed = time.perf_counter() - started
    assert not at.exception and len(at.dataframe[-1].value) == 1000, "predictions table missing"
    return elapsed


def fresh_workspace(db: Path):
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    ws = Workspace.open(Settings(db_path=db))
    ws.imports.init_catalog()
    ws.predictor.classifier()
    return ws


def main() -> int:
    n = 1000
    doc: dict[str, object] = {"products": n, "source": "flipkart" if FLIPKART.is_file() else "demo"}
    with tempfile.TemporaryDirectory() as tmp:
        for described in (True, False):
            kind = "described" if described else "titles_only"
            data = products(n, described)
            # Library path: a fresh database each time, so "first" really embeds everything.
            ws = fresh_workspace(Path(tmp) / f"lib-{kind}.duckdb")
            doc[f"library_{kind}_first_s"] = round(library_path(ws, data, "first"), 2)
            doc[f"library_{kind}_cached_s"] = round(library_path(ws, data, "again"), 2)
            ws.close()
            # Dashboard path (AppTest): the same products on its own fresh database.
            db = Path(tmp) / f"app-{kind}.duckdb"
            fresh_workspace(db).close()
            os.environ["COLDREC_DB"] = str(db)
            import streamlit as st

            st.cache_resource.clear()
            doc[f"dashboard_{kind}_first_s"] = round(dashboard_path(data, "first.csv"), 2)
            doc[f"dashboard_{kind}_cached_s"] = round(dashboard_path(data, "again.csv"), 2)
            st.cache_resource.clear()
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    doc["machine"] = machine()
    out = ROOT / "benchmarks" / "results" / "upload.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
