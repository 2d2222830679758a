"""Fine-tuning with the tiny random BERT: training, versions on disk, switching, cancelling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coldrec import finetune, versions
from coldrec.config import Settings
from coldrec.encoder import embed_texts, load_encoder
from coldrec.errors import NotReadyError
from coldrec.store import Store
from coldrec.workspace import Workspace

_KINDS = {
    "Cookware": ["pan", "pot", "skillet", "wok", "kettle", "toaster", "blender", "mixer"],
    "Footwear": ["shoe", "boot", "sneaker", "sandal", "socks", "leather", "wool", "linen"],
    "Pet Supplies": ["dog", "cat", "pet", "food", "toy", "ball", "organic", "honey"],
}


@pytest.fixture(scope="module")
def word_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-dim random BERT whose tokenizer knows the test words (transformers 5 takes
    the vocabulary as ``vocab=``; conftest's ``vocab_file=`` is ignored, so there every word is
    [UNK] and every text of one length has the same vector, which cannot show training)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from tests.conftest import _WORDS

    folder = tmp_path_factory.mktemp("word-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(_WORDS), *[str(i) for i in range(20)]]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def labelled_ws(tmp_path: Path, word_model_dir: Path):
    """A workspace with 3 categories x 20 labelled items (ready to fine-tune) and the tiny model."""
    rng = np.random.default_rng(0)
    rows = []
    for category, words in _KINDS.items():
        for i in range(20):
            picked = rng.choice(words, size=3, replace=False)
            rows.append((f"{category[:2]}{i}", " ".join(picked) + " set", category))
    catalog = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    catalog["description"] = ""
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    pd.DataFrame({"name": list(_KINDS), "description": ["pots and pans", "shoes and boots", "dog and cat food"]}).to_csv(
        tmp_path / "categories.csv", index=False
    )
    settings = Settings(db_path=tmp_path / "ws.duckdb", model=str(word_model_dir), device="cpu")
    ws = Workspace(Store(settings.db_path), load_encoder(str(word_model_dir), device="cpu", batch_size=8), settings)
    ws.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    yield ws
    ws.close()


def _item_vectors(ws: Workspace) -> np.ndarray:
    items = ws.store.items().sort_values("item_id")
    return ws.vectors.embed_items(items)


def test_contrastive_loss_is_lower_when_labels_match_the_geometry() -> None:
    import torch

    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    vectors = torch.nn.functional.normalize(centres[labels] + 0.05 * torch.randn(6, 16), dim=1)
    matched = finetune.contrastive_loss(vectors, labels)
    shuffled = finetune.contrastive_loss(vectors, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert matched < shuffled
    # No row with a positive: a zero loss that still has a gradient path.
    assert float(finetune.contrastive_loss(vectors[:3], torch.tensor([0, 1, 2]))) == 0.0


@pytest.mark.parametrize("method", ["contrastive", "lora"])
def test_fit_trains_a_copy_and_moves_same_category_items_together(labelled_ws: Workspace, method: str) -> None:
    import torch

    base = labelled_ws.encoder
    labels = labelled_ws.store.labels()
    texts, cats = labels["title"].tolist(), labels["category"].tolist()
    before_weights = [p.detach().clone() for p in base._model.parameters()]
    steps = []
    result = finetune.fit(base, texts, cats, method=method, epochs=15, progress=lambda phase, d, t: steps.append((d, t)))
    assert result.steps == result.planned_steps == 15 * 2 and not result.capped
    assert steps[-1] == (30, 30)
    assert all(torch.equal(a, b) for a, b in zip(before_weights, base._model.parameters())), "base model changed"

    def separation(encoder) -> float:
        v = encoder.encode(texts)
        same = np.array(cats)[:, None] == np.array(cats)[None, :]
        sim = v @ v.T
        return float(sim[same].mean() - sim[~same].mean())

    tuned = finetune.tuned_encoder(base, result, "tuned")
    assert separation(tuned) > separation(base)  # same-category pairs closer than before, relative to others


def test_fit_stops_at_the_time_cap_and_on_cancel(labelled_ws: Workspace) -> None:
    labels = labelled_ws.store.labels()
    capped = finetune.fit(labelled_ws.encoder, labels["title"].tolist(), labels["category"].tolist(), epochs=50,
                          max_minutes=1e-9)
    assert capped.capped and capped.steps == 0
    with pytest.raises(finetune.Cancelled):
        finetune.fit(labelled_ws.encoder, labels["title"].tolist(), labels["category"].tolist(), cancelled=lambda: True)


def test_holdout_split_keeps_small_categories_for_training() -> None:
    labels = ["a"] * 10 + ["b"] * 4 + ["c"] * 5
    train, held = finetune.holdout_split(labels)
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(labels)))
    held_labels = [labels[i] for i in held]
    assert held_labels.count("a") == 2 and held_labels.count("b") == 0 and held_labels.count("c") == 1


def test_readiness_says_why_not_on_few_labels(workspace: Workspace) -> None:
    state = finetune.readiness(workspace)  # 3 categories x 4 labels
    assert not state["ready"] and "average 4.0 labels" in state["reason"]
    with pytest.raises(NotReadyError, match="not offered yet"):
        finetune.improve_model(workspace)


@pytest.mark.parametrize("method", ["contrastive", "lora"])
def test_version_is_saved_with_its_card_loads_and_switching_back_uses_the_cache(labelled_ws: Workspace, method: str) -> None:
    ws = labelled_ws
    base_name = ws.encoder.name
    base_vectors = _item_vectors(ws)
    phases = set()
    card = finetune.improve_model(ws, method=method, epochs=4, progress=lambda phase, d, t: phases.add(phase))
    folder = versions.models_dir(ws.settings.db_path) / card["name"]
    on_disk = json.loads((folder / "card.json").read_text())
    assert on_disk["method"] == method and on_disk["base_model"] == base_name
    assert on_disk["labels_used"] == 48 and on_disk["held_out"] == 12  # 20% of 20 per category
    assert on_disk["weights"] == ("adapter" if method == "lora" else "full")
    assert (folder / "adapter_config.json").is_file() == (method == "lora")
    assert on_disk["date"].startswith("20") and 0 <= on_disk["accuracy_before"] <= 1 and 0 <= on_disk["accuracy_after"] <= 1
    # Adopted only on the paired test (exact McNemar on the discordant held-out labels, one-sided).
    assert on_disk["better"] == (on_disk["gained"] > on_disk["lost"] and on_disk["p_value"] < finetune.ADOPT_P_VALUE)
    assert "training" in phases

    # Switch to the version explicitly (whatever the held-out check said): new name, new vectors.
    finetune.switch_version(ws, card["name"])
    assert ws.encoder.name == f"{base_name}+{card['name']}"
    assert ws.store.get_meta("model_version") == card["name"]
    tuned_vectors = _item_vectors(ws)
    assert not np.allclose(tuned_vectors, base_vectors, atol=1e-4)
    # The saved version reproduces the network it was trained into.
    loaded = versions.load_version(folder, device="cpu")
    texts = ws.store.items()["title"].tolist()[:5]
    assert np.allclose(loaded.encode(texts), ws.encoder.encode(texts), atol=1e-4)

    # Back to the base model: the cached vectors come back and nothing is embedded again.
    cached = ws.store.stats()["cached_vectors"]
    finetune.switch_version(ws, None)
    calls = []
    original = ws.encoder.encode
    ws.encoder.encode = lambda batch, progress=None: calls.append(len(batch)) or original(batch, progress)  # type: ignore[method-assign]
    assert ws.encoder.name == base_name and not ws.store.get_meta("model_version")
    assert np.allclose(_item_vectors(ws), base_vectors)
    ws.predictor.classifier()
    assert calls == [] and ws.store.stats()["cached_vectors"] == cached


def test_a_better_version_is_activated_and_reopening_the_workspace_loads_it(labelled_ws: Workspace) -> None:
    ws = labelled_ws
    card = finetune.improve_model(ws, epochs=8)
    if not card["better"]:  # the random tiny model may not improve; then nothing switched
        assert not ws.store.get_meta("model_version") and "+ft-" not in ws.encoder.name
        finetune.switch_version(ws, card["name"])
    name = ws.store.get_meta("model_version")
    items = ws.store.items()
    assert ws.vectors.embedding_coverage()["embedded"] == len(items) or not card["better"]
    reopened = versions.active_encoder(ws.store, ws.settings)
    assert reopened.name == ws.encoder.name and reopened.name.endswith(f"+{name}")
    # A version trained from another base model is not applied to this configuration.
    other = Settings(db_path=ws.settings.db_path, model="some/other-model", device="cpu")
    with pytest.raises(Exception):  # the other model itself cannot load offline; the version is ignored
        versions.active_encoder(ws.store, other)


def test_a_cancelled_job_leaves_the_active_model_untouched(labelled_ws: Workspace) -> None:
    from coldrec.jobs import JobRunner

    ws = labelled_ws
    name_before = ws.encoder.name
    runner = JobRunner()
    started = []

    def task(job):  # noqa: ANN001, ANN202
        def progress(phase: str, done: int, total: int) -> None:
            started.append(done)
            if done == 2:
                runner.cancel()
            job.progress(phase, done, total)

        return finetune.improve_model(ws, epochs=50, progress=progress, cancelled=job.cancelled)

    runner.start("fine-tune", task, cancelled_errors=(finetune.Cancelled,))
    status = runner.wait(timeout=120)
    assert status.state == "cancelled" and 2 in started
    assert ws.encoder.name == name_before and not ws.store.get_meta("model_version")
    assert versions.list_versions(versions.models_dir(ws.settings.db_path)) == []


def test_evaluate_coldrec_finetune_reports_fit_time(word_model_dir: Path) -> None:
    from coldrec.evaluate import LabelledData, run_evaluation

    rng = np.random.default_rng(1)
    texts, labels = [], []
    for c, words in enumerate(_KINDS.values()):
        for i in range(12):
            texts.append(" ".join(rng.choice(words, size=3, replace=False)) + f" {i}")
            labels.append(c)
    data = LabelledData(texts, [t.lower() for t in texts], np.array(labels), list(_KINDS), "tiny")
    doc = run_evaluation(data, load_encoder(str(word_model_dir), device="cpu"), shots=[4], seeds=1, test_size=12, methods=["coldrec", "coldrec+finetune"],
                         finetune_options={"epochs": 2})
    rows = {r["method"]: r for r in doc["results"]}
    assert rows["coldrec+finetune"]["fit_s"] > 0 and rows["coldrec+finetune"]["train_steps"] == 2
    assert "fit_s" not in rows["coldrec"] and doc["finetune"]["epochs"] == 2
    assert 0 <= rows["coldrec+finetune"]["accuracy"] <= 1


def test_embed_texts_keys_the_cache_by_version_name(labelled_ws: Workspace) -> None:
    ws = labelled_ws
    labels = ws.store.labels()
    result = finetune.fit(ws.encoder, labels["title"].tolist(), labels["category"].tolist(), epochs=1)
    tuned = finetune.tuned_encoder(ws.encoder, result, ws.encoder.name + "+ft-test")
    embed_texts(tuned, ["steel pan"], cache=ws.store)
    from coldrec.encoder import text_hash

    assert ws.store.get_embeddings(tuned.name, [text_hash("steel pan")])
    assert not ws.store.get_embeddings(ws.encoder.name, [text_hash("steel pan")])


@pytest.fixture
def finetune_app(monkeypatch, tmp_path: Path, word_model_dir: Path, labelled_ws: Workspace):
    """The dashboard pointed at the labelled workspace's database (closed here first)."""
    import streamlit as st

    labelled_ws.close()
    monkeypatch.setenv("COLDREC_DB", str(labelled_ws.settings.db_path))
    monkeypatch.setenv("COLDREC_MODEL", str(word_model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    st.cache_resource.clear()
    yield labelled_ws.settings
    st.cache_resource.clear()


def _categories_page():  # noqa: ANN202 - AppTest
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT

    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=120)
    at.run()
    return at.switch_page("pages/categories.py").run()


def test_page_says_why_fine_tuning_is_not_offered_on_few_labels(app_env) -> None:
    at = _categories_page()
    assert not at.exception, at.exception
    assert "Improve the model on your labels" in [h.value for h in at.subheader]
    assert any("Not offered yet" in i.value and "average 4" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Improve the model"]


def test_background_job_survives_a_page_rerun_and_its_version_can_be_switched(finetune_app) -> None:
    from coldrec import ui

    at = _categories_page()
    assert not at.exception, at.exception
    next(b for b in at.button if b.label == "Improve the model").click().run()
    assert not at.exception, at.exception
    runner = ui.background_jobs()  # the process-wide runner the page started the job on
    assert runner.status() is not None and runner.status().title == "Improve the model on your labels"
    again = _categories_page()  # a fresh session (a page reload) sees the same job
    assert not again.exception, again.exception
    status = runner.wait(timeout=300)
    assert status.state == "done", status.error
    again.run()
    card = status.result
    import re

    shown = [re.sub(r"\\(.)", r"\1", s.value) for s in again.success]  # Markdown escapes removed
    assert any(card["name"] in text and "held-out accuracy" in text for text in shown), shown
    # The paired test behind the verdict: its counts, p-value and interval (issue 22).
    captions = [re.sub(r"\\(.)", r"\1", c.value) for c in again.caption]
    assert any("right only with the new model" in c and "McNemar" in c and "95% interval" in c for c in captions), captions
    versions = again.dataframe[-1].value
    assert card["name"] in versions["name"].tolist()
    # Switch to the new version (or back to the base when it became active) in one click.
    active = bool(card["better"])
    again.selectbox[-1].set_value("base model" if active else card["name"]).run()
    next(b for b in again.button if b.label == "Switch model").click().run()
    assert not again.exception, again.exception
    ws = ui._open_workspace()  # the app holds the database: read it through the app's workspace
    assert (ws.store.get_meta("model_version") or "") == ("" if active else card["name"])
    assert ws.encoder.name.endswith("" if active else f"+{card['name']}") and ("+ft-" in ws.encoder.name) != active


def test_cli_finetune_refuses_few_labels_then_trains_lists_and_switches(
    monkeypatch, capsys, tmp_path: Path, word_model_dir: Path, labelled_ws: Workspace, small_catalog
) -> None:
    from coldrec.cli import main

    labelled_ws.close()
    monkeypatch.setenv("COLDREC_MODEL", str(word_model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    catalog, categories = small_catalog  # 3 categories x 4 labels: not offered
    catalog.to_csv(tmp_path / "few.csv", index=False)
    categories.to_csv(tmp_path / "few-categories.csv", index=False)
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "few.duckdb"))
    assert main(["init", "--catalog", str(tmp_path / "few.csv"), "--categories", str(tmp_path / "few-categories.csv")]) == 0
    assert main(["finetune"]) == 2
    assert "not offered yet" in capsys.readouterr().err

    monkeypatch.setenv("COLDREC_DB", str(labelled_ws.settings.db_path))
    assert main(["finetune", "--epochs", "2", "--method", "lora"]) == 0
    out = capsys.readouterr()
    assert "held-out accuracy" in out.out and "training: 4/4" in out.err
    saved = versions.list_versions(versions.models_dir(labelled_ws.settings.db_path))
    assert len(saved) == 1 and saved[0]["method"] == "lora"
    assert main(["finetune", "--use", saved[0]["name"]]) == 0
    assert main(["finetune", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"* {saved[0]['name']}") for line in listed)
    assert main(["finetune", "--use", "base"]) == 0
    assert main(["finetune", "--use", "no-such-version"]) == 2
    assert "not in" in capsys.readouterr().err
