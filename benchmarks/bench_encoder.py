"""The encoder near this machine's limit: speed, achieved GFLOP/s, Ray vs in-process, int8 accuracy.

Parts (``--parts``, comma-separated; default all):

* ``speed``: items/s of the torch (fp32) and ONNX int8 backends on short texts (Flipkart
  titles) and long texts (Flipkart descriptions, cut at the model's 256 tokens), and the
  GFLOP/s each achieves as a share of this machine's measured fp32 matmul peak. FLOPs are
  counted from the padded batches the encoder really runs (dense layers and attention).
* ``ray``: ``embed_catalog`` on the same titles in-process and on a local Ray cluster with one
  single-threaded actor per core (2 here), with the cluster start timed apart.
* ``threads``: torch in-process with 2 threads and with 1 (explains the Ray ratio on shared cores).
* ``accuracy``: the ``evaluate`` protocol (coldrec and prototype, shots 0,1,4,8,16,
  ``--seeds`` seeds, test sets of 2,000) on Flipkart with descriptions and titles-only, once
  per backend; the int8 backend is accepted only if coldrec's accuracy stays within 0.5
  points at every k on both. Also the cosine of each int8 vector to its fp32 vector.

Usage: ``python benchmarks/bench_encoder.py [--parts speed,ray,accuracy] [--seeds 3]``; writes
``benchmarks/results/encoder.json`` (``--json``) with the machine and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._harness import machine  # noqa: E402

FLIPKART = ROOT.parent / "shared" / "datasets" / "flipkart_products" / "flipkart_products.csv"
OUT = ROOT / "benchmarks" / "results" / "encoder.json"


def load_average() -> list[float]:
    """The 1/5/15-minute load averages (the cores are shared: figures are inflated by others' work)."""
    return [round(x, 2) for x in os.getloadavg()]


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a square torch matmul with torch's thread count (the roof we compare to)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def encoder_flops(encoder, texts: list[str]) -> float:
    """FLOPs of one encode of ``texts``: the padded batches the encoder runs, dense layers
    (Q, K, V, output, two FFN matrices) and attention scores/mixing; embeddings and norms left out."""
    config = encoder._model.config if encoder.backend == "torch" else encoder._flops_config
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    total = 0.0
    for start in range(0, len(texts), encoder.batch_size):
        batch = [texts[i] for i in order[start : start + encoder.batch_size]]
        enc = encoder._tokenizer(batch, padding=True, truncation=True, max_length=encoder.max_length)
        n, length = len(batch), len(enc["input_ids"][0])
        dense = 2 * n * length * (4 * h * h + 2 * h * ffn)
        attention = 2 * 2 * n * length * length * h
        total += layers * (dense + attention)
    return total


def timed_encode(encoder, texts: list[str]) -> float:
    """Seconds for one encode of ``texts`` after a small warm-up."""
    encoder.encode(texts[: encoder.batch_size])
    started = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - started


def flipkart_texts(n_short: int, n_long: int) -> tuple[list[str], list[str]]:
    """``n_short`` distinct titles and ``n_long`` distinct descriptions, drawn with seed 0."""
    from coldrec.ingest import clean_text

    frame = pd.read_csv(FLIPKART, dtype=str, keep_default_na=False)
    titles = pd.Series(frame["title"].map(clean_text).unique())
    described = frame[frame["description"].str.len() > 0]
    long = pd.Series([f"{clean_text(t)}. {clean_text(d)}"[:2000] for t, d in zip(described["title"], described["description"])]).drop_duplicates()
    return (
        titles.sample(n=min(n_short, len(titles)), random_state=0).tolist(),
        long.sample(n=min(n_long, len(long)), random_state=0).tolist(),
    )


def part_speed(n_short: int, n_long: int) -> dict[str, object]:
    from coldrec.encoder import load_encoder

    short, long = flipkart_texts(n_short, n_long)
    peak = matmul_peak_gflops()
    out: dict[str, object] = {"matmul_peak_gflops_fp32": round(peak, 1), "rows": []}
    torch_encoder = load_encoder(None, device="cpu")
    for backend in ("torch", "onnx-int8"):
        encoder = torch_encoder if backend == "torch" else load_encoder(None, backend=backend)
        encoder._flops_config = torch_encoder._model.config  # same architecture, same FLOPs
        for kind, texts in (("short (titles)", short), ("long (descriptions)", long)):
            load = load_average()
            seconds = timed_encode(encoder, texts)
            flops = encoder_flops(encoder, texts)
            row = {
                "backend": backend,
                "texts": kind,
                "n": len(texts),
                "batch_size": encoder.batch_size,
                "items_per_s": round(len(texts) / seconds, 1),
                "gflops_per_s": round(flops / seconds / 1e9, 1),
                "fraction_of_fp32_matmul_peak": round(flops / seconds / 1e9 / peak, 3),
                "gflop_per_item": round(flops / len(texts) / 1e9, 3),
                "load_average": load,
            }
            print(json.dumps(row), flush=True)
            out["rows"].append(row)  # type: ignore[union-attr]
    return out


def _ray_actor_count() -> int | None:
    """Most EmbedBatch actors Ray Data reported in its pool (its own log of the last dataset)."""
    logs = sorted(Path("/tmp/ray/session_latest/logs/ray-data").glob("ray-data-dataset_*.log"))
    if not logs:
        return None
    found = re.findall(r"MapBatches\(EmbedBatch\)[^;]*; Actors: (\d+)", logs[-1].read_text())
    return max(map(int, found)) if found else None


def part_ray(n: int) -> dict[str, object]:
    import ray

    from coldrec.batch_embed import embed_catalog

    short, _ = flipkart_texts(n, 0)
    work = Path(tempfile.mkdtemp(prefix="bench-encoder-"))
    pd.DataFrame({"item_id": [f"T{i}" for i in range(len(short))], "title": short}).to_parquet(work / "catalog.parquet")
    load = load_average()
    local = embed_catalog(work / "catalog.parquet", work / "in-process")
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - started
    try:
        on_ray = embed_catalog(work / "catalog.parquet", work / "ray", ray_address="local")
        actors = _ray_actor_count()
    finally:
        ray.shutdown()
    out = {
        "rows": len(short),
        "in_process_s": round(local.seconds, 1),
        "in_process_items_per_s": round(len(short) / local.seconds, 1),
        "ray_cluster_start_s": round(start_s, 1),
        "ray_embed_s": round(on_ray.seconds, 1),
        "ray_items_per_s": round(len(short) / on_ray.seconds, 1),
        "ray_actors_max_cpus": os.cpu_count(),
        "ray_actors_seen_in_pool": actors,
        "ray_over_in_process_speed": round(local.seconds / on_ray.seconds, 2),
        "load_average": load,
        "load_average_after": load_average(),
    }
    print(json.dumps(out), flush=True)
    return out


def part_threads(n: int) -> list[dict[str, object]]:
    """torch on the titles with 2 threads and with 1, twice, alternating: how much of the
    in-process figure is lost to sharing the cores (a 2-thread op waits for its slower thread)."""
    import torch

    from coldrec.encoder import load_encoder

    short, _ = flipkart_texts(n, 0)
    encoder = load_encoder(None, device="cpu")
    rows = []
    for threads in (2, 1, 2, 1):
        torch.set_num_threads(threads)
        load = load_average()
        seconds = timed_encode(encoder, short)
        rows.append({"torch_threads": threads, "n": len(short), "items_per_s": round(len(short) / seconds, 1),
                     "load_average": load})
        print(json.dumps(rows[-1]), flush=True)
    return rows


class _Recording:
    """An encoder that keeps every vector it made, so two backends can be compared text by text."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.device = inner, inner.name, inner.dim, inner.device
        self.seen: dict[str, np.ndarray] = {}

    def encode(self, texts, progress=None):
        vectors = self.inner.encode(texts, progress)
        self.seen.update(zip(texts, vectors))
        return vectors


def part_accuracy(seeds: int) -> dict[str, object]:
    from coldrec.encoder import load_encoder
    from coldrec.evaluate import load_labelled, run_evaluation

    variants = {"flipkart (title + description)": ["title", "description"], "flipkart (titles only)": ["title"]}
    encoders = {"torch": load_encoder(None, device="cpu"), "onnx-int8": load_encoder(None, backend="onnx-int8")}
    from coldrec.encoder import _ONNX_RECIPE

    out: dict[str, object] = {"seeds": seeds, "recipe": _ONNX_RECIPE, "datasets": []}
    for name, cols in variants.items():
        data = load_labelled(FLIPKART, cols, "category", min_per_class=10)
        docs, recorded = {}, {}
        for backend, encoder in encoders.items():
            recorded[backend] = _Recording(encoder)
            started = time.perf_counter()
            docs[backend] = run_evaluation(
                data, recorded[backend], shots=(0, 1, 4, 8, 16), seeds=seeds, test_size=2000,
                methods=["coldrec", "prototype"],
            )
            print(f"{name} {backend}: {time.perf_counter() - started:.0f} s, load {load_average()}", flush=True)
        common = [t for t in recorded["torch"].seen if t in recorded["onnx-int8"].seen]
        cosine = np.array([float(recorded["torch"].seen[t] @ recorded["onnx-int8"].seen[t]) for t in common])
        rows = []
        for fp32, int8 in zip(docs["torch"]["results"], docs["onnx-int8"]["results"]):
            delta = round(100 * (int8["accuracy"] - fp32["accuracy"]), 2)
            rows.append({
                "method": fp32["method"], "shots": fp32["shots"],
                "accuracy_torch": fp32["accuracy"], "accuracy_onnx_int8": int8["accuracy"],
                "delta_points": delta, "macro_f1_torch": fp32["macro_f1"], "macro_f1_onnx_int8": int8["macro_f1"],
            })
            print(json.dumps(rows[-1]), flush=True)
        out["datasets"].append({  # type: ignore[union-attr]
            "dataset": name, "n_items": docs["torch"]["n_items"], "n_classes": docs["torch"]["n_classes"],
            "texts_compared": len(common), "cosine_mean": round(float(cosine.mean()), 4),
            "cosine_p01": round(float(np.quantile(cosine, 0.01)), 4), "cosine_min": round(float(cosine.min()), 4),
            "results": rows,
        })
    out.update(verdict(out["datasets"]))  # type: ignore[arg-type]
    return out


def verdict(datasets: list[dict[str, object]]) -> dict[str, object]:
    """The gate on coldrec's accuracy (every k, both datasets), in both readings of "within 0.5
    points": never more than 0.5 points worse, and no more than 0.5 points away either way."""
    deltas = [r["delta_points"] for d in datasets for r in d["results"] if r["method"] == "coldrec"]  # type: ignore[index,union-attr]
    return {
        "coldrec_delta_points_min": min(deltas),
        "coldrec_delta_points_max": max(deltas),
        "accepted_no_loss_over_0.5_points": min(deltas) >= -0.5,
        "within_0.5_points_both_ways": max(abs(d) for d in deltas) <= 0.5,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="speed,ray,accuracy")
    parser.add_argument("--short", type=int, default=2048, help="titles timed")
    parser.add_argument("--long", type=int, default=256, help="descriptions timed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=str(OUT))
    args = parser.parse_args()
    if not FLIPKART.is_file():
        print(f"{FLIPKART} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    path = Path(args.json)
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc["machine"] = {**machine(), "load_average_at_start": load_average()}
    doc["gpu"] = "none: no GPU was lent to this task, so the GPU path (bf16, batch 256-1024) is not measured"
    if "speed" in parts:
        doc["speed"] = part_speed(args.short, args.long)
    if "ray" in parts:
        doc["ray"] = part_ray(args.short)
    if "threads" in parts:
        doc["threads"] = part_threads(args.short)
    if "accuracy" in parts:
        doc["accuracy"] = part_accuracy(args.seeds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
