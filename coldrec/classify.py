"""Category prompts and the prediction record that every predictor returns.

The predictor itself is :class:`coldrec.estimator.ColdStartClassifier`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .language import has_cjk


def category_prompt(name: str, description: str | None = None, path: str | None = None) -> str:
    """The text embedded to represent a category for zero-shot matching.

    Uses the parent path when it adds context, then the description. A name with Han, kana or
    Hangul characters is put in a Chinese sentence, any other in an English one.
    """
    name = (name or "").strip()
    path = path if isinstance(path, str) else ""  # a missing path may arrive as NaN from a frame
    segments = [part.strip() for part in path.split(">") if part.strip()]
    # A path ends with the category itself, or with its name before a " (Parent)" disambiguation.
    if segments and (segments[-1] == name or name.startswith(segments[-1] + " (")):
        segments = segments[:-1]
    if has_cjk(name):
        # A Chinese (or Japanese/Korean) name gets a Chinese sentence: "这是一件X商品。" measured best
        # of five forms on JD titles with the multilingual encoder (BENCHMARKS.md, other languages).
        text = f"这是一件{name}商品" + (f"（{'，'.join(segments)}）" if segments else "") + "。"
    else:
        parents = ", ".join(segments)
        # "This is a X product." measured best of five forms on Flipkart (BENCHMARKS.md).
        text = f"This is a {name} product" + (f" ({parents})." if parents else ".")
    description = description.strip() if isinstance(description, str) else ""
    return f"{text} {description}" if description else text


@dataclass(frozen=True)
class Prediction:
    """One item's prediction: top categories with probabilities, and the evidence."""

    top: list[tuple[str, float]]
    unsure: bool
    #: Nearest labelled examples: (item_id, category, cosine).
    evidence: list[tuple[str, str, float]] = field(default_factory=list)
    #: Cosine to the predicted category's prompt (how well the name/description fits).
    prompt_similarity: float = 0.0
    #: True when the item is far from every category and every labelled example
    #: ("looks like none of your categories").
    novel: bool = False
    #: Of the item's nearest look-alikes in the graph, how many carry (as label or prediction)
    #: the predicted category, and how many another.
    lookalikes_agree: int = 0
    lookalikes_disagree: int = 0

    @property
    def category(self) -> str:
        """The most likely category."""
        return self.top[0][0]

    @property
    def probability(self) -> float:
        """Probability of the most likely category."""
        return self.top[0][1]


def predictions_frame(item_ids: Sequence[str], predictions: Sequence[Prediction]) -> pd.DataFrame:
    """Predictions as a table: item_id, category, probability, unsure, novel, top1..top3 with probabilities, top3_json."""
    rows = []
    for item_id, p in zip(item_ids, predictions):
        row: dict[str, object] = {
            "item_id": item_id,
            "category": p.category,
            "probability": round(p.probability, 4),
            "unsure": p.unsure,
            "novel": p.novel,
        }
        for rank in range(1, 4):  # always three, so tables have the same columns with 1 or 2 categories
            name, prob = p.top[rank - 1] if rank <= len(p.top) else (None, None)
            row[f"top{rank}"] = name
            row[f"top{rank}_probability"] = None if prob is None else round(prob, 4)
        row["top3_json"] = json.dumps([{"category": c, "probability": round(q, 4)} for c, q in p.top], ensure_ascii=False)
        rows.append(row)
    return pd.DataFrame(rows)
