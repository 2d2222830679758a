"""How good the labels and predictions are, measured on the labelled items themselves.

* Out-of-fold probabilities (:func:`cross_validated_proba`): every labelled item is
  predicted by a model that never saw it, so the numbers below are honest estimates.
* Abstain thresholds (:func:`precision_curve`, :func:`threshold_for`,
  :func:`abstain_table`, :func:`route`): per category, the lowest confidence at which the
  predictions still reach the merchandiser's target precision; below it they go to the queue.
* Label checks (:func:`label_issues`): labels that both the model and the neighbours
  disagree with (the idea of "confident learning").
* Guidance (:func:`learning_curves`, :func:`guidance`): how a category's F1 grows with its
  examples, and where a few more labels help most.

Everything works on arrays and label lists, so callers can feed it store data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .estimator import PROMPT_WEIGHT, ColdStartClassifier
from .neighbours import top_k_cosine

#: z of the Wilson lower bound used as the conservative precision estimate (one-sided 90%):
#: a threshold counts as reaching a target only if we are 90% sure its precision does.
#: With no mistakes, 95% then needs 32 correct predictions, 90% needs 15.
WILSON_Z = 1.2816
#: A label is suspect when its out-of-fold probability is below this ...
MODEL_DOUBT = 0.2
#: ... and fewer than this share of its nearest labelled neighbours carry it.
NEIGHBOUR_DOUBT = 0.3
#: Share of each category's labelled items held out to measure learning curves (at least one).
HOLDOUT_SHARE = 1 / 3
#: Gains below this F1 are not worth a hint.
MIN_GAIN = 0.005
#: A hint asks for at most this many examples at once (one short labelling session).
MAX_SUGGESTED = 10


def cross_validated_proba(
    categories: Sequence[str],
    prompt_vectors: np.ndarray,
    vectors: np.ndarray,
    labels: Sequence[str],
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold probabilities ``(n, n_categories)`` of labelled items alone, from the
    product's predictor (:class:`~coldrec.estimator.ColdStartClassifier`) without a graph.

    Folds are stratified by label (each label's items spread evenly over the folds), and each
    fold is predicted by the classifier fitted on the others, so no item sees its own label. A
    label with one example is predicted by models without it. (A workspace uses its
    classifier's own out-of-fold probabilities, which see the unlabelled items too.)
    """
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    labels = list(labels)
    vectors = np.asarray(vectors, dtype=np.float32)
    out = np.zeros((len(labels), len(categories)), dtype=np.float64)
    if not labels:
        return out
    fold = _stratified_folds(labels, min(folds, len(labels)), seed)
    for f in np.unique(fold):
        test = fold == f
        train = np.flatnonzero(~test)
        model = ColdStartClassifier(transductive=False).fit(
            vectors[train], [labels[i] for i in train], categories=categories, prompt_vectors=prompt_vectors
        )
        out[test] = model.predict_proba(vectors[test])
    return out


def _stratified_folds(labels: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Fold number per item: each label's items shuffled and dealt round-robin, continuing where the last label stopped."""
    rng = np.random.default_rng(seed)
    codes = pd.factorize(pd.Series(labels, dtype=object))[0]
    fold = np.empty(len(labels), dtype=np.int64)
    start = 0  # continuing the deal keeps fold sizes within one of each other
    for code in range(codes.max() + 1):
        members = rng.permutation(np.flatnonzero(codes == code))
        fold[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return fold


def precision_curve(
    y_true: Sequence[str], predicted: Sequence[str], confidence: np.ndarray, category: str
) -> pd.DataFrame:
    """Precision and coverage of the predictions of ``category`` at each confidence threshold.

    Rows, by increasing threshold: 0 and each distinct confidence of items predicted as
    ``category``. Columns: ``threshold``; ``predicted``, the items predicted as ``category``
    with confidence >= threshold (the ones that would be auto-accepted); ``correct``, those
    whose true label is ``category``; ``precision`` = correct / predicted (NaN when none);
    ``precision_low``, its Wilson lower bound (``WILSON_Z``); ``coverage`` = correct / items
    whose true label is ``category`` (the share of the category's items auto-accepted
    correctly, i.e. recall under abstention; NaN when the category has no labelled items).
    """
    truth = np.asarray(y_true, dtype=object) == category
    mask = np.asarray(predicted, dtype=object) == category
    conf = np.asarray(confidence, dtype=np.float64)[mask]
    hit = truth[mask]
    order = np.argsort(conf, kind="stable")
    conf, hit = conf[order], hit[order]
    thresholds = np.unique(np.concatenate([[0.0], conf]))
    first = np.searchsorted(conf, thresholds, side="left")  # items at or above each threshold start here
    predicted_n = len(conf) - first
    correct_above = np.concatenate([np.cumsum(hit[::-1])[::-1], [0]])
    correct = correct_above[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_n > 0, correct / np.maximum(predicted_n, 1), np.nan)
        coverage = correct / truth.sum() if truth.any() else np.full(len(thresholds), np.nan)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "predicted": predicted_n,
            "correct": correct,
            "precision": precision,
            "precision_low": wilson_lower(correct, predicted_n),
            "coverage": coverage,
        }
    )


def wilson_lower(successes: np.ndarray, trials: np.ndarray, z: float = WILSON_Z) -> np.ndarray:
    """Wilson score lower bound of a proportion (NaN where there are no trials)."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = p + z * z / (2 * n)
        spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return np.where(n > 0, (centre - spread) / (1 + z * z / n), np.nan)


def threshold_for(curve: pd.DataFrame, target_precision: float) -> tuple[float, float, float] | None:
    """The lowest threshold of ``curve`` (from :func:`precision_curve`) reaching ``target_precision``.

    A threshold reaches the target when the Wilson lower bound of its precision does (so a
    handful of lucky predictions is not enough; see ``WILSON_Z``). Returns ``(threshold,
    precision, coverage)`` with the measured precision, or ``None`` when no threshold reaches it.
    """
    _check_target(target_precision)
    ok = curve[curve["precision_low"] >= target_precision]
    if ok.empty:
        return None
    row = ok.loc[ok["threshold"].idxmin()]
    return float(row["threshold"]), float(row["precision"]), float(row["coverage"])


def _check_target(target: float) -> None:
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be a fraction in (0, 1], got {target!r}")


def abstain_table(
    categories: Sequence[str],
    y_true: Sequence[str],
    proba: np.ndarray,
    targets: Mapping[str, float],
) -> pd.DataFrame:
    """Per category: the threshold meeting its target precision, measured on out-of-fold ``proba``.

    ``proba`` is ``(n, n_categories)`` for the labelled items ``y_true`` (use
    :func:`cross_validated_proba`). Columns: category, labelled, target_precision,
    threshold, estimated_precision (measured at the threshold), precision_lower_bound,
    coverage (see :func:`precision_curve`) and note, a plain reason when no threshold is
    given. Values are NaN where a category has no target or cannot reach it.
    """
    categories = list(categories)
    proba = np.asarray(proba, dtype=np.float64)
    truth = np.asarray(y_true, dtype=object)
    predicted = np.asarray(categories, dtype=object)[proba.argmax(axis=1)] if len(proba) else truth[:0]
    confidence = proba.max(axis=1) if len(proba) else np.zeros(0)
    rows = []
    for category in categories:
        labelled = int((truth == category).sum())
        target = targets.get(category)
        row = {
            "category": category,
            "labelled": labelled,
            "target_precision": np.nan if target is None else float(target),
            "threshold": np.nan,
            "estimated_precision": np.nan,
            "precision_lower_bound": np.nan,
            "coverage": np.nan,
            "note": "",
        }
        if target is None:
            row["note"] = "no target set"
        elif labelled == 0:
            _check_target(target)
            row["note"] = f"no labelled {category} items to estimate precision from"
        else:
            curve = precision_curve(truth, predicted, confidence, category)
            found = threshold_for(curve, target)
            if found is None:
                row["note"] = f"no threshold reaches {target:.0%} with {labelled} labels"
            else:
                threshold, precision, coverage = found
                low = curve.loc[curve["threshold"] == threshold, "precision_low"].iloc[0]
                row.update(
                    threshold=threshold,
                    estimated_precision=precision,
                    precision_lower_bound=float(low),
                    coverage=coverage,
                    note=f"{coverage:.0%} of {category} items auto-accepted at confidence {threshold:.2f} or more",
                )
        rows.append(row)
    return pd.DataFrame(rows)


def thresholds_from_table(table: pd.DataFrame) -> dict[str, float]:
    """Thresholds for :func:`route` from :func:`abstain_table`: categories with a target only,
    ``inf`` (everything to the queue) where the target cannot be reached."""
    out = {}
    for row in table.itertuples(index=False):
        if not pd.isna(row.target_precision):
            out[row.category] = math.inf if pd.isna(row.threshold) else float(row.threshold)
    return out


def route(
    predicted: Sequence[str],
    confidence: np.ndarray,
    thresholds: Mapping[str, float],
    unsure_below: float = 0.5,
) -> np.ndarray:
    """True where a prediction is auto-accepted, False where it goes to the review queue.

    A category in ``thresholds`` is accepted at confidence >= its threshold (``inf`` or NaN:
    never); other categories when the prediction is not unsure (confidence >= ``unsure_below``).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    needed = np.array(
        [_threshold(thresholds[p]) if p in thresholds else unsure_below for p in predicted], dtype=np.float64
    )
    return confidence >= needed if len(needed) else np.zeros(0, dtype=bool)


def _threshold(value: float | None) -> float:
    return math.inf if value is None or math.isnan(value) else float(value)


def label_issues(
    item_ids: Sequence[str],
    labels: Sequence[str],
    categories: Sequence[str],
    proba_cv: np.ndarray,
    vectors: np.ndarray,
    k: int = 10,
    max_issues: int = 50,
) -> pd.DataFrame:
    """Labelled items whose label is probably a mistake, most suspect first.

    An item is flagged when the out-of-fold model gives its label less than ``MODEL_DOUBT``
    and fewer than ``NEIGHBOUR_DOUBT`` of its ``k`` nearest labelled neighbours (by cosine,
    itself excluded) share it: both sources disagree. ``suggested`` is the other category
    with the highest mean of model probability and neighbour share. ``score`` =
    1 - (model_probability_given + neighbour_agreement) / 2. Items with labels outside
    ``categories`` are skipped. ``proba_cv`` rows and ``vectors`` follow ``labels``.
    """
    columns = [
        "item_id",
        "given",
        "suggested",
        "model_probability_given",
        "model_probability_suggested",
        "neighbour_agreement",
        "score",
    ]
    categories = list(categories)
    index = {c: i for i, c in enumerate(categories)}
    keep = np.array([label in index for label in labels], dtype=bool)
    if keep.sum() < 2:
        return pd.DataFrame(columns=columns)
    ids = np.asarray(item_ids, dtype=object)[keep]
    y = np.array([index[label] for label, kept in zip(labels, keep) if kept])
    proba = np.asarray(proba_cv, dtype=np.float64)[keep]
    x = np.asarray(vectors, dtype=np.float32)[keep]
    n = len(y)
    k = min(k, n - 1)
    idx, _ = top_k_cosine(x, x, k + 1)
    # Drop each item itself; with exact duplicates it may not come first, so drop the extra one instead.
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    neighbours = idx[~own].reshape(n, k)
    share = np.zeros((n, len(categories)))
    np.add.at(share, (np.repeat(np.arange(n), k), y[neighbours].ravel()), 1.0 / k)
    rows = np.arange(n)
    p_given = proba[rows, y]
    agreement = share[rows, y]
    evidence = (proba + share) / 2
    evidence[rows, y] = -np.inf
    suggested = evidence.argmax(axis=1)
    flagged = np.flatnonzero((p_given < MODEL_DOUBT) & (agreement < NEIGHBOUR_DOUBT))
    frame = pd.DataFrame(
        {
            "item_id": ids[flagged],
            "given": [categories[j] for j in y[flagged]],
            "suggested": [categories[j] for j in suggested[flagged]],
            "model_probability_given": p_given[flagged],
            "model_probability_suggested": proba[flagged, suggested[flagged]],
            "neighbour_agreement": agreement[flagged],
            "score": 1 - (p_given[flagged] + agreement[flagged]) / 2,
        },
        columns=columns,
    )
    frame = frame.sort_values(["score", "model_probability_suggested"], ascending=False, kind="stable")
    return frame.head(max_issues).reset_index(drop=True)


def learning_curves(
    categories: Sequence[str],
    prompt_vectors: np.ndarray,
    vectors: np.ndarray,
    labels: Sequence[str],
    sizes: Sequence[int] = (0, 1, 2, 4, 8, 16),
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Per category, F1 on held-out labelled items when it has ``examples`` training examples.

    Each repeat holds out ``HOLDOUT_SHARE`` of every category's labelled items (at least
    one) as the evaluation set. For category c and size k, c's class vector is built from k
    of its remaining items (nested random subsets) plus its prompt, while the other
    categories keep all their remaining items; F1 of c is measured over the whole
    evaluation set (so items wrongly pulled into c count). Sizes run over ``sizes`` up to
    the items available, plus that full count. Uses the prototype classifier (the model
    without its trained head, at its default prior weight): only c's column of scores
    changes, so every point costs one small matrix product. Columns: category, examples,
    f1 (mean over repeats), n_eval (held-out items of the category). Categories without
    labelled items have no rows.
    """
    categories = list(categories)
    index = {c: i for i, c in enumerate(categories)}
    keep = [i for i, label in enumerate(labels) if label in index]
    x = np.asarray(vectors, dtype=np.float32)[keep]
    y = np.array([index[labels[i]] for i in keep], dtype=np.int64)
    prompts = np.asarray(prompt_vectors, dtype=np.float32)
    rng = np.random.default_rng(seed)
    scores: dict[tuple[int, int], list[float]] = {}
    n_eval: dict[int, int] = {}
    for _ in range(repeats):
        held = np.zeros(len(y), dtype=bool)
        train_of: dict[int, np.ndarray] = {}
        for c in range(len(categories)):
            members = rng.permutation(np.flatnonzero(y == c))
            n_held = math.ceil(len(members) * HOLDOUT_SHARE)
            held[members[:n_held]] = True
            train_of[c] = members[n_held:]
            n_eval[c] = n_held
        train = ~held
        sums = np.zeros_like(prompts)
        np.add.at(sums, y[train], x[train])
        class_vectors = _unit(sums + PROMPT_WEIGHT * prompts)
        x_eval, y_eval = x[held], y[held]
        sims = x_eval @ class_vectors.T
        for c in range(len(categories)):
            if n_eval[c] == 0:
                continue
            rival = np.delete(sims, c, axis=1).max(axis=1) if len(categories) > 1 else np.full(len(y_eval), -np.inf)
            members = train_of[c]
            ks = sorted({k for k in sizes if 0 <= k <= len(members)} | {len(members)})
            cumulative = np.vstack([np.zeros((1, x.shape[1]), np.float32), np.cumsum(x[members], axis=0)])
            candidates = _unit(cumulative[ks] + PROMPT_WEIGHT * prompts[c])
            says_c = (x_eval @ candidates.T) > rival[:, None]
            is_c = (y_eval == c)[:, None]
            tp = (says_c & is_c).sum(axis=0)
            fp = (says_c & ~is_c).sum(axis=0)
            fn = is_c.sum() - tp
            for k, f1 in zip(ks, 2 * tp / (2 * tp + fp + fn)):
                scores.setdefault((c, k), []).append(float(f1))
    rows = [
        {"category": categories[c], "examples": k, "f1": float(np.mean(v)), "n_eval": n_eval[c]}
        for (c, k), v in sorted(scores.items())
    ]
    return pd.DataFrame(rows, columns=["category", "examples", "f1", "n_eval"])


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True).clip(min=1e-9)


@dataclass(frozen=True)
class Hint:
    """Where more labels help: a category, how many more examples, and the expected F1 gain."""

    category: str
    current_examples: int
    suggested_more: int
    #: Expected F1 gain from the suggested examples; NaN when the curve is too short to say.
    expected_gain: float
    message: str
    current_f1: float = float("nan")
    expected_f1: float = float("nan")


def guidance(curves: pd.DataFrame, counts: Mapping[str, int], top: int = 3) -> list[Hint]:
    """Up to ``top`` hints on which categories to label next, best first.

    ``counts`` holds each category's labelled examples now (categories not in it are
    ignored). The suggestion takes a category to the next power of two (0 → 1, 5 → 8),
    the steps of the learning curve, but asks for at most ``MAX_SUGGESTED`` examples. Categories whose curve (from :func:`learning_curves`)
    has fewer than two points cannot be measured: they come first, fewest examples first.
    The others are ranked by expected F1 gain per extra example, from a line fitted to their
    last three curve points against log(1 + examples) (slope at least 0), extrapolated from
    the examples in the curve to the current count and on; gains under ``MIN_GAIN`` give no hint.
    A hint's ``current_f1`` is the curve's last point (what the learning-curve chart shows) and
    ``expected_f1`` that plus the expected gain, so the message agrees with the chart.
    """
    unmeasured: list[tuple[int, str]] = []
    measured: list[tuple[float, Hint]] = []
    for category, count in counts.items():
        count = int(count)
        more = _suggested_more(count)
        curve = curves[(curves["category"] == category) & curves["f1"].notna()].sort_values("examples")
        if curve["examples"].nunique() < 2:
            unmeasured.append((count, category))
            continue
        last = curve.tail(3)
        slope, intercept = np.polyfit(np.log1p(last["examples"].to_numpy(float)), last["f1"].to_numpy(float), 1)
        slope = max(float(slope), 0.0)
        now = float(np.clip(intercept + slope * math.log1p(count), 0, 1))
        then = float(np.clip(intercept + slope * math.log1p(count + more), 0, 1))
        if then - now < MIN_GAIN:
            continue
        # The F1 a person can see is the curve's last point: the hint starts there, so it never
        # promises more than the chart beside it supports.
        shown = float(last["f1"].iloc[-1])
        gain = then - now
        measured.append((-gain / more, Hint(category, count, more, gain, "", shown, min(shown + gain, 1.0))))
    hints = [
        Hint(category, count, _suggested_more(count), float("nan"), "")
        for count, category in sorted(unmeasured)
    ]
    hints += [hint for _, hint in sorted(measured, key=lambda pair: pair[0])]
    return [_with_message(hint, rank == 0) for rank, hint in enumerate(hints[:top])]


def _suggested_more(count: int) -> int:
    """Examples to reach the next power of two, capped at ``MAX_SUGGESTED``."""
    return min((1 << max(count, 0).bit_length()) - count, MAX_SUGGESTED)


def _with_message(hint: Hint, first: bool) -> Hint:
    help_ = "would help most" if first else "would help"
    examples = "example" if hint.suggested_more == 1 else "examples"
    text = f"{hint.suggested_more} more {examples} of {hint.category} {help_}"
    if not math.isnan(hint.expected_gain):
        text += f" (F1 {hint.current_f1:.2f} → ~{hint.expected_f1:.2f} expected)."
    elif hint.current_examples == 0:
        text += " (it has no labelled examples yet)."
    else:
        have = "example" if hint.current_examples == 1 else "examples"
        text += f" (it has only {hint.current_examples} labelled {have}, too few to measure)."
    return replace(hint, message=text)
