"""Catalogues in other languages (issue 20): few-shot quality per bundled encoder on real Chinese
titles, and each backend's encode speed and peak memory.

Quality: ``python -m coldrec evaluate`` on ../shared/datasets/jd_products_zh/products_zh.csv at
level 1 (11 categories) and level 2 (the second path segment, classes with 30+ titles), once with
the default configuration (the language rule, which picks the multilingual encoder) and once with
``COLDREC_ENCODER=minilm``; writes benchmarks/results/languages_<data>_<encoder>_seeds<N>.json.
Speed: one subprocess per backend embeds the same 2,000 JD and 2,000 Flipkart titles; writes
benchmarks/results/languages_speed.json (the runs in BENCHMARKS.md are kept as languages_speed_run<N>.json). The data is read where it lies, never copied into the
project (the level-2 label file is written to a temporary folder). Usage:

    nice python benchmarks/bench_languages.py quality [--seeds 5] [--data l1,l2] [--encoders auto,minilm]
    nice python benchmarks/bench_languages.py speed
    nice python benchmarks/bench_languages.py english   # Flipkart titles: the default must not move
    nice python benchmarks/bench_languages.py mixed     # Chinese + English titles in one catalogue
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
JD = SHARED / "jd_products_zh" / "products_zh.csv"
FLIPKART = SHARED / "flipkart_products" / "flipkart_products.csv"
OUT = ROOT / "benchmarks" / "results"
CACHE = ROOT / "data" / "bench_languages_cache.duckdb"


def _jd_file(level: str, folder: Path) -> tuple[Path, str, int]:
    """The labelled file, label column and minimum class size for ``level`` (``l1`` or ``l2``)."""
    if level == "l1":
        return JD, "category", 10
    import pandas as pd

    frame = pd.read_csv(JD)
    frame["category_l2"] = frame["category_path"].str.split(" > ").str[1]
    path = folder / "jd_l2.csv"
    frame[["item_id", "title", "category_l2"]].to_csv(path, index=False)
    return path, "category_l2", 30


def quality(args: argparse.Namespace) -> int:
    from bench_evaluate import machine  # noqa: PLC0415 - the same machine record as the other benchmarks

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for level in args.data.split(","):
            path, label, min_per_class = _jd_file(level, Path(tmp))
            for encoder in args.encoders.split(","):
                out = OUT / f"languages_jd_{level}_{encoder}_seeds{args.seeds}.json"
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                env.pop("COLDREC_MODEL", None)
                env.pop("COLDREC_ENCODER", None)
                if encoder != "auto":
                    env["COLDREC_ENCODER"] = encoder
                load = os.getloadavg()
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "coldrec", "evaluate", str(path), "--text-col", "title", "--label-col", label,
                     "--min-per-class", str(min_per_class), "--seeds", str(args.seeds), "--shots", "0,1,4,8,16",
                     "--methods", "coldrec,coldrec-inductive,prototype,tfidf-logreg", "--cache", str(CACHE),
                     "--json", str(out)],
                    check=True, cwd=ROOT, env=env,
                )
                doc = json.loads(out.read_text())
                doc.update(machine=machine(), wall_s=round(time.perf_counter() - started, 1),
                           load_average_before=[round(x, 2) for x in load],
                           load_average_after=[round(x, 2) for x in os.getloadavg()],
                           dataset=f"jd_products_zh {level}", configuration=encoder)
                out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
                print(f"wrote {out}", file=sys.stderr)
    return 0


_SPEED_CHILD = r"""
import json, resource, sys, time
import pandas as pd
from coldrec.encoder import load_encoder
texts = json.loads(sys.stdin.read())
started = time.perf_counter()
encoder = load_encoder(None if sys.argv[1] == "none" else sys.argv[1], backend=sys.argv[2] if sys.argv[2] != "-" else None)
load_s = time.perf_counter() - started
result = {"model": encoder.name, "backend": getattr(encoder, "backend", "?"), "load_s": round(load_s, 2)}
encoder.encode(texts["jd"][:50]); encoder.encode(texts["en"][:50])  # warm
for key in ("jd", "en"):
    started = time.perf_counter()
    encoder.encode(texts[key])
    result[f"{key}_titles_per_s"] = round(len(texts[key]) / (time.perf_counter() - started), 1)
result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(result))
"""


def speed(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench_evaluate import machine  # noqa: PLC0415

    texts = {
        "jd": pd.read_csv(JD)["title"].astype(str).head(args.n).tolist(),
        "en": pd.read_csv(FLIPKART)["title"].astype(str).head(args.n).tolist(),
    }
    from coldrec.config import BOTH_MODEL_NAME, MULTILINGUAL_MODEL_NAME

    rows = []
    for model, backend in (("none", "torch"), (MULTILINGUAL_MODEL_NAME, "-"), (BOTH_MODEL_NAME, "-")):
        load = os.getloadavg()
        child = subprocess.run(
            [sys.executable, "-c", _SPEED_CHILD, model, backend], input=json.dumps(texts), capture_output=True,
            text=True, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row["load_average_before"] = [round(x, 2) for x in load]
        rows.append(row)
        print(row, file=sys.stderr)
    doc = {"titles": args.n, "machine": machine(), "rows": rows,
           "children_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "languages_speed.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def english(args: argparse.Namespace) -> int:
    """The English default must not move: Flipkart titles only, level 2 (51 classes with 30+ titles),
    with the default configuration (the rule must pick MiniLM), the splits of
    ``evaluate_flipkart_l2_titles_seeds5.json``; the figures are compared with that file."""
    from bench_evaluate import machine  # noqa: PLC0415

    out = OUT / "languages_flipkart_l2_titles_auto_seeds5.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("COLDREC_MODEL", None)
    env.pop("COLDREC_ENCODER", None)
    load = os.getloadavg()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "coldrec", "evaluate", str(FLIPKART), "--text-col", "title", "--label-col", "category_l2",
         "--min-per-class", "30", "--seeds", "5", "--shots", "0,1,4,8,16", "--methods", "coldrec,prototype",
         "--json", str(out)],
        check=True, cwd=ROOT, env=env,
    )
    doc = json.loads(out.read_text())
    before = json.loads((OUT / "evaluate_flipkart_l2_titles_seeds5.json").read_text())
    old = {(r["method"], r["shots"]): r["accuracy"] for r in before["results"]}
    doc["largest_accuracy_change_vs_evaluate_flipkart_l2_titles_seeds5"] = max(
        abs(r["accuracy"] - old[(r["method"], r["shots"])]) for r in doc["results"])
    doc.update(machine=machine(), wall_s=round(time.perf_counter() - started, 1),
               load_average_before=[round(x, 2) for x in load], load_average_after=[round(x, 2) for x in os.getloadavg()])
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def mixed(args: argparse.Namespace) -> int:
    """Mixed catalogues: JD (Chinese, 11 level-1 classes) and Flipkart titles (English, level 1)
    in one file, at two mixes; per encoder, coldrec's accuracy on each part (k = 0 and 8, 3 seeds,
    every row in the graph as a workspace holds it), and which encoder the rule picks."""
    import numpy as np
    import pandas as pd

    from bench_evaluate import machine  # noqa: PLC0415
    from coldrec import language
    from coldrec.classify import category_prompt
    from coldrec.encoder import bundled_source, embed_texts, load_encoder
    from coldrec.evaluate import LabelledData, _shared_graph, make_splits, predictor_proba
    from coldrec.store import Store

    jd = pd.read_csv(JD)[["title", "category"]]
    fk = pd.read_csv(FLIPKART)[["title", "category"]].dropna().drop_duplicates("title")
    fk = fk[fk["category"].isin(fk["category"].value_counts().head(11).index)]
    mixes = {"mostly Chinese": (1500, 500), "mostly English": (500, 1500)}
    cache = Store(CACHE)
    rows = []
    encoders = {name: load_encoder(bundled_source(name)) for name in language.CHOICES}
    for mix, (n_zh, n_en) in mixes.items():
        frame = pd.concat([jd.sample(n_zh, random_state=1), fk.sample(n_en, random_state=1)], ignore_index=True)
        classes = sorted(frame["category"].unique())
        index = {c: i for i, c in enumerate(classes)}
        data = LabelledData(frame["title"].tolist(), frame["title"].str.lower().tolist(),
                            frame["category"].map(index).to_numpy(), classes, mix)
        chinese = np.array([language.has_cjk(t) for t in data.texts])
        share = language.script_mix(data.texts)
        splits = make_splits(data, [0, 8], seeds=3, test_size=600)
        for name, encoder in encoders.items():
            vectors = embed_texts(encoder, data.texts, cache=cache)
            prompts = embed_texts(encoder, [category_prompt(c) for c in classes])
            shared = _shared_graph(vectors)
            for k in (0, 8):
                accs = {"chinese": [], "english": []}
                for split in splits:
                    proba = predictor_proba(data, vectors, prompts, split.support[k], split.test, shared=shared)
                    right = proba.argmax(axis=1) == data.labels[split.test]
                    accs["chinese"].append(float(right[chinese[split.test]].mean()))
                    accs["english"].append(float(right[~chinese[split.test]].mean()))
                row = {"mix": mix, "titles_zh": n_zh, "titles_en": n_en, "rule_share": round(share.non_latin_title_share, 3),
                       "letter_share": round(share.non_latin_share, 3),
                       "rule_picks": share.choice, "encoder": name, "shots": k,
                       **{f"accuracy_{part}": round(float(np.mean(v)), 4) for part, v in accs.items()}}
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    cache.close()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "languages_mixed.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2,
                                                         ensure_ascii=False) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, default=5)
    q.add_argument("--data", default="l1,l2")
    q.add_argument("--encoders", default="auto,minilm")
    s = sub.add_parser("speed")
    s.add_argument("--n", type=int, default=2000)
    sub.add_parser("english")
    sub.add_parser("mixed")
    args = parser.parse_args()
    if not JD.is_file():
        print(f"{JD} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(ROOT))
    return {"quality": quality, "speed": speed, "english": english, "mixed": mixed}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
