"""Quality round 3 measurements (issues 22 item 2 and 23) on capped Flipkart titles-only sets.

Catalogues built from ../shared/datasets/flipkart_products, titles only (classes with 30+
distinct titles, then at most ``--cap`` titles per class drawn with seed 0, so a 2-core machine
shared with others can run them): level 1 (``category``) and level 2 (``category_l2``), and level
1 with title + description (``flipkart-l1-full``, ``--levels``). Every
title is embedded once with the bundled model and kept in ``artifacts/bench_quality_vectors.npz``.
Modes (results in ``benchmarks/results/quality_<mode>.json`` with the machine and load):

* ``name-only``: per seed, each category in turn (or ``--held`` of them, drawn per seed) keeps
  only its name while every other category has ``--k`` labels; recall of its own test items and
  the other categories' accuracy, with the product's predictor.
* ``calibration``: accuracy and ECE of the product's predictor at k = 1, 4, 8, 16.

    nice python benchmarks/bench_quality.py name-only --seeds 5
    nice python benchmarks/bench_quality.py calibration --seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_evaluate import DATA, OUT, machine  # noqa: E402
from coldrec.evaluate import LabelledData, expected_calibration_error, load_labelled, make_splits  # noqa: E402

CACHE = ROOT / "artifacts" / "bench_quality_vectors.npz"
LEVELS = {"flipkart-l1-titles": "category", "flipkart-l2-titles": "category_l2", "flipkart-l1-full": "category"}
#: Titles kept per class (at most), per catalogue: about 2,600-2,700 rows each.
CAPS = {"flipkart-l1-titles": 130, "flipkart-l2-titles": 58, "flipkart-l1-full": 130}
#: Text columns per catalogue: the third is level 1 with title + description (where issue 23's
#: under-confidence at k = 4-8 was measured).
TEXT_COLS = {"flipkart-l1-titles": ["title"], "flipkart-l2-titles": ["title"], "flipkart-l1-full": ["title", "description"]}


def capped(level: str, cap: int) -> LabelledData:
    """The titles-only catalogue of ``level``: classes with 30+ titles, at most ``cap`` per class."""
    data = load_labelled(DATA, TEXT_COLS[level], LEVELS[level], min_per_class=30)
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([
        rng.permutation(np.flatnonzero(data.labels == c))[:cap] for c in range(len(data.classes))
    ]))
    return LabelledData([data.texts[i] for i in keep], [data.groups[i] for i in keep], data.labels[keep],
                        data.classes, f"{level} (cap {cap}/class)")


def embedded(datasets: list[LabelledData]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Vectors of every title of ``datasets`` and of every category prompt (cached on disk)."""
    from coldrec.classify import category_prompt
    from coldrec.encoder import embed_texts, load_encoder

    texts = sorted({t for d in datasets for t in d.texts})
    prompts = sorted({category_prompt(c) for d in datasets for c in d.classes})
    cached: dict[str, np.ndarray] = {}
    if CACHE.is_file():
        z = np.load(CACHE, allow_pickle=True)
        cached = dict(zip(z["texts"].tolist(), z["vectors"]))
    todo = [t for t in texts + prompts if t not in cached]
    if todo:
        encoder = load_encoder(None)
        started = time.perf_counter()
        for t, v in zip(todo, embed_texts(encoder, todo)):
            cached[t] = v
        print(f"embedded {len(todo)} texts in {time.perf_counter() - started:.0f} s", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, texts=np.array(list(cached), dtype=object), vectors=np.stack(list(cached.values())))
    return cached, np.zeros(0)


def vectors_of(data: LabelledData, cached: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    from coldrec.classify import category_prompt

    return (np.stack([cached[t] for t in data.texts]).astype(np.float32),
            np.stack([cached[category_prompt(c)] for c in data.classes]).astype(np.float32))


def shared_graph(vectors: np.ndarray) -> tuple[object, object]:
    from coldrec.evaluate import _shared_graph

    return _shared_graph(vectors)


def fit_proba(data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, support: np.ndarray,
              shared: tuple[object, object]) -> tuple[np.ndarray, float]:
    """The product's predictor on every row (support labelled): distributions of every row, beta."""
    from coldrec.estimator import ColdStartClassifier

    model = ColdStartClassifier().fit_rows(vectors, [str(i) for i in range(len(vectors))], support,
                                           data.labels[support], data.classes, prompts,
                                           index=shared[0], graph=shared[1])  # type: ignore[arg-type]
    return model.label_distributions_, model.beta_


def name_only(data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, seeds: int, k: int,
              held: int | None) -> list[dict[str, object]]:
    shared = shared_graph(vectors)
    splits = make_splits(data, [k], seeds, len(data.texts) // 2)
    runs = []
    for split in splits:
        rng = np.random.default_rng(1000 + split.seed)
        cats = np.arange(len(data.classes)) if held is None else np.sort(
            rng.choice(len(data.classes), min(held, len(data.classes)), replace=False))
        y = data.labels[split.test]
        for c in cats:
            support = split.support[k][data.labels[split.support[k]] != c]
            proba, beta = fit_proba(data, vectors, prompts, support, shared)
            pred = proba[split.test].argmax(axis=1)
            own, rest = y == c, y != c
            runs.append({"seed": split.seed, "category": data.classes[c], "n_own": int(own.sum()),
                         "recall": float((pred[own] == c).mean()), "others_accuracy": float((pred[rest] == y[rest]).mean()),
                         "precision": float((y[pred == c] == c).mean()) if (pred == c).any() else 0.0,
                         "beta": float(beta)})
        print(f"  seed {split.seed}: recall {np.mean([r['recall'] for r in runs if r['seed'] == split.seed]):.3f} "
              f"others {np.mean([r['others_accuracy'] for r in runs if r['seed'] == split.seed]):.4f}", flush=True)
    return runs


def calibration(data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, seeds: int,
                shots: list[int]) -> list[dict[str, object]]:
    shared = shared_graph(vectors)
    splits = make_splits(data, shots, seeds, len(data.texts) // 2)
    rows = []
    for k in shots:
        runs = []
        for split in splits:
            proba, beta = fit_proba(data, vectors, prompts, split.support[k], shared)
            p, y = proba[split.test], data.labels[split.test]
            runs.append({"accuracy": float((p.argmax(axis=1) == y).mean()), "ece": expected_calibration_error(y, p),
                         "beta": float(beta)})
        row = {"k": k, **{m: round(float(np.mean([r[m] for r in runs])), 4) for m in runs[0]},
               **{f"{m}_std": round(float(np.std([r[m] for r in runs])), 4) for m in runs[0]}}
        print(f"  k={k:<3} accuracy {row['accuracy']:.3f} ece {row['ece']:.3f} beta {row['beta']:.2f}", flush=True)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["name-only", "calibration", "embed"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", type=int, default=16, help="name-only: labels of every other category")
    parser.add_argument("--held", type=int, help="name-only: categories held out per seed (default all)")
    parser.add_argument("--shots", default="1,4,8,16")
    parser.add_argument("--levels", default="flipkart-l1-titles,flipkart-l2-titles")
    parser.add_argument("--cap", help="titles per class, one per level of --levels (default: CAPS)")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    levels = args.levels.split(",")
    caps = dict(zip(levels, map(int, args.cap.split(",")))) if args.cap else CAPS
    datasets = [capped(level, caps[level]) for level in levels]
    cached, _ = embedded(datasets)
    if args.mode == "embed":
        return 0
    doc: dict[str, object] = {"mode": args.mode, "seeds": args.seeds, "machine": machine(),
                              "load_average_before": os.getloadavg(), "datasets": []}
    started = time.perf_counter()
    for data in datasets:
        vectors, prompts = vectors_of(data, cached)
        print(f"{data.name}: {len(data.texts)} titles, {len(data.classes)} classes", flush=True)
        entry: dict[str, object] = {"dataset": data.name, "n_items": len(data.texts), "n_classes": len(data.classes)}
        if args.mode == "name-only":
            runs = name_only(data, vectors, prompts, args.seeds, args.k, args.held)
            entry.update(k=args.k, recall=round(float(np.mean([r["recall"] for r in runs])), 4),
                         others_accuracy=round(float(np.mean([r["others_accuracy"] for r in runs])), 4),
                         precision=round(float(np.mean([r["precision"] for r in runs])), 4),
                         zero_recall_share=round(float(np.mean([r["recall"] == 0 for r in runs])), 4), runs=runs)
            print(f"{data.name}: name-only recall {entry['recall']:.3f}, precision {entry['precision']:.3f}, "
                  f"others' accuracy {entry['others_accuracy']:.4f}", flush=True)
        else:
            entry["results"] = calibration(data, vectors, prompts, args.seeds, [int(s) for s in args.shots.split(",")])
        doc["datasets"].append(entry)  # type: ignore[union-attr]
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    doc["load_average_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"quality_{args.mode}{('_' + args.tag) if args.tag else ''}.json"
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}; wall {doc['wall_s']} s; load {doc['load_average_before']} -> {doc['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
