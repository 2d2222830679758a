"""A stamp-only save of the item index (only the manifest's stamp moved): seconds, and the bytes of
the files it replaced, on a COPY of a kept index folder (this writes to it).

    python benchmarks/bench_index_save.py COPY/bench.duckdb.index/MODEL [--code CHECKOUT] --json OUT

Loads the index (as a restart does; ``--read-graph``: and reads its faiss graph, as a running
dashboard has after its start), moves its stamp and saves it back, three times; ``--code``
runs another checkout's ``coldrec`` (a paired before/after). Prints figures with the machine and
load (``benchmarks/_harness.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _harness  # noqa: E402


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a COPY of a saved index folder (it is written to)")
    parser.add_argument("--code", help="run this checkout's coldrec instead")
    parser.add_argument("--binding", help="the binding to save under (default: the manifest's)")
    parser.add_argument("--read-graph", action="store_true",
                        help="read the faiss graph before saving (as a running dashboard has, after its start)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    import json

    from coldrec.neighbours import VectorIndex

    folder = Path(args.folder)
    binding = args.binding or json.loads((folder / "manifest.json").read_text()).get("binding", "")
    record = _harness.result("bench_index_save", folder=str(folder), code=args.code or str(ROOT), saves=[],
                             read_graph=args.read_graph)
    for attempt in range(3):
        index, why = VectorIndex.load_checked(folder, binding=binding)
        if index is None:
            raise SystemExit(f"{folder}: {why}")
        if args.read_graph:
            index.load_graph()
        before = _files(folder)
        index.stamp = f"{index.stamp}+{attempt}"
        started = time.perf_counter()
        index.save(folder, binding=binding)
        seconds = time.perf_counter() - started
        after = _files(folder)
        replaced = sorted(name for name in after if before.get(name, (0, 0, 0))[:2] != after[name][:2])
        figures = {"save_s": round(seconds, 2), "replaced": replaced,
                   "replaced_mb": round(sum(after[n][2] for n in replaced) / 2**20, 1), "load_1m": _harness.load_average()[0]}
        record["saves"].append(figures)  # type: ignore[union-attr]
        print(figures, flush=True)
        del index
    print(_harness.finish(record, Path(args.json) if args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
