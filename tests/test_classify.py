"""Classifier: zero-shot prompts, prototypes with a prior, calibration, head, evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coldrec.classify import (
    DEFAULT_SCALE,
    HEAD_MIN_SHOTS,
    PSEUDO_LABEL_MIN_PROBABILITY,
    PSEUDO_LABEL_WEIGHT,
    category_prompt,
    fit_classifier,
    predictions_frame,
)
from tests.conftest import unit_rows

CATS = ["Cookware", "Footwear", "Toys"]


def _clusters(rng, per_class, dim=16, noise=0.35):
    centres = unit_rows(rng, len(CATS), dim)
    x, y = [], []
    for c, centre in enumerate(centres):
        pts = centre + noise * rng.normal(size=(per_class, dim)).astype(np.float32)
        x.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        y += [CATS[c]] * per_class
    return centres, np.vstack(x).astype(np.float32), y


def test_prompt_uses_name_parents_and_description():
    assert category_prompt("Cookware") == "This is a Cookware product."
    text = category_prompt("Cookware", "Pots and pans.", "Home > Kitchen > Cookware")
    assert text == "This is a Cookware product (Home, Kitchen). Pots and pans."


def test_zero_shot_picks_the_nearest_prompt():
    rng = np.random.default_rng(0)
    centres, x, y = _clusters(rng, 20)
    model = fit_classifier(CATS, centres)
    pred = model.predict_proba(x).argmax(axis=1)
    assert (np.array(CATS)[pred] == np.array(y)).mean() > 0.9
    assert model.scale == DEFAULT_SCALE and not model.scale_fitted and model.head is None


def test_probabilities_are_a_distribution_and_top3_sorted():
    rng = np.random.default_rng(1)
    centres, x, y = _clusters(rng, 5)
    model = fit_classifier(CATS, centres, x, y)
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    for p in model.predict(x):
        probs = [q for _, q in p.top]
        assert probs == sorted(probs, reverse=True) and len(p.top) == 3


def test_examples_override_a_misleading_prompt():
    rng = np.random.default_rng(2)
    centres, x, y = _clusters(rng, 10)
    swapped = centres[[1, 0, 2]]  # the Cookware prompt points at footwear and vice versa
    zero = fit_classifier(CATS, swapped)
    few = fit_classifier(CATS, swapped, x, y)
    truth = np.array([CATS.index(label) for label in y])
    assert (zero.predict_proba(x).argmax(1) == truth).mean() < 0.5
    assert (few.predict_proba(x).argmax(1) == truth).mean() > 0.9


def test_prior_weight_moves_class_vectors_between_prompt_and_prototype():
    rng = np.random.default_rng(3)
    centres, x, y = _clusters(rng, 4)
    prompts = unit_rows(rng, 3, 16)
    weak = fit_classifier(CATS, prompts, x, y, prior_weight=0.0, head=False)
    strong = fit_classifier(CATS, prompts, x, y, prior_weight=1000.0, head=False)
    proto = x[:4].mean(axis=0)
    assert np.dot(weak.class_vectors[0], proto / np.linalg.norm(proto)) > 0.999
    assert np.dot(strong.class_vectors[0], prompts[0]) > 0.99


def test_a_new_label_changes_the_prediction_at_once():
    rng = np.random.default_rng(4)
    centres = unit_rows(rng, 3, 16)
    item = unit_rows(rng, 1, 16)
    before = fit_classifier(CATS, centres).predict(item)[0]
    other = next(c for c in CATS if c != before.category)
    after = fit_classifier(CATS, centres, np.vstack([item, item]), [other, other]).predict(item)[0]
    assert after.category == other


def test_scale_is_fitted_by_leave_one_out_and_sharper_for_clean_data():
    rng = np.random.default_rng(5)
    centres, tight_x, tight_y = _clusters(rng, 10, noise=0.05)
    _, loose_x, loose_y = _clusters(rng, 10, noise=1.5)
    tight = fit_classifier(CATS, centres, tight_x, tight_y)
    loose = fit_classifier(CATS, centres, loose_x, loose_y)
    assert tight.scale_fitted and loose.scale_fitted
    assert tight.scale > loose.scale


def test_calibrated_confidence_tracks_accuracy_on_noisy_data():
    rng = np.random.default_rng(6)
    centres, x, y = _clusters(rng, 60, noise=0.9)
    train = np.arange(len(y)) % 2 == 0
    model = fit_classifier(CATS, centres, x[train], [l for l, t in zip(y, train) if t], head=False)
    proba = model.predict_proba(x[~train])
    truth = np.array([CATS.index(l) for l, t in zip(y, train) if not t])
    accuracy = (proba.argmax(1) == truth).mean()
    confidence = proba.max(1).mean()
    assert abs(confidence - accuracy) < 0.12


def test_head_is_trained_only_with_enough_examples():
    rng = np.random.default_rng(7)
    centres, x, y = _clusters(rng, int(HEAD_MIN_SHOTS))
    assert fit_classifier(CATS, centres, x, y).head is not None
    assert fit_classifier(CATS, centres, x[:3], y[:3]).head is None
    assert fit_classifier(CATS, centres, x, y, head=False).head is None


def test_unknown_labels_are_ignored_and_empty_categories_refused():
    rng = np.random.default_rng(8)
    centres, x, y = _clusters(rng, 3)
    model = fit_classifier(CATS, centres, x, ["Gone"] * len(y))
    assert model.counts.sum() == 0
    with pytest.raises(ValueError):
        fit_classifier([], centres[:0])


def test_unsure_flag_follows_the_threshold_and_evidence_is_nearest_labelled():
    rng = np.random.default_rng(9)
    centres, x, y = _clusters(rng, 6)
    ids = [f"i{n}" for n in range(len(y))]
    model = fit_classifier(CATS, centres, x, y, ids)
    p = model.predict(x[:1], unsure_below=1.01)[0]
    assert p.unsure
    assert not model.predict(x[:1], unsure_below=0.0)[0].unsure
    assert p.evidence[0][0] == "i0" and p.evidence[0][1] == y[0] and p.evidence[0][2] == pytest.approx(1.0, abs=1e-5)
    assert [e[2] for e in p.evidence] == sorted((e[2] for e in p.evidence), reverse=True)


def test_predictions_frame_has_top3_columns_and_json():
    rng = np.random.default_rng(10)
    centres, x, y = _clusters(rng, 2)
    preds = fit_classifier(CATS, centres).predict(x[:2])
    frame = predictions_frame(["a", "b"], preds)
    assert list(frame.columns[:4]) == ["item_id", "category", "probability", "unsure"]
    assert {"top1", "top2", "top3", "top3_probability"} <= set(frame.columns)
    assert json.loads(frame.loc[0, "top3_json"])[0]["category"] == frame.loc[0, "top1"]


def test_self_training_is_off_by_default():
    rng = np.random.default_rng(11)
    centres, x, y = _clusters(rng, 8)
    _, unlabelled, _ = _clusters(rng, 30)
    plain = fit_classifier(CATS, centres, x, y)
    assert plain.pseudo_labelled == 0
    none = fit_classifier(CATS, centres, x, y, unlabelled_vectors=None)
    empty = fit_classifier(CATS, centres, x, y, unlabelled_vectors=np.zeros((0, 16), dtype=np.float32))
    for other in (none, empty):
        np.testing.assert_array_equal(other.predict_proba(unlabelled), plain.predict_proba(unlabelled))
        assert other.pseudo_labelled == 0 and other.scale == plain.scale


def test_self_training_uses_confident_unlabelled_items_and_keeps_accuracy():
    rng = np.random.default_rng(12)
    centres, x, y = _clusters(rng, 60, noise=0.25)  # clearly separable clusters
    truth = np.array([CATS.index(label) for label in y])
    prompts = centres + 0.6 * unit_rows(rng, 3, 16)  # weak prompts: room to improve
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    shots = [0, 60, 120]  # one labelled example per category
    pool = np.setdiff1d(np.arange(len(y)), shots)
    off = fit_classifier(CATS, prompts, x[shots], [y[i] for i in shots])
    on = fit_classifier(CATS, prompts, x[shots], [y[i] for i in shots], unlabelled_vectors=x[pool],
                        pseudo_min_probability=0.6)
    assert on.pseudo_labelled > len(pool) // 2 and off.pseudo_labelled == 0
    assert (on.predict_proba(x).argmax(1) == truth).mean() >= (off.predict_proba(x).argmax(1) == truth).mean()
    # Pseudo-labels refine prototypes only: they are neither evidence nor counted as labels.
    assert len(on.example_vectors) == 3 and on.counts.tolist() == [1, 1, 1]
    cos_on = np.einsum("ij,ij->i", on.class_vectors, centres)
    cos_off = np.einsum("ij,ij->i", off.class_vectors, centres)
    assert (cos_on > cos_off).all()  # prototypes move towards the true cluster centres


def test_self_training_threshold_controls_how_many_items_are_used():
    rng = np.random.default_rng(13)
    centres, x, _ = _clusters(rng, 20, noise=0.6)
    loose = fit_classifier(CATS, centres, unlabelled_vectors=x, pseudo_min_probability=0.4)
    strict = fit_classifier(CATS, centres, unlabelled_vectors=x, pseudo_min_probability=0.99)
    assert loose.pseudo_labelled > strict.pseudo_labelled
    assert PSEUDO_LABEL_WEIGHT < 1.0 and 0.5 < PSEUDO_LABEL_MIN_PROBABILITY < 1.0
