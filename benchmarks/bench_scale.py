"""The whole product on a large synthetic workspace: init, first predictions, an upload, a label,
near-duplicates, drift, clusters, and every dashboard page's first render and rerun.

    python benchmarks/bench_scale.py --items 100000 --json benchmarks/results/scale_100k.json

What is synthetic (random vectors are fine for timing, not for accuracy):

* ``N`` catalog items with random *clustered* unit vectors: about sqrt(N)/4 clusters (at least
  8), 384 dimensions (the model's), each vector its cluster's random unit centre plus Gaussian
  noise of the same norm (cosine to the centre about 0.7, between members about 0.5); one item
  in a hundred is a near-copy of the item before it (cosine 0.8-1.0), so near-duplicates have
  something to find;
* titles made of pseudo-words: the category's two words, the cluster's word, two random
  filler words and the item's number (so cluster keywords and search have words to work on);
* up to 50 categories (one per cluster, clusters beyond 50 share them) whose name and
  description are their two words, under five departments (two-level paths); about 10 labels
  per category come with the catalog as its ``category`` column.

The vectors are written as Parquet shards exactly as ``python -m coldrec embed`` writes them,
under the configured model's name, and loaded by the real ``python -m coldrec init --vectors``
(a subprocess: ``init_s`` is its wall time). The 1,000 uploaded products are embedded for real
by the configured model (the bundled all-MiniLM-L6-v2 by default); category prompts too.

The rest runs in this process on the workspace the dashboard opens (``ui._open_workspace``),
in this order: first predictions (index, classifier fit, every item predicted), the upload of
1,000 products until their predictions are back, three single labels until
``current_predictions()`` shows each (median), the library calls behind the pages (each cold:
its first call after the labels), one more label (so every page's views are stale, as after a
click), then every page through Streamlit's AppTest: its first render and a rerun. Last, the
recall of near-duplicates from the HNSW index against the exact all-pairs search on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import machine  # noqa: E402

#: Rows generated (and written as one shard) at a time, as ``embed`` writes them.
CHUNK = 100_000
MAX_CATEGORIES = 50
LABELS_PER_CATEGORY = 10
#: One item in this many is a near-copy of the item before it.
DUPLICATE_EVERY = 100
UPLOAD_ROWS = 1_000
UPLOAD_BATCH = "bench upload"
PAGES = (
    "pages/overview.py", "pages/upload.py", "pages/queue.py", "pages/label.py", "pages/explore.py",
    "pages/audience.py", "pages/categories.py",
)
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclass(frozen=True)
class Synthetic:
    """The shape of a synthetic catalog of ``n`` items (everything but the per-item draws)."""

    n: int
    dim: int
    seed: int
    clusters: int
    centres: np.ndarray
    cluster_category: np.ndarray
    category_words: list[tuple[str, str]]
    cluster_words: list[str]
    filler: list[str]
    labelled: np.ndarray  # sorted rows that carry their category as a label

    @classmethod
    def make(cls, n: int, dim: int = 384, seed: int = 0) -> "Synthetic":
        rng = np.random.default_rng([seed, 0])
        clusters = max(8, round(np.sqrt(n) / 4))
        categories = min(MAX_CATEGORIES, clusters)
        words = _pseudo_words(rng, 2 * categories + clusters + 400)
        category_words = [(words[2 * c], words[2 * c + 1]) for c in range(categories)]
        cluster_words = words[2 * categories : 2 * categories + clusters]
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        cluster_category = np.arange(clusters) % categories
        labels = min(n // 10, LABELS_PER_CATEGORY * categories)
        labelled = np.sort(rng.choice(n, size=labels, replace=False))
        return cls(n, dim, seed, clusters, centres, cluster_category, category_words, cluster_words,
                   words[2 * categories + clusters :], labelled)

    @property
    def category_names(self) -> list[str]:
        return [f"{a.title()} {b.title()}" for a, b in self.category_words]

    def categories_frame(self) -> pd.DataFrame:
        names = self.category_names
        return pd.DataFrame({
            "name": names,
            "description": [f"{a} {b}" for a, b in self.category_words],
            "path": [f"Dept {c % 5} > {name}" for c, name in enumerate(names)],
        })

    def chunks(self, prefix: str = "SKU", n: int | None = None, stream: int = 1) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """(rows, unit vectors) ``CHUNK`` at a time: item_id, title, description, category (the label
        of labelled rows, else empty), cluster. ``stream`` picks an independent draw (uploads)."""
        n = self.n if n is None else n
        names = np.array(self.category_names, dtype=object)
        for number, start in enumerate(range(0, n, CHUNK)):
            m = min(CHUNK, n - start)
            rng = np.random.default_rng([self.seed, stream, number])
            cluster = rng.integers(0, self.clusters, m)
            fill = rng.integers(0, len(self.filler), (m, 2))
            vectors = self.centres[cluster] + rng.standard_normal((m, self.dim)).astype(np.float32) / np.sqrt(self.dim)
            copies = np.arange(1, m, DUPLICATE_EVERY)  # a near-copy of the row before: same words, close vector
            cluster[copies], fill[copies] = cluster[copies - 1], fill[copies - 1]
            scale = rng.uniform(0.0, 0.75, (len(copies), 1)).astype(np.float32) / np.sqrt(self.dim)
            vectors[copies] = vectors[copies - 1] + scale * rng.standard_normal((len(copies), self.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = np.arange(start, start + m)
            cats = self.cluster_category[cluster]
            titles = [
                f"{self.category_words[c][0]} {self.cluster_words[k]} {self.category_words[c][1]} "
                f"{self.filler[f[0]]} {self.filler[f[1]]} #{r}"
                for c, k, f, r in zip(cats, cluster, fill, rows)
            ]
            label = np.full(m, "", dtype=object)
            if stream == 1:
                mine = self.labelled[(self.labelled >= start) & (self.labelled < start + m)] - start
                label[mine] = names[cats[mine]]
            frame = pd.DataFrame({
                "item_id": [f"{prefix}{r:07d}" for r in rows], "title": titles, "description": "",
                "category": label, "cluster": cluster,
            })
            yield frame, vectors.astype(np.float32)


def _pseudo_words(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct three-syllable pseudo-words (no English stop word is six letters of CV pairs)."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault("".join(rng.choice(_SYLLABLES, 3)), None)
    return list(seen)


def write_inputs(data: Synthetic, folder: Path, model: str, shoppers: int = 0) -> dict[str, Path]:
    """catalog.parquet, categories.csv and vectors/part-*.parquet (in ``embed``'s shard format);
    with ``shoppers``, interactions.csv too: each shopper buys 10-30 catalog items from one to
    three clusters (so look-alikes share buyers, as the audience model assumes)."""
    from coldrec.batch_embed import shard_schema
    from coldrec.encoder import text_hash
    from coldrec.ingest import item_text

    folder.mkdir(parents=True, exist_ok=True)
    shards = folder / "vectors"
    shards.mkdir()
    data.categories_frame().to_csv(folder / "categories.csv", index=False)
    catalog_writer: pq.ParquetWriter | None = None
    clusters = []
    try:
        for number, (frame, vectors) in enumerate(data.chunks()):
            clusters.append(frame["cluster"].to_numpy(dtype=np.int32))
            table = pa.Table.from_pandas(frame[["item_id", "title", "description", "category"]], preserve_index=False)
            if catalog_writer is None:
                catalog_writer = pq.ParquetWriter(folder / "catalog.parquet", table.schema)
            catalog_writer.write_table(table)
            hashes = [text_hash(item_text(t, d)) for t, d in zip(frame["title"], frame["description"])]
            shard = pa.table(
                {
                    "item_id": pa.array(frame["item_id"].tolist(), pa.string()),
                    "text_hash": pa.array(hashes, pa.string()),
                    "model": pa.array([model] * len(frame), pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), data.dim),
                },
                schema=shard_schema(data.dim),
            )
            pq.write_table(shard, shards / f"part-{number:05d}.parquet")
    finally:
        if catalog_writer is not None:
            catalog_writer.close()
    paths = {"catalog": folder / "catalog.parquet", "categories": folder / "categories.csv", "vectors": shards}
    if shoppers:
        paths["interactions"] = folder / "interactions.csv"
        _purchases(np.concatenate(clusters), shoppers, data.seed).to_csv(paths["interactions"], index=False)
    return paths


def _purchases(cluster: np.ndarray, shoppers: int, seed: int) -> pd.DataFrame:
    """user_id, item_id, order_number: each shopper's 10-30 purchases from one to three clusters."""
    rng = np.random.default_rng([seed, 9])
    members = [np.flatnonzero(cluster == c) for c in range(int(cluster.max()) + 1)]
    rows = []
    for user in range(shoppers):
        liked = [m for m in (members[c] for c in rng.choice(len(members), rng.integers(1, 4), replace=False)) if len(m)]
        if not liked:
            continue
        bought = np.unique(np.concatenate([rng.choice(m, rng.integers(4, 11)) for m in liked]))
        rows += [(f"U{user:06d}", f"SKU{r:07d}", 1 + i // 5) for i, r in enumerate(bought)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "order_number"])


#: ``python -m coldrec`` that reports its own peak RSS at exit. VmHWM belongs to the process's own
#: memory map, so unlike ``ru_maxrss`` it does not count the benchmark's pages shared at the fork.
_INIT_WRAPPER = (
    "import re, sys\n"
    "from coldrec.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
    "print(f'peak_rss_kb={hwm.group(1) if hwm else -1}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_init(db: Path, inputs: dict[str, Path], model: str | None) -> tuple[float, str, float | None]:
    """``python -m coldrec init --vectors``: wall seconds, its output and its own peak RSS in MB
    (``None`` where /proc is missing); raises on failure."""
    command = [sys.executable, "-c", _INIT_WRAPPER, "--db", str(db), "--device", "cpu",
               *(["--model", model] if model else []),
               "init", "--catalog", str(inputs["catalog"]), "--categories", str(inputs["categories"]),
               "--vectors", str(inputs["vectors"]),
               *(["--interactions", str(inputs["interactions"])] if "interactions" in inputs else [])]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"init failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    found = re.findall(r"peak_rss_kb=(\d+)", done.stderr)
    return seconds, done.stdout, round(int(found[-1]) / 1024, 1) if found else None


class Timer:
    """Seconds of each step, with the 1-minute load average when it ended (the machine is shared)
    and this process's peak RSS so far (which step raised it)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.load: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], object]) -> object:
        started = time.perf_counter()
        value = fn()
        self.seconds[name] = round(time.perf_counter() - started, 3)
        self.load[name] = round(os.getloadavg()[0], 2)
        self.peak_rss_mb[name] = _rss_mb(resource.RUSAGE_SELF)
        print(f"  {name:<40} {self.seconds[name]:9.2f} s   (load {self.load[name]:.2f}, "
              f"peak RSS {self.peak_rss_mb[name]:,.0f} MB)", flush=True)
        return value


def _rss_mb(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # kilobytes on Linux


def _label_until_shown(ws, timer: Timer, name: str, rng: np.random.Generator) -> tuple[float, bool]:  # noqa: ANN001
    """Label one unlabelled item with a category it is not predicted as; time until
    ``current_predictions()`` predicts it as that category."""
    current = ws.predictor.current_predictions()
    items = ws.store.items(source="catalog")
    unlabelled = items.loc[items["category"].isna(), "item_id"].to_numpy()
    item_id = str(rng.choice(unlabelled))
    predicted = current.set_index("item_id").loc[item_id, "predicted"]
    category = next(c for c in rng.permutation(ws.store.category_names()) if c != predicted)
    ws.labels.label(item_id, str(category), who="bench")
    after = timer(name, ws.predictor.current_predictions)
    return timer.seconds[name], bool(after.set_index("item_id").loc[item_id, "predicted"] == category)


def page_runs(page: str, timeout: float) -> dict[str, object]:
    """First render and a rerun of ``page`` (after app.py's navigation), with any exception or error shown."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    started = time.perf_counter()
    at.run()  # app.py renders the default page (Overview)
    first = time.perf_counter() - started
    if page != PAGES[0]:
        at.switch_page(page)
        started = time.perf_counter()
        at.run()
        first = time.perf_counter() - started
    started = time.perf_counter()
    at.run()
    rerun = time.perf_counter() - started
    return {
        "first_s": round(first, 3), "rerun_s": round(rerun, 3), "load_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mb": _rss_mb(resource.RUSAGE_SELF),
        "exceptions": [str(e.message)[:300] for e in at.exception],
        "errors": [str(e.value)[:300] for e in at.error],
    }


def near_duplicate_recall(data: Synthetic, store, sample: int) -> dict[str, object]:  # noqa: ANN001
    """Pairs at cosine >= 0.8 among the first ``sample`` catalog items: HNSW index vs every pair."""
    from coldrec.analytics import near_duplicates, near_duplicates_indexed
    from coldrec.explore import NEAR_DUPLICATE_FLOOR
    from coldrec.neighbours import VectorIndex

    frames, vectors = zip(*data.chunks(n=sample))
    ids = pd.concat(frames)["item_id"].tolist()
    x = np.concatenate(vectors)
    limit = 10 * sample  # no cut: every pair above the floor is compared
    timer = Timer()
    exact = timer("exact all-pairs search", lambda: near_duplicates(store, ids, x, NEAR_DUPLICATE_FLOOR, limit))
    index = timer("index build (sample)", lambda: VectorIndex.build(ids, x))
    found = timer("search from the index", lambda: near_duplicates_indexed(store, index, NEAR_DUPLICATE_FLOOR, limit))
    want = set(zip(exact["item_a"], exact["item_b"]))
    got = set(zip(found["item_a"], found["item_b"]))
    return {
        "sample": sample, "threshold": NEAR_DUPLICATE_FLOOR, "index": index.kind,
        "pairs_exact": len(want), "pairs_indexed": len(got), "found": len(want & got),
        "recall": round(len(want & got) / len(want), 4) if want else None,
        "false_pairs": len(got - want),
        "exact_s": timer.seconds["exact all-pairs search"], "index_build_s": timer.seconds["index build (sample)"],
        "indexed_s": timer.seconds["search from the index"], "load_1m": timer.load,
    }


def run(
    n: int, model: str | None, seed: int, recall_sample: int, folder: Path, timeout: float, shoppers: int = 0,
    init_only: bool = False,
) -> dict[str, object]:
    """Build, init and measure an ``n``-item workspace under ``folder``; returns the result dict."""
    import streamlit as st

    from coldrec import explore, labelling, ui
    from coldrec.encoder import load_encoder
    from coldrec.ingest import prepare_items
    from coldrec.services.state import Depends

    result: dict[str, object] = {"items": n, "machine": machine(), "load_average_start": list(os.getloadavg())}
    encoder = load_encoder(model, "cpu")  # its name and dimension are what the shards must carry
    name, data = encoder.name, Synthetic.make(n, dim=encoder.dim, seed=seed)
    del encoder
    timer = Timer()
    print(f"{n:,} synthetic items: {data.clusters} clusters, {len(data.category_words)} categories, "
          f"{len(data.labelled)} labels, dim {data.dim}", flush=True)
    inputs = timer("write catalog, categories, shards", lambda: write_inputs(data, folder / "inputs", name, shoppers))
    db = folder / "bench.duckdb"
    init_s, init_out, init_rss = timer("init --vectors (subprocess)", lambda: run_init(db, inputs, model))  # type: ignore[misc]
    result.update(init_s=round(init_s, 3), init_output=init_out.strip().splitlines()[-6:], init_peak_rss_mb=init_rss)
    shard_bytes = sum(p.stat().st_size for p in inputs["vectors"].glob("*.parquet"))
    if init_only:  # a prepared workspace for bench_label_refresh.py (restart and labels)
        result.update(seconds=timer.seconds, model=name, load_average_end=list(os.getloadavg()))
        return result

    saved_env = {k: os.environ.get(k) for k in ("COLDREC_DB", "COLDREC_MODEL", "COLDREC_DEVICE")}
    os.environ.update(COLDREC_DB=str(db), COLDREC_DEVICE="cpu")
    if model:
        os.environ["COLDREC_MODEL"] = model
    else:
        os.environ.pop("COLDREC_MODEL", None)
    st.cache_resource.clear()
    try:
        ws = timer("open workspace (as the app)", ui._open_workspace)
        first = ("item vectors", "item index", "classifier fit", "predict every item")
        timer(first[0], ws.vectors.item_vectors)
        timer(first[1], ws.vectors.item_index)
        timer(first[2], ws.predictor.classifier)
        timer(first[3], ws.predictor.current_predictions)
        result["first_predictions_s"] = round(sum(timer.seconds[k] for k in first), 3)
        result["first_predictions_parts"] = {k: timer.seconds[k] for k in first}
        result["index_kind"] = ws.vectors.item_index().kind

        new = next(data.chunks(prefix="NEW", n=UPLOAD_ROWS, stream=2))[0][["item_id", "title", "description"]]

        def upload() -> None:
            items = prepare_items(new, "new_products.csv")
            batch, _ = ws.predictor.upload_and_predict(items, UPLOAD_BATCH, who="bench")
            assert len(batch.predictions) == UPLOAD_ROWS

        timer("upload 1,000 (embed + predict)", upload)
        result["upload_1000_s"] = timer.seconds["upload 1,000 (embed + predict)"]
        shown = timer("current predictions after upload", ws.predictor.current_predictions)
        result["upload_current_predictions_s"] = timer.seconds["current predictions after upload"]
        assert set(new["item_id"]) <= set(shown["item_id"])

        rng = np.random.default_rng(seed)
        refresh = [_label_until_shown(ws, timer, f"refresh after label {i + 1}", rng) for i in range(3)]
        result["refresh_after_label_s"] = round(statistics.median(s for s, _ in refresh), 3)
        result["refresh_after_label_runs_s"] = [s for s, _ in refresh]
        result["refresh_shows_label"] = [ok for _, ok in refresh]

        library = {
            "near_duplicates": lambda: explore.near_duplicates(ws, 0.95),
            "drift": lambda: explore.drift(ws, UPLOAD_BATCH),
            "emerging_clusters": lambda: explore.emerging_clusters(ws),
            "category_summary": lambda: explore.category_summary(ws),
            "confidence_histogram": lambda: explore.confidence_histogram(ws),
            "unsure_by_batch": lambda: explore.unsure_by_batch(ws),
            "category_overview": lambda: explore.category_overview(ws),
            "category_health": lambda: explore.category_health(ws),
            "queue (cluster-margin)": lambda: labelling.queue(ws, "cluster-margin", n=20),
            "guidance": lambda: labelling.guidance(ws),
            "abstain_thresholds": lambda: labelling.abstain_thresholds(ws),
            "label_issues": lambda: labelling.label_issues(ws),
            "embedding_coverage": ws.vectors.embedding_coverage,
            "audience_model": ws.audience.model,  # None without purchases (see --shoppers)
        }
        for key, fn in library.items():
            timer(key, fn)
        result["library_s"] = {k: timer.seconds[k] for k in library}
        result["near_duplicates_s"] = timer.seconds["near_duplicates"]
        result["near_duplicate_pairs_at_floor"] = len(ws.state.memo("near_duplicates", Depends.ITEMS, lambda: None))
        result["drift_s"] = timer.seconds["drift"]
        result["clusters_s"] = timer.seconds["emerging_clusters"]

        _label_until_shown(ws, timer, "label before the pages", rng)
        pages: dict[str, dict[str, object]] = {}
        for page in PAGES:
            pages[page] = page_runs(page, timeout)
            info = pages[page]
            print(f"  {page:<28} first {info['first_s']:8.2f} s, rerun {info['rerun_s']:8.2f} s"
                  + (f"  EXCEPTION {info['exceptions']}" if info["exceptions"] else ""), flush=True)
        result["pages"] = pages
        result["explore_first_render_s"] = pages["pages/explore.py"]["first_s"]
        result["explore_rerun_s"] = pages["pages/explore.py"]["rerun_s"]
        result["pages_over_2s_rerun"] = [p for p, v in pages.items() if float(v["rerun_s"]) > 2.0]
        if recall_sample:
            print(f"near-duplicate recall on the first {recall_sample:,} items", flush=True)
            result["near_duplicates_recall"] = near_duplicate_recall(data, ws.store, min(recall_sample, n))
    finally:
        st.cache_resource.clear()  # closes the workspace
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    result["peak_rss_mb"] = _rss_mb(resource.RUSAGE_SELF)
    result["seconds"] = timer.seconds
    result["load_1m"] = timer.load
    result["peak_rss_mb_after"] = timer.peak_rss_mb
    result["load_average_end"] = list(os.getloadavg())
    result["synthetic"] = {
        "clusters": data.clusters, "categories": len(data.category_words), "labels": int(len(data.labelled)),
        "dim": data.dim, "near_copies": len(range(1, n, DUPLICATE_EVERY)) if n else 0,
        "vectors": "clustered random unit vectors (centre + Gaussian noise of equal norm), not model outputs",
        "upload": f"{UPLOAD_ROWS} synthetic titles embedded by the model {name}",
        "shard_mb": round(shard_bytes / 2**20, 1), "seed": seed, "shoppers": shoppers,
    }
    result["model"] = name
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, required=True, help="catalog items in the synthetic workspace")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--model", help="model folder or id (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recall-sample", type=int, default=50_000,
                        help="items on which near-duplicates from the index are checked against every pair "
                             "(only above the exact-search limit; 0 skips)")
    parser.add_argument("--shoppers", type=int, default=0,
                        help="synthetic shoppers with 10-30 purchases each, loaded by init (0: none, "
                             "so the Audience page only offers the import)")
    parser.add_argument("--page-timeout", type=float, default=3600.0, help="seconds one page run may take")
    parser.add_argument("--keep", help="build the workspace in this folder and keep it (default: a temporary one)")
    parser.add_argument("--init-only", action="store_true",
                        help="stop after init (with --keep: the workspace bench_label_refresh.py restarts)")
    args = parser.parse_args(argv)
    if args.init_only and not args.keep:
        parser.error("--init-only needs --keep DIR")
    if args.items < 100:
        parser.error("--items must be at least 100")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from coldrec.neighbours import EXACT_MAX_ITEMS

    recall = args.recall_sample if args.items > EXACT_MAX_ITEMS else 0
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=False)
        result = run(args.items, args.model, args.seed, recall, folder, args.page_timeout, args.shoppers,
                     init_only=args.init_only)
        if args.init_only:
            print(json.dumps({k: result[k] for k in ("items", "init_s", "init_peak_rss_mb")}, indent=1))
            return 0
    else:
        with tempfile.TemporaryDirectory(prefix="coldrec-scale-") as tmp:
            result = run(args.items, args.model, args.seed, recall, Path(tmp), args.page_timeout, args.shoppers)
    headline = ("items", "init_s", "upload_1000_s", "refresh_after_label_s", "near_duplicates_s",
                "explore_first_render_s", "explore_rerun_s", "peak_rss_mb")
    print(json.dumps({k: result[k] for k in headline}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
