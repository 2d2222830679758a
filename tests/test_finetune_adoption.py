"""A fine-tuned version is adopted only when a paired test on the held-out labels says it is
better (issue 22, item 5): planted versions, one label better, equal and worse, are refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from coldrec import finetune
from coldrec.ingest import item_text
from coldrec.workspace import Workspace

from tests.test_finetune import labelled_ws, word_model_dir  # noqa: F401 - fixtures


def test_paired_comparison_counts_only_discordant_labels_and_is_one_sided():
    right = np.ones(300, dtype=bool)
    one_more = right.copy()
    before = right.copy()
    before[0] = False  # the old model misses one label the new one gets: +0.3 points on 300
    noise = finetune.paired_comparison(before, one_more)
    assert (noise["gained"], noise["lost"], noise["p_value"], noise["better"]) == (1, 0, 0.5, False)
    low, high = noise["interval"]
    assert low < 0 < high  # the interval says "could be no better"
    five = np.zeros(20, bool), np.r_[np.ones(5, bool), np.zeros(15, bool)]
    clear = finetune.paired_comparison(*five)
    assert (clear["gained"], clear["lost"], clear["p_value"], clear["better"]) == (5, 0, 0.0312, True)
    assert clear["interval"][0] > 0
    mixed = finetune.paired_comparison(np.r_[np.zeros(6, bool), True], np.r_[np.ones(6, bool), False])
    assert (mixed["gained"], mixed["lost"], mixed["p_value"], mixed["better"]) == (6, 1, 0.0625, False)
    worse = finetune.paired_comparison(five[1], five[0])
    assert worse["p_value"] == 1.0 and not worse["better"]
    same = finetune.paired_comparison(right, right)
    assert same["p_value"] == 1.0 and not same["better"] and same["difference"] == 0.0


class _Planted:
    """The base encoder, except for the texts in ``swap`` (given their own vectors): a version
    whose held-out answers the test decides."""

    def __init__(self, base, swap: dict[str, np.ndarray], name: str) -> None:
        self.base, self.swap, self.name = base, swap, name
        self.dim, self.device, self.backend = base.dim, base.device, "torch"

    def encode(self, texts, progress=None):  # noqa: ANN001, ANN201
        out = self.base.encode(list(texts), progress=progress)
        for i, text in enumerate(texts):
            if text in self.swap:
                out[i] = self.swap[text]
        return out


def _held_out(ws: Workspace):
    """The labelled texts, their labels, the held-out rows, whether the model gets each held-out
    label right, and each category's mean item vector (where a text is answered as that category)."""
    labels = ws.store.labels()
    texts = [item_text(t, d) for t, d in zip(labels["title"], labels["description"])]
    names = labels["category"].tolist()
    train, held = finetune.holdout_split(names)
    right = finetune.held_out_correct(ws, ws.encoder, texts, names, train, held)
    vectors = ws.encoder.encode(texts)
    means = {}
    for c in sorted(set(names)):
        mean = vectors[[i for i, n in enumerate(names) if n == c]].mean(axis=0)
        means[c] = mean / np.linalg.norm(mean)
    return texts, names, held, right, means


def _plant(monkeypatch, ws: Workspace, spoil_base: dict[str, np.ndarray], spoil_new: dict[str, np.ndarray]) -> str:
    """Training replaced by a planted version: the base model answers with ``spoil_base``'s
    vectors for those texts (a copy of the real encoder under its own cache name), the "fine-tuned"
    one with ``spoil_new``'s. Returns the base model's name."""
    true = ws.encoder
    base = copy.copy(true)
    base.name = f"{true.name}-planted"
    base.encode = _Planted(true, spoil_base, base.name).encode
    ws.models.use_encoder(base)
    monkeypatch.setattr(finetune, "fit", lambda encoder, *a, **k: finetune.FitResult(
        "contrastive", copy.deepcopy(encoder._model), 1, 1, 0.0, False))
    monkeypatch.setattr(finetune, "tuned_encoder", lambda b, result, name: _Planted(true, spoil_new, name))
    return base.name


def _wrong(texts, names, rows, prompts) -> dict[str, np.ndarray]:
    """Those texts' vectors moved onto another category's mean item: answered wrong."""
    return {texts[i]: prompts[next(c for c in prompts if c != names[i])] for i in rows}


@pytest.mark.parametrize("kind", ["one label better", "equal", "worse"])
def test_a_planted_version_that_is_not_shown_better_is_refused(labelled_ws, monkeypatch, kind):  # noqa: F811
    ws = labelled_ws
    texts, names, held, right, prompts = _held_out(ws)
    assert right.all(), "the planted answers assume the tiny model gets every held-out label right"
    spoil_base = _wrong(texts, names, held[:1], prompts) if kind == "one label better" else {}
    spoil_new = _wrong(texts, names, held[:3], prompts) if kind == "worse" else {}
    base_name = _plant(monkeypatch, ws, spoil_base, spoil_new)
    card = finetune.improve_model(ws)
    assert (card["gained"], card["lost"]) == {"one label better": (1, 0), "equal": (0, 0), "worse": (0, 3)}[kind]
    if kind == "one label better":  # what used to be adopted: more held-out labels right
        assert card["accuracy_after"] > card["accuracy_before"]
    assert card["better"] is False and card["p_value"] >= 0.05
    assert ws.encoder.name == base_name and not ws.store.get_meta("model_version")
    text = finetune.comparison_text(card)
    assert f"{card['gained']} held-out labels right only with the new model" in text and "95% interval" in text


def test_a_planted_version_clearly_better_is_adopted(labelled_ws, monkeypatch):  # noqa: F811
    ws = labelled_ws
    texts, names, held, right, prompts = _held_out(ws)
    assert right.all() and len(held) >= 6
    _plant(monkeypatch, ws, _wrong(texts, names, held[:6], prompts), {})
    card = finetune.improve_model(ws)
    assert (card["gained"], card["lost"], card["p_value"], card["better"]) == (6, 0, 0.0156, True)
    assert ws.store.get_meta("model_version") == card["name"]


def test_progress_totals_are_fixed_per_stage(labelled_ws):  # noqa: F811
    seen: dict[str, set[int]] = {}
    finetune.improve_model(labelled_ws, epochs=2, progress=lambda phase, done, total: seen.setdefault(phase, set()).add(total))
    assert seen["training"] == {4}  # 48 training labels, batches of 32, 2 passes
    assert len(seen["checking on held-out labels"]) == 1 and seen["checking on held-out labels"] != {0}
