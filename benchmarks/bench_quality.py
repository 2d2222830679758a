"""Quality round 3 measurements (issues 22 item 2 and 23) on capped Flipkart titles-only sets.

Catalogues built from ../shared/datasets/flipkart_products, titles only (classes with 30+
distinct titles, then at most ``--cap`` titles per class drawn with seed 0, so a 2-core machine
shared with others can run them): level 1 (``category``) and level 2 (``category_l2``), and level
1 with title + description (``flipkart-l1-full``, ``--levels``); and the Chinese shared set
(``jd-zh``, ../shared/datasets/jd_products_zh, level 1, 240 titles a class). Every
title is embedded once with the bundled model and kept in ``artifacts/bench_quality_vectors.npz``.
Modes (results in ``benchmarks/results/quality_<mode>.json`` with the machine and load):

* ``name-only``: per seed, each category in turn (or ``--held`` of them, drawn per seed) keeps
  only its name while every other category has ``--k`` labels; recall of its own test items and
  the other categories' accuracy, with the product's predictor.
* ``half-named``: half the categories (drawn per seed) name-only, the rest with k labels.
* ``calibration``: accuracy and ECE of the product's predictor at k = 1, 4, 8, 16.
* ``words`` (a candidate, not shipped): the predictor with a char_wb 2-4 TF-IDF similarity
  added to its prior, its weight fitted per fit by leave-one-out on the labels.

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
#: The encoder (``--model``): ``None`` = the bundled MiniLM; its vectors are cached in their own file.
MODEL: str | None = None
LEVELS = {"flipkart-l1-titles": "category", "flipkart-l2-titles": "category_l2", "flipkart-l1-full": "category",
          "jd-zh": "category"}
#: The Chinese shared set (level 1, 11 classes); the bundled model is English, so this measures
#: a model that sees CJK characters as rare word pieces.
JD = ROOT.parent / "shared" / "datasets" / "jd_products_zh" / "products_zh.csv"
#: Titles kept per class (at most), per catalogue: about 2,600-2,700 rows each.
CAPS = {"flipkart-l1-titles": 130, "flipkart-l2-titles": 58, "flipkart-l1-full": 130, "jd-zh": 240}
#: Text columns per catalogue: the third is level 1 with title + description (where issue 23's
#: under-confidence at k = 4-8 was measured).
TEXT_COLS = {"flipkart-l1-titles": ["title"], "flipkart-l2-titles": ["title"], "flipkart-l1-full": ["title", "description"],
             "jd-zh": ["title"]}


def capped(level: str, cap: int) -> LabelledData:
    """The titles-only catalogue of ``level``: classes with 30+ titles, at most ``cap`` per class."""
    data = load_labelled(JD if level == "jd-zh" else DATA, TEXT_COLS[level], LEVELS[level], min_per_class=30)
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
    cache = CACHE if MODEL is None else CACHE.with_name(f"bench_quality_vectors_{MODEL.replace('/', '_')}.npz")
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        cached = dict(zip(z["texts"].tolist(), z["vectors"]))
    todo = [t for t in texts + prompts if t not in cached]
    if todo:
        encoder = load_encoder(MODEL)
        started = time.perf_counter()
        for t, v in zip(todo, embed_texts(encoder, todo)):
            cached[t] = v
        print(f"embedded {len(todo)} texts in {time.perf_counter() - started:.0f} s", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, texts=np.array(list(cached), dtype=object), vectors=np.stack(list(cached.values())))
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


def half_named(data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, seeds: int,
               shots: list[int]) -> list[dict[str, object]]:
    """A taxonomy half labelled: per seed, half the categories (drawn) keep only their names, the
    rest have k labels; overall accuracy, per half, and ECE."""
    shared = shared_graph(vectors)
    splits = make_splits(data, shots, seeds, len(data.texts) // 2)
    out = []
    for k in shots:
        runs = []
        for split in splits:
            named = np.random.default_rng(500 + split.seed).choice(len(data.classes), len(data.classes) // 2, replace=False)
            support = split.support[k][~np.isin(data.labels[split.support[k]], named)]
            proba, _ = fit_proba(data, vectors, prompts, support, shared)
            q, y = proba[split.test], data.labels[split.test]
            pred, own = q.argmax(axis=1), np.isin(y, named)
            runs.append({"accuracy": float((pred == y).mean()), "name_only_accuracy": float((pred[own] == y[own]).mean()),
                         "labelled_accuracy": float((pred[~own] == y[~own]).mean()), "ece": expected_calibration_error(y, q)})
        row = {"k": k, **{m: round(float(np.mean([r[m] for r in runs])), 4) for m in runs[0]}}
        print(f"  k={k:<3} {row}", flush=True)
        out.append(row)
    return out


#: Weights tried for the word similarity (fitted per workspace on its labels, leave-one-out).
WORD_WEIGHTS = np.linspace(0.0, 4.0, 81)


def word_logits(tfidf: object, rows: np.ndarray, example_rows: np.ndarray, example_classes: np.ndarray,
                n_classes: int, leave_one_out: bool = False) -> np.ndarray:
    """Cosine of each row's char_wb 2-4 TF-IDF vector to each category's (the sum of its labelled
    rows'); ``leave_one_out``: ``rows`` are ``example_rows`` and each is left out of its own."""
    import scipy.sparse as sp

    ind = sp.csr_matrix((np.ones(len(example_rows)), (example_classes, np.arange(len(example_rows)))),
                        shape=(n_classes, len(example_rows)))
    sums = np.asarray((ind @ tfidf[example_rows]).todense())  # type: ignore[index]
    t = np.asarray(tfidf[rows].todense())  # type: ignore[index]
    out = t @ sums.T
    norms = np.linalg.norm(sums, axis=1)
    if leave_one_out:
        own = sums[example_classes] - t
        out[np.arange(len(rows)), example_classes] = np.einsum("id,id->i", t, own)
        own_norm = np.linalg.norm(own, axis=1)
        out /= np.maximum(norms, 1e-9)[None, :]
        out[np.arange(len(rows)), example_classes] = np.where(
            own_norm > 0, np.einsum("id,id->i", t, own) / np.maximum(own_norm, 1e-9), 0.0)
        return out.astype(np.float32)
    return (out / np.maximum(norms, 1e-9)[None, :]).astype(np.float32)


def word_weight(model: object, vectors: np.ndarray, tfidf: object, support: np.ndarray, classes: np.ndarray) -> float:
    """The weight of the word similarity with the best leave-one-out likelihood of the labels'
    own distributions (the prior), on the grid WORD_WEIGHTS."""
    from coldrec.estimator import PRIOR_SCALE, _log_softmax

    x, y = vectors[support], classes
    sums = model._class_sums(x, y)  # type: ignore[attr-defined]
    emb = x @ (sums / np.linalg.norm(sums, axis=1, keepdims=True)).T
    own = sums[y] - x
    emb[np.arange(len(y)), y] = np.einsum("id,id->i", x, own) / np.linalg.norm(own, axis=1)
    words = word_logits(tfidf, support, support, y, len(sums), leave_one_out=True)
    ll = [_log_softmax(PRIOR_SCALE * (emb + w * words).astype(np.float64))[np.arange(len(y)), y].mean()
          for w in WORD_WEIGHTS]
    return float(WORD_WEIGHTS[int(np.argmax(ll))])


def words(data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, seeds: int,
          shots: list[int]) -> list[dict[str, object]]:
    """The product's predictor against the same with a char_wb 2-4 TF-IDF similarity added to
    the prior's cosines (weight fitted per fit on its labels). A candidate measured, not shipped."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from coldrec.estimator import ColdStartClassifier

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(data.texts).tocsr()
    row_of = {v.tobytes(): i for i, v in enumerate(vectors)}

    class WithWords(ColdStartClassifier):
        weight = 0.0

        def _logits(self, vecs: np.ndarray, example_vectors: np.ndarray, example_classes: np.ndarray) -> np.ndarray:
            base = super()._logits(vecs, example_vectors, example_classes)
            if not self.weight or not len(example_vectors):
                return base
            rows = np.array([row_of[v.tobytes()] for v in vecs])
            ex = np.array([row_of[v.tobytes()] for v in example_vectors])
            return base + self.weight * word_logits(tfidf, rows, ex, example_classes, len(base[0]))

    shared = shared_graph(vectors)
    splits = make_splits(data, shots, seeds, len(data.texts) // 2)
    out = []
    for k in shots:
        runs: dict[str, list[tuple[float, float]]] = {"coldrec": [], "coldrec+words": []}
        weights = []
        for split in splits:
            sup, y = split.support[k], data.labels[split.test]
            for name in runs:
                model = WithWords()
                model.prompt_vectors_ = prompts
                if name == "coldrec+words":
                    model.weight = word_weight(model, vectors, tfidf, sup, data.labels[sup])
                    weights.append(model.weight)
                model.fit_rows(vectors, [str(i) for i in range(len(vectors))], sup, data.labels[sup], data.classes,
                               prompts, index=shared[0], graph=shared[1])  # type: ignore[arg-type]
                q = model.label_distributions_[split.test]
                runs[name].append((float((q.argmax(axis=1) == y).mean()), expected_calibration_error(y, q)))
        row: dict[str, object] = {"k": k, "weights": weights}
        for name, r in runs.items():
            a = np.array(r)
            row[name] = {"accuracy": round(float(a[:, 0].mean()), 4), "accuracy_std": round(float(a[:, 0].std()), 4),
                         "ece": round(float(a[:, 1].mean()), 4)}
        print(f"  k={k:<3} coldrec {row['coldrec']} +words {row['coldrec+words']} weights {weights}", flush=True)
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["name-only", "half-named", "calibration", "words", "embed"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", type=int, default=16, help="name-only: labels of every other category")
    parser.add_argument("--held", type=int, help="name-only: categories held out per seed (default all)")
    parser.add_argument("--shots", default="1,4,8,16")
    parser.add_argument("--levels", default="flipkart-l1-titles,flipkart-l2-titles")
    parser.add_argument("--cap", help="titles per class, one per level of --levels (default: CAPS)")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("--model", choices=["minilm", "multilingual"], default="minilm",
                        help="the bundled encoder the vectors come from (multilingual: what the language rule picks for Chinese)")
    args = parser.parse_args()
    global MODEL
    if args.model == "multilingual":
        from coldrec.config import MULTILINGUAL_MODEL_NAME

        MODEL = MULTILINGUAL_MODEL_NAME
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
        elif args.mode == "half-named":
            entry["results"] = half_named(data, vectors, prompts, args.seeds, [int(s) for s in args.shots.split(",")])
        elif args.mode == "words":
            entry["results"] = words(data, vectors, prompts, args.seeds, [int(s) for s in args.shots.split(",")])
        else:
            entry["results"] = calibration(data, vectors, prompts, args.seeds, [int(s) for s in args.shots.split(",")])
        doc["datasets"].append(entry)  # type: ignore[union-attr]
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    doc["load_average_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"quality_{args.mode}{('_' + args.tag) if args.tag else ''}.json"
    doc["encoder"] = MODEL or "all-MiniLM-L6-v2"
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}; wall {doc['wall_s']} s; load {doc['load_average_before']} -> {doc['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
