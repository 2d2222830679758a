"""How long a new label takes to reach predictions: refitting the classifier with many labels.

Uses real Flipkart titles embedded by the bundled model (27 categories) and times
``fit_classifier`` (prototypes + leave-one-out scale + logistic-regression head) at several
label counts, plus predicting 1,000 items. Usage: python benchmarks/bench_refit.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_evaluate import DATA, machine  # noqa: E402


def main() -> int:
    from coldrec.classify import category_prompt, fit_classifier
    from coldrec.encoder import load_encoder
    from coldrec.evaluate import load_labelled

    if not DATA.is_file():
        print(f"{DATA} not found", file=sys.stderr)
        return 1
    data = load_labelled(DATA, ["title"], "category", 10)
    encoder = load_encoder()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(data.texts), size=min(6000, len(data.texts)), replace=False)
    x = encoder.encode([data.texts[i] for i in rows])
    y = [data.classes[data.labels[i]] for i in rows]
    prompts = encoder.encode([category_prompt(c) for c in data.classes])
    out = {"categories": len(data.classes), "machine": machine(), "refit_s": {}}
    for n in (500, 2000, 5000):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            model = fit_classifier(data.classes, prompts, x[:n], y[:n])
            times.append(time.perf_counter() - started)
        out["refit_s"][n] = round(min(times), 3)
        started = time.perf_counter()
        model.predict(x[n : n + 1000])
        out.setdefault("predict_1000_s", {})[n] = round(time.perf_counter() - started, 3)
        print(f"{n:>5} labels: refit {min(times):.3f} s (head: {model.head is not None}), "
              f"predict 1,000 items {out['predict_1000_s'][n]:.3f} s", flush=True)
    path = ROOT / "benchmarks" / "results" / "refit.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
