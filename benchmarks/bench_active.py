"""Active learning on real data (Flipkart), with the machine recorded.

Active learning: runs ``python -m coldrec evaluate --active ...`` on
../shared/datasets/flipkart_products and writes benchmarks/results/active_flipkart_seeds<N>.json,
prints the curves and draws docs/active_learning.png (matplotlib if installed, else Pillow,
else no image). Usage:

    python benchmarks/bench_active.py [--seeds 3] [--budget 200] [--step 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_evaluate import DATA, OUT, run_evaluate  # noqa: E402

STRATEGIES = "random,least-confidence,margin,entropy,cluster-margin"
PLOT = ROOT / "docs" / "active_learning.png"


def _curves(doc: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    curves: dict[str, list[dict[str, object]]] = {}
    for row in doc["results"]:  # type: ignore[union-attr]
        curves.setdefault(str(row["method"]).removeprefix("active:"), []).append(row)
    return curves


def plot(doc: dict[str, object], path: Path = PLOT) -> str:
    """Accuracy against labels per strategy; returns what drew it (or why nothing was drawn)."""
    curves = _curves(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Active learning on {doc['dataset']} ({doc['active']['seeds']} seeds, test accuracy)"  # type: ignore[index]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        pass
    else:
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, rows in curves.items():
            ax.plot([r["labels"] for r in rows], [r["accuracy"] for r in rows], marker="o", ms=3, label=name)
        ax.set(xlabel="labels", ylabel="accuracy", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return "matplotlib"
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return "no image: neither matplotlib nor Pillow is installed"
    return _plot_pillow(curves, title, path, Image, ImageDraw)


def _plot_pillow(curves, title, path, Image, ImageDraw) -> str:
    width, height, left, right, top, bottom = 900, 560, 70, 190, 40, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    xs = [r["labels"] for rows in curves.values() for r in rows]
    ys = [r["accuracy"] for rows in curves.values() for r in rows]
    x_max = max(xs) or 1
    y_lo, y_hi = (int(min(ys) * 20) / 20), min(1.0, (int(max(ys) * 20) + 1) / 20)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (width - left - right) * x / x_max,
                height - bottom - (height - top - bottom) * (y - y_lo) / max(y_hi - y_lo, 1e-9))

    for i in range(round((y_hi - y_lo) / 0.05) + 1):
        y = y_lo + 0.05 * i
        draw.line([at(0, y), at(x_max, y)], fill=(225, 225, 225))
        draw.text((at(0, y)[0] - 40, at(0, y)[1] - 6), f"{y:.2f}", fill="black")
    for x in range(0, x_max + 1, max(1, x_max // 10)):
        draw.text((at(x, y_lo)[0] - 8, at(x, y_lo)[1] + 8), str(x), fill="black")
    draw.rectangle([at(0, y_hi), at(x_max, y_lo)], outline="black")
    draw.text((left, 12), title, fill="black")
    draw.text(((width - right + left) / 2 - 20, height - 22), "labels", fill="black")
    draw.text((8, top - 20), "accuracy", fill="black")
    colours = [(120, 120, 120), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    for n, (name, rows) in enumerate(curves.items()):
        colour = colours[n % len(colours)]
        points = [at(r["labels"], r["accuracy"]) for r in rows]
        draw.line(points, fill=colour, width=3 if name != "random" else 2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = top + 20 + 22 * n
        draw.line([(width - right + 15, ly), (width - right + 45, ly)], fill=colour, width=3)
        draw.text((width - right + 52, ly - 6), name, fill="black")
    img.save(path)
    return "Pillow (matplotlib is not installed)"


def active(args: argparse.Namespace) -> int:
    out = OUT / f"active_flipkart_seeds{args.seeds}.json"
    doc, wall, peak_mb = run_evaluate(
        ["--active", STRATEGIES, "--budget", str(args.budget), "--step", str(args.step), "--seeds", str(args.seeds),
         "--test-size", str(args.test_size)], out,
    )
    curves = _curves(doc)
    names = list(curves)
    print(f"{'labels':>6} " + " ".join(f"{n:>17}" for n in names))
    for i, row in enumerate(curves[names[0]]):
        print(f"{row['labels']:>6} " + " ".join(
            f"{curves[n][i]['accuracy']:.3f} / {curves[n][i]['macro_f1']:.3f}".rjust(17) for n in names))
    print(f"random accuracy at {args.budget}: {doc['random_accuracy_at_budget']}; labels to match it: "
          f"{json.dumps(doc['labels_to_match_random'])}")
    print(f"wall {wall:.0f} s, peak RSS {peak_mb:.0f} MB, embed {doc['embed_items_per_s']} items/s")
    print(f"plot: {plot(doc)} -> {PLOT.relative_to(ROOT)}")
    print(json.dumps(doc["machine"]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the stored JSON")
    args = parser.parse_args()
    if args.plot_only:
        doc = json.loads((OUT / f"active_flipkart_seeds{args.seeds}.json").read_text())
        print(f"plot: {plot(doc)} -> {PLOT.relative_to(ROOT)}")
        return 0
    if not DATA.is_file():
        print(f"{DATA} not found: the shared datasets are not beside this checkout", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    return active(args)


if __name__ == "__main__":
    raise SystemExit(main())
