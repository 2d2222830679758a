"""Unsupervised domain adaptation of the encoder on the catalogue's own titles (issue 23, first lever).

SimCSE (Gao et al. 2021; sentence-transformers' "unsupervised learning / SimCSE" recipe): every
title is encoded twice by the network in training mode, so dropout makes two views; the two views
are the positive pair and the batch's other titles the negatives (in-batch softmax, temperature
0.05 = sentence-transformers' scale 20), mean pooling + normalising as the encoder does. No labels:
one adapted copy of all-MiniLM-L6-v2 per catalogue serves every seed and k.

Then exactly the ``coldrec`` row of ``python -m coldrec evaluate`` (coldrec/evaluate.py: the same
splits, every row's vector unlabelled in the shared graph with its text view, the category prompts
embedded by the same encoder) on the frozen vectors and on the adapted ones, k = 0, 1, 4, 8, 16,
seeds 0-4, test size 2,000, with per-seed accuracies and paired differences.

Catalogues: Flipkart titles only, level 1 (``category``, classes with 10+ titles) and level 2
(``category_l2``, 30+), built as bench_languages.py builds them. Both label sets belong to one
catalogue (the Flipkart file), so one adaptation over all its distinct cleaned titles serves both.
Frozen vectors are cached in data/bench_adapt_cache.duckdb. Usage:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_adapt.py quality [--seeds 5] [--sample 4096] [--variants simcse,...]
    nice -n 10 python benchmarks/bench_adapt.py speed [--steps 20]      # CPU time per 1,000 titles, 1 and 2 threads

Writes benchmarks/results/adapt_flipkart_titles_seeds<N>.json and adapt_speed.json.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from _harness import OUT, ROOT, SHARED, finish, load_average, result  # noqa: E402

FLIPKART = SHARED / "flipkart_products" / "flipkart_products.csv"
CACHE = ROOT / "data" / "bench_adapt_cache.duckdb"
SHOTS = (0, 1, 4, 8, 16)

#: Variants measured: name -> adaptation settings (lr, batch, frozen lower layers, passes).
VARIANTS = {
    "simcse lr 3e-5 batch 64": {"lr": 3e-5, "batch": 64, "freeze_layers": 0, "passes": 1},
    "simcse lr 3e-5 batch 64, embeddings + layers 0-2 frozen": {"lr": 3e-5, "batch": 64, "freeze_layers": 3, "passes": 1},
    # the gentlest step: run alone (--variants "simcse lr 1e-5" --tag _lr1e-5) after the two above lost
    "simcse lr 1e-5 batch 64, embeddings + layers 0-2 frozen": {"lr": 1e-5, "batch": 64, "freeze_layers": 3, "passes": 1},
}


class _MemoryCache:
    """Vectors of one adapted model kept between the two label sets (their titles overlap)."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], object] = {}

    def get_embeddings(self, model, hashes):  # noqa: ANN001, ANN201
        return {h: self.vectors[(model, h)] for h in hashes if (model, h) in self.vectors}

    def put_embeddings(self, model, hashes, vectors) -> None:  # noqa: ANN001
        self.vectors.update({(model, h): v for h, v in zip(hashes, vectors)})


def simcse_adapt(encoder, texts: list[str], lr: float, batch: int, freeze_layers: int = 0, passes: int = 1,
                 seed: int = 0, max_steps: int | None = None, log=print):  # noqa: ANN001, ANN201
    """A copy of ``encoder``'s network adapted by unsupervised SimCSE on ``texts``; returns
    (network, figures). ``freeze_layers``: the embeddings and this many lowest layers stay fixed."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(encoder._model).float()
    if freeze_layers:
        for p in net.embeddings.parameters():
            p.requires_grad_(False)
        for layer in net.encoder.layer[:freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)
    net.train()  # dropout on: the two views of a title differ only by it
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps_per_pass = len(texts) // batch  # a last short batch has too few negatives
    planned = max(1, passes * steps_per_pass if max_steps is None else min(max_steps, passes * steps_per_pass))
    warmup = max(1, planned // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (planned - s) / max(1, planned - warmup)))
    started, cpu_started = time.perf_counter(), time.process_time()
    step, losses = 0, []
    for _ in range(passes):
        order = rng.permutation(len(texts))
        for start in range(0, steps_per_pass * batch, batch):
            if step >= planned:
                break
            chunk = [texts[i] for i in order[start:start + batch]]
            enc = encoder._tokenizer(chunk, padding=True, truncation=True, max_length=encoder.max_length,
                                     return_tensors="pt")
            views = []
            for _view in range(2):
                hidden = net(**enc).last_hidden_state
                views.append(torch.nn.functional.normalize(encoder._pool(hidden, enc["attention_mask"]), dim=1))
            sim = views[0] @ views[1].T / 0.05
            target = torch.arange(len(chunk))
            # symmetric: each view must find its twin among the other view's batch
            loss = (torch.nn.functional.cross_entropy(sim, target) + torch.nn.functional.cross_entropy(sim.T, target)) / 2
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step % 25 == 0:
                log(f"  step {step}/{planned} loss {np.mean(losses[-25:]):.4f} "
                    f"{time.perf_counter() - started:.0f} s")
    net.eval()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    texts_seen = step * batch
    return net, {"steps": step, "texts_seen": texts_seen, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                 "wall_s_per_1000_texts": round(1000 * wall / max(texts_seen, 1), 1),
                 "cpu_s_per_1000_texts": round(1000 * cpu / max(texts_seen, 1), 1),
                 "loss_first_25": round(float(np.mean(losses[:25])), 4), "loss_last_25": round(float(np.mean(losses[-25:])), 4),
                 "torch_threads": torch.get_num_threads()}


def _encoder_over(base, net, name: str):  # noqa: ANN001, ANN202
    import threading

    from coldrec.encoder import Encoder

    return Encoder(name=name, dim=base.dim, device=base.device, pooling=base.pooling, max_length=base.max_length,
                   batch_size=base.batch_size, _tokenizer=base._tokenizer, _model=net.eval(), _lock=threading.Lock())


def quality(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score

    from coldrec.encoder import load_encoder
    from coldrec.evaluate import _embed, _shared_graph, expected_calibration_error, load_labelled, make_splits, predictor_proba
    from coldrec.ingest import clean_text
    from coldrec.store import Store

    if not FLIPKART.is_file():
        print(f"{FLIPKART} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    variants = [v for v in VARIANTS if any(v.startswith(x) for x in args.variants.split(","))] if args.variants else list(VARIANTS)
    record = result("bench_adapt quality", seeds=args.seeds, shots=list(SHOTS), test_size=2000,
                    omp_num_threads=os.environ.get("OMP_NUM_THREADS"), variants={v: VARIANTS[v] for v in variants},
                    adaptation={}, rows=[])
    base = load_encoder(None)
    cache = Store(CACHE)
    catalogues = [("flipkart_l1_titles", "category", 10), ("flipkart_l2_titles", "category_l2", 30)]
    datas = {name: load_labelled(FLIPKART, ["title"], label, min_per_class=m) for name, label, m in catalogues}
    # The catalogue: every distinct cleaned title of the file (what a workspace holding it has).
    titles = sorted({t for t in pd.read_csv(FLIPKART)["title"].map(clean_text) if t})
    record["catalogue_titles"] = len(titles)
    if args.sample and args.sample < len(titles):  # a seeded sample bounds the CPU time
        titles = [titles[i] for i in sorted(np.random.default_rng(0).choice(len(titles), args.sample, replace=False))]
    record["adapted_on_titles"] = len(titles)
    print(f"catalogue: {record['catalogue_titles']:,} distinct titles; adapting on {len(titles):,}", file=sys.stderr, flush=True)

    def evaluate(name, encoder, label, vector_cache):  # noqa: ANN001, ANN202
        data = datas[name]
        splits = make_splits(data, SHOTS, args.seeds, 2000)
        vectors, prompts, _ = _embed(data, encoder, [np.arange(len(data.texts))], None, lambda m: None, vector_cache)
        shared = _shared_graph(vectors, data.texts)
        for k in SHOTS:
            per_seed = []
            for split in splits:
                proba = predictor_proba(data, vectors, prompts, split.support[k], split.test, shared=shared)
                y = data.labels[split.test]
                pred = proba.argmax(axis=1)
                per_seed.append({"accuracy": float((pred == y).mean()),
                                 "macro_f1": float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0)),
                                 "ece": expected_calibration_error(y, proba)})
            row = {"data": name, "classes": len(data.classes), "items": len(data.texts), "encoder": label, "shots": k,
                   **{m: round(float(np.mean([r[m] for r in per_seed])), 4) for m in ("accuracy", "macro_f1", "ece")},
                   "accuracy_std": round(float(np.std([r["accuracy"] for r in per_seed])), 4),
                   "accuracy_per_seed": [round(r["accuracy"], 4) for r in per_seed]}
            frozen = next((r for r in record["rows"] if r["data"] == name and r["encoder"] == "frozen" and r["shots"] == k), None)
            if frozen is not None and label != "frozen":
                diffs = np.array(row["accuracy_per_seed"]) - np.array(frozen["accuracy_per_seed"])
                row["difference_per_seed"] = [round(float(d), 4) for d in diffs]
                row["difference"] = round(float(diffs.mean()), 4)
                row["seeds_better"] = int((diffs > 0).sum())
            record["rows"].append(row)
            print(f"{name:20} {label[:56]:56} k={k:<2} acc {row['accuracy']:.3f} ± {row['accuracy_std']:.3f}"
                  f"  F1 {row['macro_f1']:.3f}  ECE {row['ece']:.3f}"
                  + (f"  diff {row['difference']:+.4f} ({row['seeds_better']}/{args.seeds} seeds up)" if "difference" in row else ""),
                  file=sys.stderr, flush=True)

    for name in datas:
        evaluate(name, base, "frozen", cache)
    for variant in variants:
        settings = VARIANTS[variant]
        print(f"adapting: {variant} on {len(titles):,} titles (load {load_average()})", file=sys.stderr, flush=True)
        net, figures = simcse_adapt(base, titles, settings["lr"], settings["batch"], settings["freeze_layers"],
                                    settings["passes"], log=lambda m: print(m, file=sys.stderr, flush=True))
        figures["load_average_after"] = load_average()
        record["adaptation"][variant] = figures
        print(f"adapted: {figures}", file=sys.stderr, flush=True)
        adapted = _encoder_over(base, net, f"{base.name}+bench-{variant}")
        memory = _MemoryCache()
        for name in datas:
            evaluate(name, adapted, variant, memory)
        del adapted, net
    cache.close()
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finish(record, OUT / f"adapt_flipkart_titles_seeds{args.seeds}{args.tag}.json")
    return 0


def speed(args: argparse.Namespace) -> int:
    """Adaptation cost per 1,000 titles with 1 and 2 torch threads (``--steps`` batches of 64)."""
    import pandas as pd
    import torch

    from coldrec.encoder import load_encoder
    from coldrec.ingest import clean_text

    titles = sorted({t for t in pd.read_csv(FLIPKART)["title"].map(clean_text) if t})
    record = result("bench_adapt speed", steps=args.steps, batch=64, runs=[])
    base = load_encoder(None)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        load = load_average()
        _, figures = simcse_adapt(base, titles, 3e-5, 64, max_steps=args.steps, log=lambda m: None)
        figures["load_average_before"] = load
        record["runs"].append(figures)  # type: ignore[union-attr]
        print(figures, file=sys.stderr, flush=True)
    print(finish(record, OUT / "adapt_speed.json"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, default=5)
    q.add_argument("--variants", default="", help="comma-separated prefixes of VARIANTS names (default: all)")
    q.add_argument("--tag", default="")
    q.add_argument("--sample", type=int, default=4096, help="adapt on a seeded sample of this many titles (0: all)")
    s = sub.add_parser("speed")
    s.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    return quality(args) if args.command == "quality" else speed(args)


if __name__ == "__main__":
    raise SystemExit(main())
