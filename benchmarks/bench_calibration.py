"""The product's predictor on four full titles-only catalogues, 5 seeds, k = 0, 1, 4, 8, 16 (issues 20, 23).

Catalogues (read where they lie, never copied): JD level 1 and level 2 (Chinese,
../shared/datasets/jd_products_zh; level 2 = the second path segment, classes with 30+ titles) and
Flipkart titles-only level 1 and level 2 (English, ../shared/datasets/flipkart_products; level 2
classes with 30+ titles). Each is embedded once with the model the language rule picks (USE
multilingual on JD, all-MiniLM-L6-v2 on Flipkart) and kept in ``data/vectors/<name>.npz`` (ignored
by git); the protocol is ``evaluate``'s (:func:`coldrec.evaluate.make_splits`: test sets of 2,000,
support never sharing a title with the test set) and the predictor runs as ``evaluate``'s
``coldrec`` row (every row an unlabelled graph item). Cells: accuracy, macro-F1, ECE (10 bins) and
the beta in use, mean and std over seeds. Run it on two commits to compare them:

    OMP_NUM_THREADS=1 nice python benchmarks/bench_calibration.py --out calibration_before.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import OUT, SHARED, finish, result  # noqa: E402
from coldrec.evaluate import LabelledData, expected_calibration_error, load_labelled, make_splits  # noqa: E402

VECTORS = ROOT / "data" / "vectors"
JD = SHARED / "jd_products_zh" / "products_zh.csv"
FLIPKART = SHARED / "flipkart_products" / "flipkart_products.csv"
#: name -> (file, label column, minimum titles per class)
CATALOGUES = {"jd_l1": (JD, "category", 10), "jd_l2": (JD, "category_l2", 30),
              "fk_l1_titles": (FLIPKART, "category", 10), "fk_l2_titles": (FLIPKART, "category_l2", 30)}


def catalogue(name: str) -> tuple[LabelledData, np.ndarray, np.ndarray, str]:
    """The labelled titles, their vectors, the prompts' vectors and the model's name (cached)."""
    cache = VECTORS / f"{name}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        data = LabelledData(z["texts"].tolist(), z["groups"].tolist(), z["labels"], z["classes"].tolist(), name)
        return data, z["vectors"], z["prompts"], str(z["model"])
    import tempfile

    import pandas as pd

    from coldrec.classify import category_prompt
    from coldrec.encoder import bundled_source, embed_texts, load_encoder
    from coldrec.language import choose_encoder

    path, column, min_per_class = CATALOGUES[name]
    with tempfile.TemporaryDirectory() as tmp:
        if path == JD and column == "category_l2":
            frame = pd.read_csv(JD)
            frame["category_l2"] = frame["category_path"].str.split(" > ").str[1]
            path = Path(tmp) / "jd_l2.csv"
            frame[["item_id", "title", "category_l2"]].to_csv(path, index=False)
        data = load_labelled(path, ["title"], column, min_per_class=min_per_class)
    encoder = load_encoder(bundled_source(choose_encoder(data.texts)))
    vectors = embed_texts(encoder, data.texts)
    prompts = embed_texts(encoder, [category_prompt(c) for c in data.classes])
    VECTORS.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, prompts=prompts, labels=data.labels, classes=np.array(data.classes, dtype=object),
             texts=np.array(data.texts, dtype=object), groups=np.array(data.groups, dtype=object), model=encoder.name)
    return data, vectors, prompts, encoder.name


def measure(name: str, shots: list[int], seeds: int) -> dict[str, object]:
    from sklearn.metrics import f1_score

    from coldrec.estimator import ColdStartClassifier
    from coldrec.evaluate import _shared_graph

    data, vectors, prompts, model = catalogue(name)
    splits = make_splits(data, shots, seeds, 2000)
    index, graph = _shared_graph(vectors)
    ids = [str(i) for i in range(len(vectors))]
    rows = []
    for k in shots:
        runs = []
        for split in splits:
            sup, y = split.support[k], data.labels[split.test]
            clf = ColdStartClassifier().fit_rows(vectors, ids, sup, data.labels[sup], data.classes, prompts,
                                                 graph=graph, index=index)
            proba = clf.label_distributions_[split.test]
            pred = proba.argmax(axis=1)
            runs.append([float((pred == y).mean()), float(f1_score(y, pred, average="macro", zero_division=0)),
                         expected_calibration_error(y, proba), float(clf.beta_)])
        a = np.array(runs)
        row = {"k": k, **{key: round(float(a[:, j].mean()), 4) for j, key in enumerate(["accuracy", "macro_f1", "ece", "beta"])},
               **{f"{key}_std": round(float(a[:, j].std()), 4) for j, key in enumerate(["accuracy", "macro_f1", "ece", "beta"])}}
        rows.append(row)
        print(f"{name:13} k={k:<3} accuracy {row['accuracy']:.3f} ± {row['accuracy_std']:.3f}  macro-F1 {row['macro_f1']:.3f}"
              f"  ECE {row['ece']:.3f} ± {row['ece_std']:.3f}  beta {row['beta']:.2f}", flush=True)
    return {"catalogue": name, "model": model, "n_items": len(data.texts), "n_classes": len(data.classes), "results": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogues", default=",".join(CATALOGUES))
    parser.add_argument("--shots", default="0,1,4,8,16")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="calibration.json", help="file name under benchmarks/results/")
    args = parser.parse_args()
    record = result("calibration", seeds=args.seeds, shots=args.shots)
    started = time.perf_counter()
    record["catalogues"] = [measure(n, [int(k) for k in args.shots.split(",")], args.seeds) for n in args.catalogues.split(",")]
    record["wall_s"] = round(time.perf_counter() - started, 1)
    finish(record, OUT / args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
