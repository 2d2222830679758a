"""Quality: out-of-fold probabilities, abstain thresholds, routing, label checks, learning curves, hints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coldrec.quality import (
    Hint,
    abstain_table,
    cross_validated_proba,
    guidance,
    label_issues,
    learning_curves,
    precision_curve,
    route,
    threshold_for,
    thresholds_from_table,
    wilson_lower,
)
from tests.conftest import unit_rows

CATS = ["Cookware", "Footwear", "Toys"]


def _clusters(seed: int, per_class: int, dim: int = 16, noise: float = 0.2):
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng, len(CATS), dim)
    x = np.repeat(centres, per_class, axis=0) + noise * rng.normal(size=(len(CATS) * per_class, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return centres, x, [c for c in CATS for _ in range(per_class)]


def _known_precision():
    """Predictions of "A": 100 at confidence 0.81-0.99 with 95 right (the 5 wrong ones spread out),
    100 at 0.30-0.79 with 50 right (the 50 most confident ones wrong), and 20 "A" items predicted "B"."""
    high = np.linspace(0.81, 0.99, 100)
    high_truth = np.array(["A"] * 100, dtype=object)
    high_truth[[10, 30, 50, 70, 90]] = "B"
    low = np.linspace(0.30, 0.79, 100)
    low_truth = np.array(["A"] * 50 + ["B"] * 50, dtype=object)
    truth = [*high_truth, *low_truth, *["A"] * 20]
    predicted = ["A"] * 200 + ["B"] * 20
    confidence = np.concatenate([high, low, np.full(20, 0.6)])
    return truth, predicted, confidence


def test_precision_curve_on_data_with_known_precision():
    curve = precision_curve(*_known_precision(), "A")
    assert curve["threshold"].tolist()[0] == 0.0 and curve["threshold"].is_monotonic_increasing
    assert len(curve) == 201  # 0 and the 200 distinct confidences of "A" predictions
    at = curve.set_index("threshold")
    assert at.loc[0.81, ["predicted", "correct"]].tolist() == [100, 95]
    assert at.loc[0.81, "precision"] == pytest.approx(0.95)
    assert at.loc[0.81, "coverage"] == pytest.approx(95 / 165)
    assert at.loc[0.0, ["predicted", "correct"]].tolist() == [200, 145]
    assert at.loc[0.0, "precision"] == pytest.approx(0.725)
    assert at.loc[0.0, "coverage"] == pytest.approx(145 / 165)
    assert at.loc[0.99, ["predicted", "correct", "precision"]].tolist() == [1, 1, 1.0]


def test_threshold_for_uses_the_wilson_lower_bound():
    curve = precision_curve(*_known_precision(), "A")
    # Lower bounds: 95/100 -> 0.914; one more (wrong) item, 95/101 -> 0.903.
    assert float(wilson_lower(95, 100)) == pytest.approx(0.9141, abs=1e-4)
    assert float(wilson_lower(95, 101)) == pytest.approx(0.9028, abs=1e-4)
    threshold, precision, coverage = threshold_for(curve, 0.91)
    assert threshold == 0.81 and precision == pytest.approx(0.95) and coverage == pytest.approx(95 / 165)
    assert threshold_for(curve, 0.90)[0] < 0.81  # one wrong low-confidence item still fits under 90%
    # The longest run of right answers at the top is 9: too few to claim 95%.
    assert threshold_for(curve, 0.95) is None
    with pytest.raises(ValueError):
        threshold_for(curve, 95)


def test_abstain_table_notes_targets_reached_unreachable_and_missing():
    truth, predicted, confidence = _known_precision()
    # Probabilities over ["A", "B"] whose argmax and max reproduce the known predictions.
    top = np.array([0 if p == "A" else 1 for p in predicted])
    proba = np.zeros((len(top), 2))
    proba[np.arange(len(top)), top] = confidence
    proba[np.arange(len(top)), 1 - top] = 1 - confidence
    proba[200:, 1] = 0.6  # the 20 missed "A" items: 0.6 for "B"
    table = abstain_table(["A", "B", "C"], truth, proba, {"A": 0.91, "B": 0.99})
    assert table.columns.tolist() == [
        "category",
        "labelled",
        "target_precision",
        "threshold",
        "estimated_precision",
        "precision_lower_bound",
        "coverage",
        "note",
    ]
    a, b, c = (row for _, row in table.iterrows())
    assert (a["labelled"], a["threshold"], a["estimated_precision"]) == (165, 0.81, pytest.approx(0.95))
    assert a["precision_lower_bound"] == pytest.approx(0.9141, abs=1e-4)
    assert a["note"] == "58% of A items auto-accepted at confidence 0.81 or more"
    assert b["labelled"] == 55 and math.isnan(b["threshold"])
    assert b["note"] == "no threshold reaches 99% with 55 labels"
    assert c["note"] == "no target set" and math.isnan(c["target_precision"])
    assert thresholds_from_table(table) == {"A": 0.81, "B": math.inf}


def test_few_labels_cannot_reach_a_high_target():
    curve = precision_curve(["A"] * 5, ["A"] * 5, np.full(5, 0.99), "A")
    assert curve["precision"].tolist() == [1.0, 1.0]
    assert threshold_for(curve, 0.95) is None  # 5 of 5 right: lower bound 0.75
    assert threshold_for(curve, 0.7) == (0.0, 1.0, 1.0)


def test_route_accepts_above_thresholds_and_otherwise_when_sure():
    predicted = ["A", "A", "B", "C", "C", "D"]
    confidence = np.array([0.95, 0.85, 0.99, 0.6, 0.4, 0.99])
    accepted = route(predicted, confidence, {"A": 0.9, "B": math.inf, "D": float("nan")})
    assert accepted.tolist() == [True, False, False, True, False, False]
    assert route(predicted, confidence, {}, unsure_below=0.7).tolist() == [True, True, True, False, False, True]


def test_cross_validated_proba_is_a_distribution_and_does_not_see_the_own_label():
    centres, x, y = _clusters(0, 12)
    y[0] = "Toys"  # a Cookware item mislabelled as Toys
    proba = cross_validated_proba(CATS, centres, x, y, folds=4)
    assert proba.shape == (36, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert proba[0, CATS.index("Toys")] < 0.05 and proba[0, CATS.index("Cookware")] > 0.9
    truth = np.repeat(np.arange(3), 12)
    assert (proba.argmax(axis=1) == truth).all()
    np.testing.assert_array_equal(proba, cross_validated_proba(CATS, centres, x, y, folds=4))


def test_cross_validated_proba_handles_a_label_with_one_example():
    centres, x, y = _clusters(1, 5)
    proba = cross_validated_proba(
        [*CATS, "Garden"], np.vstack([centres, unit_rows(np.random.default_rng(1), 1, 16)]), x[:11], [*y[:10], "Garden"]
    )
    assert proba.shape == (11, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_label_issues_finds_planted_flips_and_not_clean_items():
    centres, x, y = _clusters(2, 20, noise=0.1)
    ids = [f"i{n}" for n in range(len(y))]
    flips = {3: "Footwear", 25: "Toys", 47: "Cookware"}  # true: Cookware, Footwear, Toys
    labels = [flips.get(n, label) for n, label in enumerate(y)]
    proba = cross_validated_proba(CATS, centres, x, labels)
    issues = label_issues(ids, labels, CATS, proba, x, k=10)
    assert sorted(issues["item_id"]) == ["i25", "i3", "i47"]
    found = issues.set_index("item_id")
    assert found.loc["i3", ["given", "suggested"]].tolist() == ["Footwear", "Cookware"]
    assert found.loc["i25", ["given", "suggested"]].tolist() == ["Toys", "Footwear"]
    assert found.loc["i47", ["given", "suggested"]].tolist() == ["Cookware", "Toys"]
    assert (found["neighbour_agreement"] == 0.0).all()
    assert (found["score"] > 0.9).all() and issues["score"].is_monotonic_decreasing
    assert label_issues(ids, y, CATS, cross_validated_proba(CATS, centres, x, y), x).empty


def test_learning_curves_rise_with_examples_on_separable_data():
    centres, x, y = _clusters(3, 20)
    misleading = centres[[1, 2, 0]]  # each prompt points at another category's items
    curves = learning_curves(CATS, misleading, x, y, sizes=(0, 1, 2, 4, 8), repeats=3)
    assert curves.columns.tolist() == ["category", "examples", "f1", "n_eval"]
    # 20 labels: 7 held out, 13 left to train on (the full count is the last point).
    assert curves.groupby("category")["examples"].apply(list).to_dict() == {c: [0, 1, 2, 4, 8, 13] for c in CATS}
    assert (curves["n_eval"] == 7).all()
    mean = curves.groupby("examples")["f1"].mean()
    assert mean.is_monotonic_increasing
    assert mean[0] < 0.25 and mean[1] > mean[0] + 0.4 and mean[13] == 1.0


def test_learning_curves_skip_categories_without_labels():
    centres, x, y = _clusters(4, 3)
    curves = learning_curves([*CATS, "Garden"], np.vstack([centres, centres[:1]]), x, y)
    assert set(curves["category"]) == set(CATS)
    assert curves.groupby("category")["examples"].apply(list).to_dict() == {c: [0, 1, 2] for c in CATS}


def _line(category: str, start: float, per_doubling: float) -> list[dict]:
    """Curve points on F1 = start + per_doubling * log2(1 + examples)."""
    return [
        {"category": category, "examples": k, "f1": start + per_doubling * math.log2(1 + k), "n_eval": 5}
        for k in (0, 1, 3)
    ]


def test_guidance_puts_unmeasured_first_then_gain_per_label():
    curves = pd.DataFrame(
        [
            *_line("Cookware", 0.2, 0.1),
            *_line("Toys", 0.7, 0.02),
            *_line("Footwear", 1.0, 0.0),  # already perfect: no hint
            {"category": "Garden", "examples": 0, "f1": 0.5, "n_eval": 1},  # one point: unmeasured
        ]
    )
    counts = {"Cookware": 3, "Toys": 3, "Footwear": 12, "Garden": 1, "Books": 0}
    hints = guidance(curves, counts, top=5)
    assert [h.category for h in hints] == ["Books", "Garden", "Cookware", "Toys"]
    assert [h.suggested_more for h in hints] == [1, 1, 1, 1]
    assert hints[0].message == "1 more example of Books would help most (it has no labelled examples yet)."
    assert (
        hints[1].message == "1 more example of Garden would help (it has only 1 labelled example, too few to measure)."
    )
    assert hints[2].message == "1 more example of Cookware would help (F1 0.40 → ~0.43 expected)."
    assert hints[2].expected_gain == pytest.approx(0.1 * (math.log2(5) - 2))
    assert (hints[2].current_f1, hints[2].expected_f1) == (pytest.approx(0.4), pytest.approx(0.2 + 0.1 * math.log2(5)))
    assert math.isnan(hints[0].expected_gain) and isinstance(hints[0], Hint)
    assert [h.category for h in guidance(curves, counts, top=2)] == ["Books", "Garden"]


def test_guidance_ranks_by_gain_and_caps_the_suggestion():
    curves = pd.DataFrame([*_line("Cookware", 0.2, 0.1), *_line("Toys", 0.1, 0.05)])
    hints = guidance(curves, {"Cookware": 5, "Toys": 100})
    assert [(h.category, h.suggested_more) for h in hints] == [("Cookware", 3), ("Toys", 10)]
    # The curve ends at 3 examples with F1 0.40 (the chart's last point); the gain of 3 more
    # beyond the 5 labelled is added to that, not to a value the chart does not show.
    gain = 0.1 * (math.log2(9) - math.log2(6))
    assert hints[0].message == f"3 more examples of Cookware would help most (F1 0.40 → ~{0.4 + gain:.2f} expected)."
