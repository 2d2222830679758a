"""The attack run of issue 12, replayed: every hostile upload, taxonomy, purchase file and SQL query,
each in a fresh process, with its outcome, seconds and peak RSS growth; plus the compression ratios
behind ``Limits.max_decoded_bytes`` on two real catalogs (Flipkart titles+descriptions, Instacart
titles). Prints a table and the machine; writes benchmarks/results/hostile.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_hostile.py
    OMP_NUM_THREADS=1 python benchmarks/bench_hostile.py --round2   # issue 25's families: hostile2.json
    OMP_NUM_THREADS=1 python benchmarks/bench_hostile.py --round2 --only excel   # rerun one family
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
    from coldrec.testing import hostile_files
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
    from coldrec.testing import hostile_files

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
    from coldrec.testing import hostile_files

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


#: A case over these is "over-time" / "over-memory" in the round-2 table (the tests' bounds).
OVER_SECONDS, OVER_MB = 10.0, 600.0


def round2_cases() -> dict[str, list[tuple[str, str, str]]]:
    """Issue 25's families: family -> (name, setup, action), each run in a child process."""
    new_uploads = ["xlsx_shared_amplification", "xlsx_entity_bomb", "xlsx_sheet_entity", "xlsx_unclosed_text",
                   "xlsx_tab_rows", "xlsx_shared_index_minus_one", "xlsx_value_past_header"]
    excel = [(name, f"filename, data = hostile_files.UPLOADS[{name!r}]()\nfrom coldrec.ingest import load_items",
              "load_items(data, filename)") for name in new_uploads]
    excel += [(f"shared_index_{i}", f"filename, data = hostile_files.xlsx_shared_index({i})\n"
               "from coldrec.ingest import load_items", "load_items(data, filename)") for i in (2, 10**6)]
    excel.append(("zero_padded_ids", "filename, data = hostile_files.xlsx_zero_padded_ids()\n"
                  "from coldrec.ingest import load_items", "assert load_items(data, filename)['item_id'][0] == '00042'"))
    fuzz = [(f"round2_{i}", f"filename, data = hostile_files.round2_cases()[{i}]\n"
             "from coldrec.ingest import load_items", "load_items(data, filename)") for i in range(50)]
    paste = [
        ("paste_3M_lines", "from coldrec.ingest import parse_pasted\ntext = hostile_files.paste_many_lines()",
         "parse_pasted(text)"),
        ("paste_separators", "from coldrec.ingest import parse_pasted",
         "assert len(parse_pasted('a\\u2028b\\x85c\\x0bd\\x0ce\\x1cf\\x1dg\\x1eh\\nnext')) == 2"),
        ("jsonl_u2028", "from coldrec.ingest import load_items",
         "assert len(load_items('{\"title\": \"a\\u2028b\\u0085c\"}\\n{\"title\": \"d\"}'.encode(), 'x.jsonl')) == 2"),
    ]
    uploads = [
        ("purchases_35MB_3M_rows", "name, data = hostile_files.csv_purchases()\nfrom coldrec.audience import "
         "load_interactions\nfrom coldrec.ingest import PURCHASE_UPLOADS", "load_interactions(data, name, limits=PURCHASE_UPLOADS)"),
        ("labels_2M_rows", "name, data = hostile_files.csv_labels()\nfrom coldrec.ingest import LABEL_UPLOADS, read_table",
         "read_table(data, name, LABEL_UPLOADS)"),
        ("parquet_30k_emoji", "import io, pyarrow as pa, pyarrow.parquet as pq\nfrom coldrec.ingest import read_table\n"
         "b = io.BytesIO(); pq.write_table(pa.table({'title': ['😀' * 30000]}), b)", "read_table(b.getvalue(), 'e.parquet')"),
        ("parquet_string_view", "import io, pyarrow as pa, pyarrow.parquet as pq\nfrom coldrec.ingest import read_table\n"
         "b = io.BytesIO(); pq.write_table(pa.table({'title': pa.array(['mug']).cast(pa.string_view())}), b)",
         "read_table(b.getvalue(), 'v.parquet')"),
        ("price_1e20", "from coldrec.ingest import parse_price", "assert parse_price('1e+20') == 1e20"),
        ("id_201_chars", "from coldrec.ingest import load_items", "load_items(('id,title\\n' + 'x' * 201 + ',m\\n').encode(), 'l.csv')"),
        ("double_bom", "from coldrec.ingest import load_items",
         "assert load_items(b'\\xef\\xbb\\xbf\\xef\\xbb\\xbfid,title\\nA1,m\\n', 'b.csv')['item_id'][0] == 'A1'"),
    ]
    seed = ("from coldrec.store import Store\nfrom coldrec.sqlbox import run_readonly\nimport pandas as pd\n"
            "store = Store(':memory:')\n"
            "store.upsert_items(pd.DataFrame({'item_id': ['a'], 'title': ['pan']}), source='catalog')")
    views = ["pg_settings", "pg_tables", "pg_views", "pg_namespace", "pg_class", "pg_attribute", "pg_type", "pg_proc",
             "pg_index", "pg_database", "information_schema.tables", "information_schema.columns"]
    queries = [(f"cte_shadow_{v}", f"SELECT b.* FROM (WITH {v.split('.')[-1]} AS (SELECT 1 x) SELECT x FROM "
                f"{v.split('.')[-1]}) a, {v} b") for v in views]
    queries += [
        ("update_extensions", "UPDATE EXTENSIONS"),
        ("nested_500", "SELECT * FROM " + "(SELECT * FROM " * 500 + "items" + ") t" * 500),
        ("lpad_2e9", "SELECT length(lpad('', 2000000000, 'x'))"),
        ("levenshtein_150k", "SELECT levenshtein(repeat('a', 150000), repeat('b', 150000))"),
        ("list_resize_5M", "SELECT list_resize([]::BOOLEAN[], 5000000, false)"),
        ("repeat_nul_4M", "SELECT repeat(chr(0), 4000000)"),
    ]
    # A result cut at the byte cap counts as refused (what the page or terminal gets is capped).
    cut = "r.truncated and (_ for _ in ()).throw(ColdrecError('cut at the ' + str(r.truncated_by) + ' cap'))"
    sql = [(label, seed, f"r = run_readonly(store, 'm', {query!r}, timeout_s=5); {cut}") for label, query in queries]
    db = ("import duckdb, sqlite3, tempfile, pathlib\nfrom coldrec.store import Store\n"
          "folder = pathlib.Path(tempfile.mkdtemp())")
    files = [
        ("duckdb_of_another_app", db + "\nc = duckdb.connect(str(folder / 'x.duckdb')); c.execute('CREATE TABLE invoices (id INT)'); c.close()",
         "Store(folder / 'x.duckdb')"),
        ("duckdb_conflicting_meta", db + "\nc = duckdb.connect(str(folder / 'x.duckdb')); c.execute('CREATE TABLE meta (a INT)'); c.close()",
         "Store(folder / 'x.duckdb')"),
        ("sqlite_file", db + "\nc = sqlite3.connect(folder / 'x.db'); c.execute('CREATE TABLE t (x)'); c.commit(); c.close()",
         "Store(folder / 'x.db')"),
        ("truncated_duckdb", db + "\nStore(folder / 'x.duckdb').close(); p = folder / 'x.duckdb'; "
         "p.write_bytes(p.read_bytes()[:100000])", "Store(folder / 'x.duckdb')"),
        ("dev_zero", "from coldrec.ingest import read_table", "read_table('/dev/zero', 'zero.csv')"),
        ("fifo", "import os, tempfile\nfrom coldrec.ingest import read_table\np = tempfile.mkdtemp() + '/p.csv'\nos.mkfifo(p)",
         "read_table(p)"),
        ("name_300_chars", "from coldrec.ingest import read_table", "read_table('/tmp/' + 'x' * 300 + '.csv')"),
    ]
    return {"excel": excel, "fuzz (round 2)": fuzz, "paste and JSON Lines": paste, "other uploads": uploads,
            "sql": sql, "database files and paths": files}


def _classify(result: dict) -> str:
    outcome = result["outcome"]
    if outcome.startswith("CRASH"):
        return "crash"
    if (result.get("seconds") or 0) > OVER_SECONDS:
        return "over-time"
    if max(result.get("rss_growth_mb") or 0, result.get("worker_peak_rss_mb") or 0) > OVER_MB + 1024:
        return "over-memory"  # the SQL worker may add 1 GiB of address space by design
    if (result.get("rss_growth_mb") or 0) > OVER_MB:
        return "over-memory"
    return "refused" if outcome.startswith("refused") else "accepted"


def main_round2() -> None:
    load_before = os.getloadavg()
    out = OUT.with_name("hostile2.json")
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None  # rerun one family
    results: dict[str, list[dict]] = json.loads(out.read_text())["results"] if only and out.is_file() else {}
    for family, items in round2_cases().items():
        if only and family != only:
            continue
        results[family] = []
        for name, setup, action in items:
            result = {"case": name, **_case(setup, action)}
            result["class"] = _classify(result)
            results[family].append(result)
            print(f"{family[:14]:14} {name:28} {result['seconds']!s:>7} s {result['rss_growth_mb']!s:>7} MB "
                  f"{result['class']:11} {result['outcome'][:90]}", flush=True)
    table = []
    for family, rows in results.items():
        counts = {c: sum(r["class"] == c for r in rows) for c in
                  ("refused", "accepted", "crash", "over-time", "over-memory")}
        timed = [r for r in rows if r.get("seconds") is not None]
        slow = max(timed, key=lambda r: r["seconds"]) if timed else None
        big = max(timed, key=lambda r: r["rss_growth_mb"] or 0) if timed else None
        table.append({"family": family, "tried": len(rows), **counts,
                      "worst_s": slow and (slow["seconds"], slow["case"]), "worst_mb": big and (big["rss_growth_mb"], big["case"])})
        print(table[-1])
    doc = {"machine": machine(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "table": table, "results": results}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"load average {load_before} -> {os.getloadavg()}; wrote {out}")


def main() -> None:
    if {"-h", "--help"} & set(sys.argv):  # a full run takes minutes and rewrites the results
        print(__doc__)
        return
    if "--round2" in sys.argv:
        main_round2()
        return
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
