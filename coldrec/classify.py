"""Zero-shot and few-shot category prediction over embeddings.

* Zero-shot: cosine between an item and each category's embedded prompt
  (name, path and description; see :func:`category_prompt`).
* Few-shot: each category's vector is the sum of its labelled examples plus the prompt
  vector weighted as ``prior_weight`` pseudo-examples, re-normalised. With no examples it is
  the zero-shot prompt; with many, the class prototype. A new label only changes one sum,
  so refitting takes milliseconds.
* Trained head: once categories have a few examples each, a logistic regression on the
  embeddings (prompts included as examples) is blended with the prototype posterior; it
  measured better from 4 examples per category on (BENCHMARKS.md) and trains in well under a
  second for thousands of labels.
* Probabilities: softmax of cosines times a scale. With enough labels the scale is fitted
  by leave-one-out likelihood on the labelled examples (so it is calibrated on the user's
  own data); otherwise a default measured on real data is used.
* Self-training (opt-in, ``unlabelled_vectors``): unlabelled items the first fit predicts with
  probability >= ``PSEUDO_LABEL_MIN_PROBABILITY`` are added to their predicted category's sum
  (and the head's training set) with weight ``PSEUDO_LABEL_WEIGHT`` each. Off by default;
  measured in BENCHMARKS.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Softmax scale for cosines when there are too few labels to fit one. Fitted by
#: leave-one-out on Flipkart titles (k=4..16) with all-MiniLM-L6-v2; see BENCHMARKS.md.
DEFAULT_SCALE = 30.0
#: The zero-shot prompt counts as this many labelled examples (measured; BENCHMARKS.md).
DEFAULT_PRIOR_WEIGHT = 2.0
#: The trained head is used once the labelled examples average this many per category.
HEAD_MIN_SHOTS = 4.0
#: Inverse L2 strength of the head and its share of the blended log-probabilities (measured).
HEAD_C = 3.0
HEAD_WEIGHT = 0.5
_SCALE_GRID = np.geomspace(3.0, 300.0, 61)
#: Self-training: an unlabelled item becomes a pseudo-example at this predicted probability...
PSEUDO_LABEL_MIN_PROBABILITY = 0.8
#: ...and counts as this fraction of a labelled example (prototype sum and head; measured).
PSEUDO_LABEL_WEIGHT = 0.1


def category_prompt(name: str, description: str | None = None, path: str | None = None) -> str:
    """The text embedded to represent a category for zero-shot matching.

    Uses the parent path when it adds context, then the description.
    """
    name = (name or "").strip()
    path = path if isinstance(path, str) else ""  # a missing path may arrive as NaN from a frame
    segments = [part.strip() for part in path.split(">") if part.strip()]
    # A path ends with the category itself, or with its name before a " (Parent)" disambiguation.
    if segments and (segments[-1] == name or name.startswith(segments[-1] + " (")):
        segments = segments[:-1]
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

    @property
    def category(self) -> str:
        """The most likely category."""
        return self.top[0][0]

    @property
    def probability(self) -> float:
        """Probability of the most likely category."""
        return self.top[0][1]


@dataclass
class CategoryModel:
    """A fitted classifier. Build with :func:`fit_classifier`."""

    categories: list[str]
    prompt_vectors: np.ndarray
    class_vectors: np.ndarray
    scale: float
    example_vectors: np.ndarray
    example_labels: np.ndarray
    example_ids: list[str]
    counts: np.ndarray
    scale_fitted: bool = False
    #: Logistic regression on embeddings, or ``None`` when too few labels (see HEAD_MIN_SHOTS).
    head: object | None = None
    #: Unlabelled items added to the prototypes as pseudo-examples (self-training; 0 when off).
    pseudo_labelled: int = 0

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine of each item to each category vector, ``(n, n_categories)``."""
        return np.asarray(vectors, dtype=np.float32) @ self.class_vectors.T

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, ``(n, n_categories)``, rows summing to 1."""
        logp = _log_softmax(self.scale * self.scores(vectors))
        if self.head is not None:
            head_logp = np.full_like(logp, -30.0)
            head_logp[:, self.head.classes_] = self.head.predict_log_proba(np.asarray(vectors) * _HEAD_INPUT_SCALE)  # type: ignore[attr-defined]
            logp = (1 - HEAD_WEIGHT) * logp + HEAD_WEIGHT * np.maximum(head_logp, -30.0)
        return _softmax(logp)

    def predict(
        self, vectors: np.ndarray, unsure_below: float = 0.5, top_k: int = 3, n_evidence: int = 3
    ) -> list[Prediction]:
        """Top-``top_k`` categories, the unsure flag and the nearest labelled examples per item."""
        vectors = np.asarray(vectors, dtype=np.float32)
        proba = self.predict_proba(vectors)
        prompt_sim = vectors @ self.prompt_vectors.T
        top_idx = np.argsort(-proba, axis=1)[:, :top_k]
        evidence_idx, evidence_sim = _top_k(vectors, self.example_vectors, n_evidence)
        out = []
        for row in range(len(vectors)):
            top = [(self.categories[j], float(proba[row, j])) for j in top_idx[row]]
            evidence = [
                (self.example_ids[j], self.categories[self.example_labels[j]], float(s))
                for j, s in zip(evidence_idx[row], evidence_sim[row])
            ]
            out.append(
                Prediction(
                    top=top,
                    unsure=top[0][1] < unsure_below,
                    evidence=evidence,
                    prompt_similarity=float(prompt_sim[row, top_idx[row, 0]]),
                )
            )
        return out


def fit_classifier(
    categories: Sequence[str],
    prompt_vectors: np.ndarray,
    example_vectors: np.ndarray | None = None,
    example_labels: Sequence[str] | None = None,
    example_ids: Sequence[str] | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    scale: float | None = None,
    head: bool | None = None,
    unlabelled_vectors: np.ndarray | None = None,
    pseudo_min_probability: float | None = None,
    pseudo_weight: float | None = None,
) -> CategoryModel:
    """Fit the few-shot classifier (zero-shot when there are no examples).

    Examples whose label is not in ``categories`` are ignored. ``scale=None`` fits the
    softmax scale by leave-one-out when at least two categories have two examples each.
    ``head=None`` trains the logistic-regression head when examples average
    ``HEAD_MIN_SHOTS`` per category; ``True``/``False`` force it on or off.

    Self-training (off unless ``unlabelled_vectors`` is given): after the fit, unlabelled
    items predicted with probability >= ``pseudo_min_probability`` (default
    ``PSEUDO_LABEL_MIN_PROBABILITY``) are added to their predicted category's prototype sum
    with weight ``pseudo_weight`` (default ``PSEUDO_LABEL_WEIGHT``) and the scale is refitted on
    the refined sums; when the model has a head it is retrained with them at the same weight.
    They never become evidence or label counts; ``model.pseudo_labelled`` says how many were used.
    """
    categories = list(categories)
    if not categories:
        raise ValueError("at least one category is needed to predict")
    index = {c: i for i, c in enumerate(categories)}
    dim = prompt_vectors.shape[1]
    if example_vectors is None or example_labels is None or len(example_labels) == 0:
        example_vectors = np.zeros((0, dim), dtype=np.float32)
        example_labels = []
    keep = [i for i, label in enumerate(example_labels) if label in index]
    x = np.asarray(example_vectors, dtype=np.float32)[keep]
    y = np.array([index[example_labels[i]] for i in keep], dtype=np.int64)
    ids = [str(example_ids[i]) for i in keep] if example_ids is not None else [str(i) for i in keep]
    prompts = np.asarray(prompt_vectors, dtype=np.float32)

    sums = np.zeros_like(prompts)
    np.add.at(sums, y, x)
    counts = np.bincount(y, minlength=len(categories))
    raw = sums + prior_weight * prompts
    class_vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True).clip(min=1e-9)

    fitted = False
    if scale is None:
        scale = DEFAULT_SCALE
        if (counts >= 2).sum() >= 2:
            scale = _loo_scale(x, y, raw)
            fitted = True
    if head is None:
        head = len(y) >= HEAD_MIN_SHOTS * len(categories)
    trained = _fit_head(x, y, prompts, prior_weight) if head and len(np.unique(y)) >= 2 else None
    model = CategoryModel(
        categories=categories,
        prompt_vectors=prompts,
        class_vectors=class_vectors.astype(np.float32),
        scale=float(scale),
        example_vectors=x,
        example_labels=y,
        example_ids=ids,
        counts=counts,
        scale_fitted=fitted,
        head=trained,
    )
    if unlabelled_vectors is not None and len(unlabelled_vectors):
        _self_train(
            model,
            raw,
            x,
            y,
            np.asarray(unlabelled_vectors, dtype=np.float32),
            PSEUDO_LABEL_MIN_PROBABILITY if pseudo_min_probability is None else pseudo_min_probability,
            PSEUDO_LABEL_WEIGHT if pseudo_weight is None else pseudo_weight,
            prior_weight,
        )
    return model


def _self_train(
    model: CategoryModel, raw: np.ndarray, x: np.ndarray, y: np.ndarray, unlabelled: np.ndarray,
    min_probability: float, weight: float, prior_weight: float,
) -> None:
    """Add confident predictions on ``unlabelled`` to the prototype sums and head of ``model`` (in place)."""
    proba = model.predict_proba(unlabelled)
    pred = proba.argmax(axis=1)
    confident = proba[np.arange(len(pred)), pred] >= min_probability
    if not confident.any() or weight <= 0:
        return
    if _PSEUDO_TO_PROTOTYPES:
        pseudo = np.zeros_like(raw)
        np.add.at(pseudo, pred[confident], unlabelled[confident])
        refined = raw + weight * pseudo
        model.class_vectors = (refined / np.linalg.norm(refined, axis=1, keepdims=True).clip(min=1e-9)).astype(np.float32)
        if model.scale_fitted:
            model.scale = _loo_scale(x, y, refined)
    if _PSEUDO_TO_HEAD and model.head is not None:
        model.head = _fit_head(
            x, y, model.prompt_vectors, prior_weight, extra=(unlabelled[confident], pred[confident], weight)
        )
    model.pseudo_labelled = int(confident.sum())


#: Where self-training's pseudo-examples go. Both measured best on tuning seeds (BENCHMARKS.md
#: "Self-training"): prototypes only lost accuracy at k = 16; the head alone was on a par.
_PSEUDO_TO_HEAD = True
_PSEUDO_TO_PROTOTYPES = True
#: Unit vectors are scaled up so the head's L2 penalty (HEAD_C) acts on cosine-sized logits.
_HEAD_INPUT_SCALE = 10.0


def _fit_head(
    x: np.ndarray, y: np.ndarray, prompts: np.ndarray, prior_weight: float,
    extra: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> object:
    """Multinomial logistic regression on the examples plus each category's prompt.

    ``extra``: pseudo-examples ``(vectors, labels, weight)`` added with that sample weight.
    """
    from sklearn.linear_model import LogisticRegression

    n_cat = len(prompts)
    features = np.vstack([x, prompts]) * _HEAD_INPUT_SCALE
    targets = np.concatenate([y, np.arange(n_cat)])
    weights = np.concatenate([np.ones(len(y)), np.full(n_cat, max(prior_weight, 1e-3) / 2)])
    if extra is not None:
        features = np.vstack([features, extra[0] * _HEAD_INPUT_SCALE])
        targets = np.concatenate([targets, extra[1]])
        weights = np.concatenate([weights, np.full(len(extra[1]), extra[2])])
    model = LogisticRegression(C=HEAD_C, max_iter=1000)
    model.fit(features, targets, sample_weight=weights)
    return model


def _loo_scale(x: np.ndarray, y: np.ndarray, raw: np.ndarray) -> float:
    """Softmax scale maximising leave-one-out likelihood of the labelled examples.

    Each example is scored against class vectors rebuilt without it, so the fit sees the
    same uncertainty as a new item would.
    """
    dots = x @ raw.T  # x_i . (S_c + w z_c)
    norms_sq = (raw * raw).sum(axis=1)
    rows = np.arange(len(y))
    own = dots[rows, y]
    # Removing x_i from its own class: (S - x).x = own - 1 ; |S - x|^2 = |S|^2 - 2 own + 1.
    own_norm_sq = np.maximum(norms_sq[y] - 2 * own + 1.0, 1e-9)
    cos = dots / np.sqrt(norms_sq)[None, :].clip(min=1e-9)
    cos[rows, y] = (own - 1.0) / np.sqrt(own_norm_sq)
    best, best_nll = DEFAULT_SCALE, np.inf
    for s in _SCALE_GRID:
        logp = _log_softmax(s * cos)
        nll = -logp[rows, y].mean()
        if nll < best_nll:
            best, best_nll = float(s), nll
    return best


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(z))


def _top_k(queries: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from .neighbours import top_k_cosine

    return top_k_cosine(queries, index, k)


def predictions_frame(item_ids: Sequence[str], predictions: Sequence[Prediction]) -> pd.DataFrame:
    """Predictions as a table: item_id, category, probability, unsure, top1..top3 with probabilities, top3_json."""
    rows = []
    for item_id, p in zip(item_ids, predictions):
        row: dict[str, object] = {
            "item_id": item_id,
            "category": p.category,
            "probability": round(p.probability, 4),
            "unsure": p.unsure,
        }
        for rank in range(1, 4):  # always three, so tables have the same columns with 1 or 2 categories
            name, prob = p.top[rank - 1] if rank <= len(p.top) else (None, None)
            row[f"top{rank}"] = name
            row[f"top{rank}_probability"] = None if prob is None else round(prob, 4)
        row["top3_json"] = json.dumps([{"category": c, "probability": round(q, 4)} for c, q in p.top], ensure_ascii=False)
        rows.append(row)
    return pd.DataFrame(rows)
