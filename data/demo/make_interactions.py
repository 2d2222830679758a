"""Generate data/demo/interactions.csv: purchases by shoppers with explicit category tastes.

Fixed seed, so the file is reproducible: `python data/demo/make_interactions.py`.
Each shopper has one to three favourite categories (written into data/demo/shoppers.csv so the
demo's audiences can be checked against them); 85% of their purchases come from those
categories, the rest from anywhere. Within a category, a shopper prefers a few brands, which
gives the content signal something beyond the category to find. Order sizes, order counts and
dates vary per shopper.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20261123
N_SHOPPERS = 160
FIRST_NAMES = (
    "Ana Ben Chloé Dev Emil Fatima Gus Hana Ivo Jun Kai Lena Marco Nia Omar Priya Quinn Rosa Sami Tove "
    "Uma Vik Wen Xavi Yara Zoe"
).split()


def main() -> None:
    rng = np.random.default_rng(SEED)
    with open(HERE / "catalog.csv", newline="", encoding="utf-8") as fh:
        catalog = list(csv.DictReader(fh))
    categories = sorted({row["category"] for row in catalog})
    by_category = {c: [r for r in catalog if r["category"] == c] for c in categories}
    start = datetime(2026, 5, 1)
    shoppers, purchases = [], []
    for n in range(N_SHOPPERS):
        user_id = f"U{n + 1:04d}"
        k = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        tastes = list(rng.choice(categories, size=k, replace=False))
        weights = rng.dirichlet(np.ones(k) * 2.0)
        # Two favourite brands per favourite category.
        favourite_brands = {
            c: set(rng.choice(sorted({r["brand"] for r in by_category[c]}), size=2, replace=False)) for c in tastes
        }
        activity = int(rng.integers(3, 16))  # orders
        shoppers.append(
            {"user_id": user_id, "name": f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {n + 1}", "tastes": " | ".join(tastes)}
        )
        for order in range(1, activity + 1):
            when = start + timedelta(days=float(rng.uniform(0, 180)))
            for _ in range(int(rng.integers(1, 5))):
                if rng.random() < 0.85:
                    category = tastes[int(rng.choice(k, p=weights))]
                    pool = by_category[category]
                    liked = [r for r in pool if r["brand"] in favourite_brands[category]]
                    item = liked[int(rng.integers(len(liked)))] if liked and rng.random() < 0.6 else pool[int(rng.integers(len(pool)))]
                else:
                    item = catalog[int(rng.integers(len(catalog)))]
                purchases.append(
                    {
                        "user_id": user_id,
                        "item_id": item["item_id"],
                        "order_number": order,
                        "timestamp": when.strftime("%Y-%m-%d %H:%M"),
                        "quantity": int(rng.choice([1, 1, 1, 2, 3])),
                    }
                )
    purchases.sort(key=lambda p: (p["user_id"], p["order_number"]))
    with open(HERE / "interactions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(purchases[0]))
        writer.writeheader()
        writer.writerows(purchases)
    with open(HERE / "shoppers.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(shoppers[0]))
        writer.writeheader()
        writer.writerows(shoppers)
    print(f"{len(purchases)} purchases by {len(shoppers)} shoppers")


if __name__ == "__main__":
    main()
