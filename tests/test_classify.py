"""Category prompts and the prediction table."""

from __future__ import annotations

import json

from coldrec.classify import Prediction, category_prompt, predictions_frame
import numpy as np
from coldrec.estimator import ColdStartClassifier
from tests.conftest import unit_rows


def test_prompt_uses_name_parents_and_description():
    assert category_prompt("Cookware") == "This is a Cookware product."
    text = category_prompt("Cookware", "Pots and pans.", "Home > Kitchen > Cookware")
    assert text == "This is a Cookware product (Home, Kitchen). Pots and pans."


def test_prompt_drops_a_disambiguated_own_name_from_the_path():
    assert category_prompt("Mice (Pets)", None, "Pets > Mice") == "This is a Mice (Pets) product (Pets)."


def test_predictions_frame_has_top3_columns_novel_flag_and_json():
    preds = [
        Prediction(top=[("A", 0.7), ("B", 0.2), ("C", 0.1)], unsure=False),
        Prediction(top=[("B", 0.4), ("A", 0.35)], unsure=True, novel=True),
    ]
    frame = predictions_frame(["x", "y"], preds)
    assert frame.loc[0, "top2"] == "B" and frame.loc[0, "top3_probability"] == 0.1
    assert frame.loc[1, "top3"] is None or frame.isna().loc[1, "top3"]
    assert bool(frame.loc[1, "novel"]) and not bool(frame.loc[0, "novel"])
    assert json.loads(frame.loc[1, "top3_json"])[0] == {"category": "B", "probability": 0.4}


# -- found in review: each once failed or lost data --------------------------------------------
def test_prediction_tables_have_three_ranks_even_with_two_categories():
    rng = np.random.default_rng(0)
    model = ColdStartClassifier().fit(None, categories=["A", "B"], prompt_vectors=unit_rows(rng, 2, 8))
    frame = predictions_frame(["x"], model.explain(unit_rows(rng, 1, 8)))
    assert {"top1", "top2", "top3", "top3_probability"} <= set(frame.columns)
    assert frame.loc[0, "top3"] is None
