"""The attack run of issue 12, replayed: every hostile upload, taxonomy, purchase file and SQL query,
each in a fresh process, with its outcome, seconds and peak RSS growth; plus the compression ratios
behind ``Limits.max_decoded_bytes`` on two real catalogs (Flipkart titles+descriptions, Instacart
titles). Prints a table and the machine; writes benchmarks/results/hostile.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_hostile.py
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_evaluate import machine  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "benchmarks" / "results" / "hostile.json"

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    import pandas, openpyxl, pyarrow.parquet, duckdb  # imports are not the case's cost
    from tests import hostile_files
    from coldrec.errors import ColdrecError
    {setup}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        {action}
        outcome = "accepted"
    except ColdrecError as exc:
        outcome = "refused: " + " ".join(str(exc).split())
    print(json.dumps({{"outcome": outcome, "seconds": round(time.perf_counter() - started, 3),
                      "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1),
                      "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}}))
    """
)


def _case(setup: str, action: str) -> dict:
    code = _CHILD.format(root=str(ROOT), setup=setup, action=action)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    if done.returncode != 0:
        return {"outcome": "CRASH: " + (done.stderr.strip().splitlines() or ["?"])[-1], "seconds": None, "rss_growth_mb": None}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cases() -> dict[str, list[tuple[str, str, str]]]:
    """Area -> (name, setup, action) run in a child process."""
    from tests import hostile_files

    uploads = [
        (name, f"filename, data = hostile_files.UPLOADS[{name!r}]()\nfrom coldrec.ingest import load_items",
         "load_items(data, filename)")
        for name in hostile_files.UPLOADS
    ]
    uploads.append(("pasted_lone_surrogate", "from coldrec.ingest import parse_pasted, prepare_items",
                    "prepare_items(parse_pasted('mug \\ud83d\\tbowl'), 'pasted text')"))
    taxonomy = [
        ("deep_3000x302", "filename, data = hostile_files.taxonomy_deep()\nfrom coldrec.taxonomy import read_taxonomy",
         "read_taxonomy(data, filename)"),
        ("loop", "from coldrec.taxonomy import read_taxonomy", "read_taxonomy(b'A > B > a', 'loop.txt')"),
        ("path_25k_chars", "from coldrec.taxonomy import read_taxonomy",
         "read_taxonomy(('Home > ' + 'x' * 25000).encode(), 'long.txt')"),
    ]
    purchases = [
        (f"{column}={value}", "from coldrec.audience import load_interactions",
         f"load_interactions(b'user_id,item_id,{column}\\nu,a,1\\nu,b,{value}\\n', 'buys.csv')")
        for column, value in (("order_number", "3000000000"), ("order_number", "1e20"),
                              ("quantity", "inf"), ("quantity", "-1"))
    ]
    seed = ("from coldrec.store import Store\nfrom coldrec.sqlbox import run_readonly\nimport pandas as pd\n"
            "store = Store(':memory:')\n"
            "store.upsert_items(pd.DataFrame({'item_id': ['a'], 'title': ['pan']}), source='catalog')")
    sql = [
        (label, seed, f"run_readonly(store, 'm', {query!r})")
        for label, query in (
            ("repeat_3MB_x1001", "SELECT repeat('x', 3000000) AS s FROM range(1001)"),
            ("sorted_repeat", "SELECT repeat('x', 3000000) AS s FROM range(1001) ORDER BY s"),
            ("cross_join_sort", "SELECT a.range + b.range AS s FROM range(10000000000) a, range(10) b ORDER BY s"),
            ("temp_dir_listing", "SELECT * FROM glob('./.tmp/*')"),
            ("settings", "SELECT * FROM duckdb_settings()"),
            ("current_setting", "SELECT current_setting('temp_directory')"),
            ("cte_delete", "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d"),
            ("query_function", "SELECT * FROM query('DROP TABLE items')"),
        )
    ]
    return {"uploads": uploads, "taxonomy": taxonomy, "purchases": purchases, "sql": sql}


def cli_predict_cases(folder: Path) -> list[dict]:
    """``python -m coldrec predict FILE -o out.csv`` on each attack file: exit status, wall seconds,
    the process's peak RSS, the first line of its message."""
    from tests import hostile_files

    out = []
    env = {**os.environ, "COLDREC_DB": str(folder / "cli.duckdb"), "HF_HUB_OFFLINE": "1"}
    for case, build in hostile_files.UPLOADS.items():
        name, data = build()
        (folder / name).write_bytes(data)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "coldrec", "predict", str(folder / name), "-o", str(folder / "out.csv")],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        lines = stderr.strip().splitlines()
        out.append({"case": case, "exit": proc.returncode, "seconds": round(seconds, 2),
                    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stderr_lines": len(lines),
                    "message": lines[-1][:160] if lines else ""})
        print(f"cli       {case:28} exit {proc.returncode} {seconds:6.2f} s {usage.ru_maxrss / 1024:7.1f} MB  "
              f"{(lines[-1] if lines else '')[:90]}", flush=True)
    return out


def compression_ratios() -> list[dict]:
    """Decoded text bytes / file bytes for real catalogs written as Parquet and .xlsx (sheet XML)."""
    import zipfile

    import pandas as pd

    out = []
    sources = {
        "flipkart (title+description)": (SHARED / "flipkart_products" / "flipkart_products.csv", ["title", "description"]),
        "instacart (titles only)": (SHARED / "instacart_orders" / "products.csv", None),
    }
    for name, (path, columns) in sources.items():
        if not path.is_file():
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = frame[columns] if columns else frame
        text_bytes = int(sum(frame[c].str.encode("utf-8").str.len().sum() for c in frame.columns))
        parquet = io.BytesIO()
        frame.to_parquet(parquet)
        xlsx = io.BytesIO()
        frame.to_excel(xlsx, index=False)
        with zipfile.ZipFile(io.BytesIO(xlsx.getvalue())) as archive:
            expanded = sum(m.file_size for m in archive.infolist())
        out.append({
            "catalog": name, "rows": len(frame), "text_mb": round(text_bytes / 1e6, 2),
            "parquet_text_per_file_byte": round(text_bytes / len(parquet.getvalue()), 2),
            "xlsx_expanded_per_file_byte": round(expanded / len(xlsx.getvalue()), 2),
        })
    return out


def main() -> None:
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {}
    for area, items in cases().items():
        results[area] = []
        for name, setup, action in items:
            result = {"case": name, **_case(setup, action)}
            results[area].append(result)
            worker = f" (worker {result['worker_peak_rss_mb']} MB)" if result.get("worker_peak_rss_mb") else ""
            print(f"{area:9} {name:28} {result['seconds']!s:>7} s {result['rss_growth_mb']!s:>7} MB{worker}  "
                  f"{result['outcome'][:100]}", flush=True)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        cli = cli_predict_cases(Path(folder))
    ratios = compression_ratios()
    for r in ratios:
        print(r)
    measured = [r for rs in results.values() for r in rs if r["rss_growth_mb"] is not None]
    worst = max(measured, key=lambda r: r["rss_growth_mb"])
    worst_worker = max(measured, key=lambda r: r.get("worker_peak_rss_mb") or 0)
    slowest = max(measured, key=lambda r: r["seconds"])
    doc = {
        "machine": machine(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": results,
        "worst_rss_growth": worst, "worst_sql_worker": worst_worker, "slowest": slowest, "cli_predict": cli, "compression": ratios,
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"worst RSS growth: {worst['case']} {worst['rss_growth_mb']} MB; worst SQL worker peak: "
          f"{worst_worker['case']} {worst_worker.get('worker_peak_rss_mb')} MB; slowest: {slowest['case']} {slowest['seconds']} s")
    print(f"load average {load_before} -> {os.getloadavg()}; wrote {OUT}")


if __name__ == "__main__":
    main()
