"""How fine the emerging clusters are: the silhouette's k range before and after issue 22.

On unlabelled items whose category is known (hidden from the clustering), for each k rule: the k
chosen, the largest cluster's share, NMI and purity against the known categories, and the mean
number of categories per cluster. Datasets: the demo catalog (448 products, 16 categories) and
Flipkart's "Toys & School Supplies" (330 products; truth = its second level, the case of issue 22:
a department's unlabelled items). Embeds with the bundled model (title + description).
Writes benchmarks/results/clusters.json. Usage: python benchmarks/bench_clusters.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLIPKART = ROOT.parent / "shared" / "datasets" / "flipkart_products" / "flipkart_products.csv"


def datasets() -> dict[str, tuple[pd.DataFrame, str]]:
    out = {"demo catalog": (pd.read_csv(ROOT / "data" / "demo" / "catalog.csv"), "category")}
    if FLIPKART.is_file():
        flip = pd.read_csv(FLIPKART)
        out["flipkart toys & school supplies"] = (flip[flip["category"] == "Toys & School Supplies"], "category_l2")
    return out


def main() -> None:
    from sklearn.metrics import normalized_mutual_info_score

    from coldrec.analytics import _choose_k, cluster_k_range, emerging_clusters
    from coldrec.encoder import load_encoder
    from coldrec.ingest import item_text

    encoder = load_encoder(None, device="cpu")
    rules = {"silhouette, k 2..min(12, n/3) (before)": lambda n: (2, min(12, n // 3)),
             "silhouette, k ceil(n/25)..max(ceil(n/10), 12) (now)": cluster_k_range}
    results = []
    for name, (frame, truth_col) in datasets().items():
        frame = frame.reset_index(drop=True)
        texts = [item_text(t, d if isinstance(d, str) else "") for t, d in zip(frame["title"], frame["description"])]
        vectors = encoder.encode(texts)
        truth = frame[truth_col].astype(str).to_numpy()
        items = frame.assign(item_id=frame["item_id"].astype(str))[["item_id", "title"]]
        for rule, k_range in rules.items():
            started = time.perf_counter()
            k = _choose_k(vectors, seed=0, k_range=k_range(len(frame)))
            report = emerging_clusters(items, vectors, n_clusters=k)
            seconds = time.perf_counter() - started
            labels = report.members["cluster"].to_numpy()
            purity = sum(pd.Series(truth[labels == c]).value_counts().iloc[0] for c in np.unique(labels)) / len(truth)
            per_cluster = np.mean([len(set(truth[labels == c])) for c in np.unique(labels)])
            row = {"dataset": name, "items": len(frame), "truth_classes": int(len(set(truth))), "rule": rule, "k": int(k),
                   "largest_cluster": int(report.clusters["size"].max()),
                   "largest_share": round(float(report.clusters["size"].max() / len(frame)), 3),
                   "nmi": round(float(normalized_mutual_info_score(truth, labels)), 3), "purity": round(float(purity), 3),
                   "classes_per_cluster": round(float(per_cluster), 2), "seconds": round(seconds, 2)}
            results.append(row)
            print(json.dumps(row))
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1min": os.getloadavg()[0]}
    out = ROOT / "benchmarks" / "results" / "clusters.json"
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
